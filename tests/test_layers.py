"""The modern toolkit through the Network API: every new layer in focus, banner, files and
resume; train/eval modes; seeds; settings changes; threads; schedules; evaluate; clear
errors for bad layouts. (Engine-level numerics: tests/conformance/.)"""

import threading
import time

import numpy as np
import pytest

import neuroflow as nf
from neuroflow import (
    GELU, Adam, AdamW, AvgPool, BatchNorm, Convolution, Dense, Dropout, GlobalAvgPool, Linear, MaxPool, Momentum,
    Nesterov, Network, ReLU, Residual, Settings, SoftmaxLogEntropy, SquaredError, Tanh, Vanilla, Waypoint, schedules,
)


def modern(settings=None, **kw):
    layout = [
        Convolution((10, 9, 3), padding=1, field=3, filters=6, activator=Linear, bias=True),
        BatchNorm(activator=ReLU),
        MaxPool(2, padding=1),
        Residual([Convolution(padding=1, field=3, filters=6, activator=Linear), BatchNorm(activator=GELU)], ReLU),
        AvgPool(3, stride=1, padding=1),
        GlobalAvgPool(),
        Dropout(0.25),
        Dense(4, Linear, bias=True),
        SoftmaxLogEntropy(label_smoothing=0.1),
    ]
    s = settings or Settings(verbose=False, update_rule=Adam(weight_decay=1e-3), learning_rate=schedules.cosine(0.01, 20),
                             batch_size=4, iterations=9, reduction="mean", **kw)
    return Network(layout, s)


def data(rng, n=11):
    return rng.uniform(0, 1, (n, 10, 9, 3)), rng.integers(0, 4, n)


def test_names_shapes_banner_and_focus(rng):
    net = modern()
    assert list(net.parameters) == ["c0.weight", "c0.bias", "bn1.scale", "bn1.shift", "res3.c0.weight", "res3.bn1.scale",
                                    "res3.bn1.shift", "d7.weight", "d7.bias"]
    assert list(net.state) == ["bn1.running_mean", "bn1.running_var", "res3.bn1.running_mean", "res3.bn1.running_var"]
    assert net.num_weights == sum(a.size for a in net.weights) == 162 + 6 + 12 + 324 + 12 + 24 + 4
    banner = net.banner()
    for line in ("BatchNorm (ReLU) ~> 10*9*6", "MaxPool [2*2 : 2*2] ~> 6*5*6", "Residual [", "AvgPool [3*3 : 1*1] ~> 6*5*6",
                 "GlobalAvgPool ~> 6", "Dropout(0.25)", "4 Dense (Linear + bias)"):
        assert line in banner, line
    x, _ = data(rng, 3)
    inner = net.layout[3].layers[1]
    shapes = {i: net.focus(i)(x).shape for i in range(8)}
    assert shapes == {0: (3, 10, 9, 6), 1: (3, 10, 9, 6), 2: (3, 6, 5, 6), 3: (3, 6, 5, 6), 4: (3, 6, 5, 6), 5: (3, 6),
                      6: (3, 6), 7: (3, 4)}
    assert net.focus(inner)(x[0]).shape == (6, 5, 6)
    # focus is eval mode: dropout passes values through
    np.testing.assert_array_equal(net.focus(6)(x), net.focus(5)(x))
    # biases and shifts start at 0, scales at 1
    p = net.parameters
    assert (p["c0.bias"] == 0).all() and (p["bn1.scale"] == 1).all() and (p["bn1.shift"] == 0).all()


def test_train_and_eval_modes(rng):
    x, y = data(rng)
    net = modern()
    state = net.state
    assert net.loss(x, y) != net.loss(x, y, mode="train")
    net.gradients(x, y)
    net.loss(x, y, mode="train")
    assert all(np.array_equal(state[k], v) for k, v in net.state.items()), "neither changes any state"
    net.train(x, y)
    assert not np.allclose(net.state["bn1.running_mean"], 0), "training moves the running statistics"
    plain = Network([Convolution((6, 6, 2), 1, 3, 1, 3, ReLU), MaxPool(2), Dense(2, Linear), SquaredError()],
                    Settings(verbose=False))
    xs, ys = rng.uniform(0, 1, (4, 6, 6, 2)), rng.uniform(-1, 1, (4, 2))
    assert plain.loss(xs, ys) == plain.loss(xs, ys, mode="train")
    with pytest.raises(ValueError, match='mode: expected "eval" or "train"'):
        plain.loss(xs, ys, mode="test")


def test_save_load_and_exact_resume_with_every_new_layer(rng, tmp_path):
    x, y = data(rng)
    whole = modern()
    whole.train(x, y)
    points = modern(waypoint=Waypoint(4, nf.checkpoint_to(str(tmp_path / "ck-{iteration}.safetensors"))))
    points.train(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(whole.weights, points.weights))
    resumed = modern()
    run = resumed.train(x, y, resume=tmp_path / "ck-4.safetensors")
    assert run.iterations == 5 and resumed.iteration == 9
    for a, b in zip(resumed.weights + resumed.optimizer_state + list(resumed.state.values()),
                    whole.weights + whole.optimizer_state + list(whole.state.values())):
        np.testing.assert_array_equal(a, b)
    back = nf.load(whole.save(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(back(x), whole(x))
    assert back.settings.learning_rate == schedules.cosine(0.01, 20) and back.settings.update_rule == Adam(weight_decay=1e-3)
    assert back.banner() == whole.banner()


def test_seed_makes_a_script_reproducible(rng):
    x, y = data(rng)
    a, b = modern(), modern()
    assert all(np.array_equal(p, q) for p, q in zip(a.weights, b.weights)), "default weights follow Settings.seed"
    a.train(x, y)
    b.train(x, y)
    assert all(np.array_equal(p, q) for p, q in zip(a.weights, b.weights)), "and so do shuffling and dropout"
    c = modern(seed=3)
    assert not np.array_equal(c.weights[0], a.weights[0])
    d, e = modern(seed=None), modern(seed=None)
    assert not np.array_equal(d.weights[0], e.weights[0])
    own = Network([Dense(3, ReLU, dim_in=4), SquaredError()], Settings(seed=5), weights=nf.WeightBreeder.he(seed=1))
    other = Network([Dense(3, ReLU, dim_in=4), SquaredError()], Settings(seed=6), weights=nf.WeightBreeder.he(seed=1))
    np.testing.assert_array_equal(own.weights[0], other.weights[0])  # a breeder's own seed wins


def test_new_settings_rebuild_the_engine_or_are_refused(rng):
    x, y = data(rng)
    net = modern()
    net.train(x, y)
    weights, state = net.weights, net.state
    from dataclasses import replace

    net.settings = replace(net.settings, update_rule=Nesterov(0.9), reduction="sum")
    assert '"name":"nesterov"' in net.spec_json.replace(" ", "") and "Nesterov(0.9)" in net.banner()
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, weights))
    assert all(np.array_equal(net.state[k], v) for k, v in state.items())
    assert [a.shape for a in net.optimizer_state] == [a.shape for a in net.weights]
    assert all((a == 0).all() for a in net.optimizer_state), "new slots start at zero"
    sum_loss = net.loss(x, y)
    net.settings = replace(net.settings, reduction="mean")
    assert net.loss(x, y) == pytest.approx(sum_loss / len(x), rel=1e-12)
    with pytest.raises(ValueError, match="settings.dtype: this network computes in float64"):
        net.settings = replace(net.settings, dtype=np.float32)
    with pytest.raises(TypeError, match="settings: expected Settings"):
        net.settings = {"batch_size": 3}


def test_one_network_one_trainer(rng):
    x, y = rng.uniform(0, 1, (64, 10, 9, 3)), rng.integers(0, 4, 64)
    net = modern(Settings(verbose=False, iterations=400, batch_size=16))
    errors, started = [], threading.Event()

    def slow(loss):
        started.set()
        time.sleep(0.002)

    net.settings = Settings(verbose=False, iterations=400, batch_size=16, loss_func_output=slow)

    def train():
        try:
            net.train(x, y)
        except Exception as e:  # pragma: no cover - a failure shows in the assert below
            errors.append(e)

    t = threading.Thread(target=train)
    t.start()
    assert started.wait(30)
    with pytest.raises(RuntimeError, match="already training"):
        net.train(x, y)
    with pytest.raises(RuntimeError, match="training in another thread"):
        net.weights = net.weights
    # reading between steps works while the other thread trains
    assert net(x[:2]).shape == (2, 4) and len(net.weights) == 9
    t.join()
    assert not errors and net.iteration == 400


def test_a_diverging_run_keeps_the_last_good_weights(rng, tmp_path):
    x, y = rng.uniform(0, 1, (8, 4)), rng.uniform(-1, 1, (8, 2))
    saves = []
    net = Network([Dense(6, Linear, dim_in=4), Dense(2, Linear), SquaredError()],
                  Settings(verbose=False, learning_rate=lambda i, a: 1e-3 if i < 3 else 1e150, update_rule=Vanilla(),
                           iterations=20, batch_size=8, waypoint=Waypoint(1, lambda i, n: saves.append(n.save(tmp_path / f"{i}.st")))))
    run = net.train(x, y)
    assert run.stopped_by == "diverged"
    assert all(np.isfinite(w).all() for w in net.weights), "the non-finite step changed nothing"
    assert net.iteration == len(saves) == run.iterations
    nf.load(saves[-1])  # the last checkpoint is a good one


def test_learning_rates_that_are_not_rates_are_refused(rng):
    x, y = rng.uniform(0, 1, (4, 3)), rng.uniform(-1, 1, (4, 2))
    for bad, text in ((lambda i, a: "fast", "'fast'"), (lambda i, a: -0.1, "-0.1"), (lambda i, a: float("inf"), "inf")):
        net = Network([Dense(2, Linear, dim_in=3), SquaredError()], Settings(verbose=False, learning_rate=bad))
        with pytest.raises(ValueError, match=f"learning_rate: returned {text} at iteration 1; a learning rate must be"):
            net.train(x, y)
        assert net.iteration == 0


def test_schedules():
    tri = schedules.triangular(0.4, 100, warmup=0.25, start=0.04)
    assert [tri(i, 1.0) for i in (0, 25, 100, 200)] == pytest.approx([0.04, 0.4, 0.0, 0.0])
    assert tri(60, 1.0) == pytest.approx(0.4 * 40 / 75)
    cos = schedules.cosine(0.1, 10, end=0.01)
    assert cos(0) == 0.1 and cos(10) == pytest.approx(0.01) and cos(5) == pytest.approx(0.055)
    warm = schedules.warmup(10, cos)
    assert warm(1) == pytest.approx(0.1 * cos(1)) and warm(10) == cos(10) and warm(20) == cos(20)
    step = schedules.step_decay(1.0, [3, 6], gamma=0.5)
    assert [step(i) for i in (1, 3, 4, 6, 7)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    lin = schedules.linear(1.0, 0.0, 4)
    assert [lin(i) for i in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    for s in (tri, cos, warm, step, lin, schedules.constant(0.3)):
        assert schedules.from_spec(s.to_spec()) == s
    with pytest.raises(ValueError, match="cosine: steps: expected a positive whole number"):
        schedules.cosine(0.1, 0)
    with pytest.raises(ValueError, match="piecewise: expected points with increasing iterations"):
        schedules.piecewise([(5, 0.1), (5, 0.2)])
    with pytest.raises(ValueError, match="schedule: unknown kind 'eval'"):
        schedules.from_spec({"kind": "eval"})


def test_evaluate(rng):
    x, y = data(rng, 9)
    net = modern()
    ev = net.evaluate(x, y)
    p = net(x)
    assert ev.accuracy == pytest.approx(np.mean(p.argmax(axis=1) == y))
    assert ev.loss == pytest.approx(net.loss(x, y))  # reduction "mean": the same
    loss, acc = ev
    assert (loss, acc) == (ev.loss, ev.accuracy)
    reg = Network([Dense(2, Linear, dim_in=3), SquaredError()], Settings(verbose=False))
    xs, ys = rng.uniform(0, 1, (5, 3)), rng.uniform(-1, 1, (5, 2))
    ev = reg.evaluate(xs, ys)
    assert ev.accuracy is None and ev.loss == pytest.approx(reg.loss(xs, ys) / 5)


def test_parameters_and_state_by_name(rng):
    net = modern()
    p = net.parameters
    net.parameters = {"d7.bias": np.full(4, 0.5)}
    assert (net.parameters["d7.bias"] == 0.5).all() and np.array_equal(net.parameters["c0.weight"], p["c0.weight"])
    net.state = {"bn1.running_var": np.full(6, 2.0)}
    assert (net.state["bn1.running_var"] == 2).all()
    with pytest.raises(ValueError, match="parameters: no tensor named 'c9.weight'"):
        net.parameters = {"c9.weight": np.zeros(3)}
    with pytest.raises(ValueError, match=r"state\[1\]: expected shape \(6,\), got \(5,\)"):
        net.state = {"bn1.running_var": np.ones(5)}


def test_bad_layouts_name_the_layer():
    c = Convolution((6, 6, 2), padding=0, field=3, filters=4, activator=ReLU)
    with pytest.raises(ValueError, match=r"layout\[1\] \(mp1\) with dim_in \(4, 4, 4\): the field 5 on X is larger than the padded input"):
        Network([c, MaxPool(5), Dense(2, Linear), SquaredError()])
    with pytest.raises(ValueError, match=r"layout\[1\] \(res1\): the inner layers change the shape \(4, 4, 4\) into \(2, 2, 4\)"):
        Network([c, Residual([MaxPool(2)]), Dense(2, Linear), SquaredError()])
    with pytest.raises(ValueError, match=r"Dropout: rate must be a number in \[0, 1\), got 1"):
        Dropout(1)
    with pytest.raises(ValueError, match=r"beta2: expected a number in \[0, 1\), got 1.5"):
        Adam(beta2=1.5)
    with pytest.raises(ValueError, match="weight_decay: expected a number ≥ 0"):
        AdamW(weight_decay=-1)
    with pytest.raises(ValueError, match=r"MaxPool: padding \(2, 2\) must be at most half the field \(3, 3\)"):
        MaxPool(3, padding=2)
    with pytest.raises(ValueError, match=r"BatchNorm: lr_mult names 'weight', not a parameter of this layer \(\['scale', 'shift'\]\)"):
        BatchNorm(lr_mult={"weight": 2})
    with pytest.raises(TypeError, match=r"Residual: layers\[0\] must be a layer"):
        Residual([ReLU])
    with pytest.raises(ValueError, match=r"layout\[2\] \(c\): the name \"c\" is used twice"):
        Network([Convolution((6, 6, 2), 0, 3, 1, 4, ReLU, name="c"), MaxPool(2), Convolution(None, 0, 1, 1, 1, ReLU, name="c"),
                 Dense(2, Linear), SquaredError()])
    with pytest.raises(ValueError, match="layout\\[0\\]: the first layer needs its input shape"):
        Network([MaxPool(2), SquaredError()])


def test_lr_multipliers_scale_the_step(rng):
    x, y = rng.uniform(0, 1, (6, 3)), rng.uniform(-1, 1, (6, 2))
    base = Network([Dense(2, Linear, dim_in=3, bias=True), SquaredError()],
                   Settings(verbose=False, update_rule=Vanilla(), learning_rate=0.01, iterations=1, batch_size=6))
    fast = Network([Dense(2, Linear, dim_in=3, bias=True, lr_mult={"bias": 5.0}), SquaredError()], base.settings,
                   weights=base.weights)
    g = base.gradients(x, y)
    w0 = base.weights
    base.train(x, y)
    fast.train(x, y)
    np.testing.assert_allclose(w0[1] - fast.weights[1], 5 * (w0[1] - base.weights[1]), rtol=1e-12)
    np.testing.assert_allclose(fast.weights[0], base.weights[0], rtol=1e-12)
    np.testing.assert_allclose(w0[1] - base.weights[1], 0.01 * g[1], rtol=1e-12)


def test_evaluate_with_test_time_augmentation(rng):
    x, y = data(rng, 6)
    net = modern()
    x8 = (x * 255).astype(np.uint8)
    plain = net.evaluate(x8, y)
    flip = net.evaluate(x8, y, tta="flip")
    both = (net.focus(7)(x8) + net.focus(7)(x8[:, ::-1])) / 2
    assert flip.accuracy == pytest.approx(np.mean(both.argmax(axis=1) == y))
    assert plain != flip
    full = net.evaluate(x8, y, tta="flip_translate")
    assert 0 <= full.accuracy <= 1 and np.isfinite(full.loss)
    with pytest.raises(ValueError, match='tta: expected None, "flip" or "flip_translate"'):
        net.evaluate(x8, y, tta="rotate")


def test_validation_each_epoch_and_early_stopping(rng):
    x, y = data(rng, 8)
    vx, vy = data(rng, 5)
    net = modern(Settings(verbose=False, iterations=40, batch_size=4, learning_rate=lambda i, a: 0.0))  # no improvement
    run = net.train(x, y, validation=(vx, vy), patience=2)
    hist = run.extra["validation"]
    assert run.stopped_by == "early_stop" and [h["epoch"] for h in hist] == [1, 2, 3] and run.iterations == 6
    assert all(h["accuracy"] == hist[0]["accuracy"] for h in hist)
    assert hist[0]["accuracy"] == net.evaluate(vx, vy).accuracy
    with pytest.raises(ValueError, match="patience: early stopping needs validation"):
        net.train(x, y, patience=2)


def test_muon_is_checked_saved_and_resumed(rng, tmp_path):
    """Muon's settings are refused with their name; a model file keeps the rule and its
    momentum, so that training on from it equals training straight through."""
    from dataclasses import replace

    from neuroflow.nn.optim import update_from_spec

    for bad, msg in [(dict(mu=1.0), r"mu: expected a momentum in \[0, 1\)"),
                     (dict(fallback_mu=-0.1), r"fallback_mu: expected a momentum"),
                     (dict(steps=0), "steps: expected a whole number"), (dict(steps=2.5), "steps: expected a whole number"),
                     (dict(normalize=1), "normalize: expected True or False"),
                     (dict(weight_decay=-1), "weight_decay: expected a number ≥ 0")]:
        with pytest.raises(ValueError, match=msg):
            nf.Muon(**bad)
    rule = nf.Muon(0.6, fallback_mu=0.85, steps=3, normalize=True, weight_decay=1e-3)
    assert update_from_spec(rule.to_spec()) == rule
    x, y = rng.uniform(0, 1, (24, 6, 6, 2)), np.eye(3)[rng.integers(0, 3, 24)]

    def net(iterations):
        return Network([Convolution((6, 6, 2), padding=1, field=3, filters=5, activator=Linear), BatchNorm(activator=ReLU),
                        MaxPool(2), Dense(3, Linear), SoftmaxLogEntropy()],
                       Settings(verbose=False, update_rule=rule, learning_rate=0.05, iterations=iterations, batch_size=8,
                                seed=4, reduction="mean"), weights=nf.WeightBreeder.he(seed=2))

    straight = net(6)
    straight.train(x, y)
    first = net(3)
    first.train(x, y)
    assert np.abs(first.optimizer_state[0]).max() > 0  # c0.weight's momentum
    first.save(tmp_path / "m.safetensors")
    again = Network.load(tmp_path / "m.safetensors")
    assert again.settings.update_rule == rule
    again.settings = replace(again.settings, iterations=6)
    again.train(x, y, resume=True)
    for k, v in straight.parameters.items():
        np.testing.assert_array_equal(again.parameters[k], v, err_msg=k)
