"""Resuming a run from a checkpoint ends with exactly the weights of an uninterrupted run."""

from dataclasses import replace

import numpy as np
import pytest

import neuroflow as nf
from neuroflow import (
    Convolution, Dense, Linear, LossFuncOutput, Momentum, Nesterov, Network, ReLU, Settings, SoftmaxLogEntropy,
    Waypoint, WeightBreeder,
)


def rate(i, alpha):
    return 0.02 if i < 9 else 0.005


def net_for(iterations=23, seed=5, waypoint=None, rule=Momentum(0.8), **kw):
    c0 = Convolution((8, 6, 2), padding=1, field=3, stride=1, filters=3, activator=ReLU)
    c1 = Convolution(c0.dim_out, padding=1, field=4, stride=2, filters=2, activator=ReLU)
    settings = Settings(verbose=False, iterations=iterations, batch_size=4, learning_rate=rate, update_rule=rule,
                        seed=seed, waypoint=waypoint, **kw)
    return Network([c0, c1, Dense(3, Linear), SoftmaxLogEntropy()], settings, weights=WeightBreeder.normal(0, 0.4, seed=7))


def data(rng, n=11):  # 11 samples, batches of 4: epochs end on a partial batch
    return rng.uniform(0, 1, (n, 8, 6, 2)), rng.integers(0, 3, n)


def identical(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a.weights, b.weights)) and all(
        np.array_equal(p, q) for p, q in zip(a.optimizer_state, b.optimizer_state))


@pytest.mark.parametrize("seed", [5, None])
def test_resumed_run_equals_an_uninterrupted_one(seed, rng, tmp_path):
    x, y = data(rng)
    whole = net_for(seed=seed)
    ckpt = str(tmp_path / "ckpt-{iteration:03d}.safetensors")
    whole_run = whole.train(x, y) if seed is not None else None
    # the same run again, writing checkpoints on the way (with seed None, this is "the" run)
    with_points = net_for(seed=seed, waypoint=Waypoint(5, nf.checkpoint_to(ckpt)))
    points_run = with_points.train(x, y)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"ckpt-{i:03d}.safetensors" for i in (5, 10, 15, 20)]
    if seed is not None:
        assert identical(whole, with_points)
        np.testing.assert_array_equal(whole_run.losses, points_run.losses)
    for k in (5, 10, 15, 20):  # mid-epoch and across the learning-rate change
        resumed = net_for(seed=seed)
        run = resumed.train(x, y, resume=tmp_path / f"ckpt-{k:03d}.safetensors")
        assert run.iterations == 23 - k and resumed.iteration == 23
        np.testing.assert_array_equal(run.losses, points_run.losses[k:])
        assert identical(resumed, with_points)


def test_resume_after_ctrl_c_and_after_load(rng, tmp_path):
    x, y = data(rng)
    whole = net_for(rule=Nesterov(0.7))
    whole.train(x, y)

    def interrupt(loss, count=[0]):
        count[0] += 1
        if count[0] == 8:
            raise KeyboardInterrupt

    stopped = net_for(rule=Nesterov(0.7), loss_func_output=interrupt)
    run = stopped.train(x, y)
    assert run.interrupted and stopped.iteration == 8
    path = stopped.save(tmp_path / "stopped.safetensors")
    resumed = net_for(rule=Nesterov(0.7))
    resumed.train(x, y, resume=path)
    assert identical(resumed, whole)
    # the same from the loaded network (the schedule, code, is given again)
    loaded = nf.load(path, learning_rate=rate)
    assert loaded.iteration == 8
    loaded.train(x, y, resume=True)
    assert identical(loaded, whole) and loaded.iteration == 23
    # and in memory, without a file
    stopped.settings = replace(stopped.settings, loss_func_output=None)
    stopped.train(x, y, resume=True)
    assert identical(stopped, whole)


def test_a_resumed_run_appends_to_its_loss_log(rng, tmp_path):
    x, y = data(rng)
    log = tmp_path / "loss.txt"
    a = net_for(iterations=9, loss_func_output=LossFuncOutput(file=log), waypoint=Waypoint(4, nf.checkpoint_to(tmp_path / "c.safetensors")))
    a.train(x, y)
    full = log.read_text().split()
    assert len(full) == 9
    b = net_for(iterations=9, loss_func_output=LossFuncOutput(file=log))
    log.write_text("\n".join(full[:8]) + "\n")  # as if the run had stopped after the checkpoint at 8
    b.train(x, y, resume=tmp_path / "c.safetensors")
    assert log.read_text().split() == full


def test_a_run_can_be_extended(rng, tmp_path):
    x, y = data(rng)
    long = net_for(iterations=30)
    long.train(x, y)
    short = net_for(iterations=12)
    short.train(x, y)
    path = short.save(tmp_path / "short.safetensors")
    more = net_for(iterations=30)
    more.train(x, y, resume=path)
    assert identical(more, long)
    done = net_for(iterations=12)
    with pytest.raises(ValueError, match=r"resume: that run is complete \(12 of 12 iterations done\); raise settings.iterations"):
        done.train(x, y, resume=path)  # nothing left of a finished run: said, not silently done


def test_resume_refuses_what_would_not_continue_the_run(rng, tmp_path):
    x, y = data(rng)
    net = net_for(iterations=6)
    net.train(x, y)
    path = net.save(tmp_path / "c.safetensors")
    x2 = x.copy()
    x2[3, 1, 1, 0] += 0.5
    with pytest.raises(ValueError, match="resume: xs/ys are not the data of"):
        net_for().train(x2, y, resume=path)
    with pytest.raises(ValueError, match="resume: xs/ys are not the data of"):
        net_for().train(x[:10], y[:10], resume=path)
    with pytest.raises(ValueError, match="used batch_size=4, shuffle=True; the settings say batch_size=3"):
        _with(batch_size=3).train(x, y, resume=path)
    other = Network([Dense(3, Linear, dim_in=96), SoftmaxLogEntropy()], Settings(verbose=False))
    with pytest.raises(ValueError, match="resume: .* was saved from a network with another layout"):
        other.train(x.reshape(11, -1), y, resume=path)
    fresh = net_for()
    empty = fresh.save(tmp_path / "untrained.safetensors")
    with pytest.raises(ValueError, match="holds no training run"):
        net_for().train(x, y, resume=empty)
    with pytest.raises(ValueError, match="resume=True: this network has no run to continue"):
        net_for().train(x, y, resume=True)
    with pytest.raises(FileNotFoundError):
        net_for().train(x, y, resume=tmp_path / "missing.safetensors")


def _with(**kw):
    net = net_for()
    net.settings = replace(net.settings, **kw)
    return net


def test_checkpoint_to_checks_its_path(tmp_path):
    with pytest.raises(ValueError, match=r"only \{iteration\} may be filled in, got \['epoch'\]"):
        nf.checkpoint_to(tmp_path / "c-{epoch}.safetensors")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nf.checkpoint_to(tmp_path / "no" / "c.safetensors")
    with pytest.raises(TypeError, match="path: expected a str or os.PathLike"):
        nf.checkpoint_to(3)


def test_ctrl_c_during_a_step_finishes_it_and_the_run_can_go_on(rng, tmp_path):
    """A real SIGINT (here sent from the learning-rate callback, just before a step) lets the
    step finish: weights, iteration count and run position agree, so a resume is exact."""
    import os
    import signal

    x, y = data(rng)
    whole = net_for()
    whole.train(x, y)

    def ctrl_c_at_5(i, alpha):
        if i == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return rate(i, alpha)

    stopped = net_for()
    stopped.settings = replace(stopped.settings, learning_rate=ctrl_c_at_5)
    before = signal.getsignal(signal.SIGINT)  # Python's handler; SIG_IGN where pytest runs in the background
    run = stopped.train(x, y)
    assert run.stopped_by == "interrupt" and run.iterations == 5 and stopped.iteration == 5
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C is the caller's again
    resumed = net_for()
    resumed.train(x, y, resume=stopped.save(tmp_path / "c.safetensors"))
    assert identical(resumed, whole)
