"""Networks to and from model files (io/modelfile.py holds the format): ``net.save``,
``neuroflow.load``, and a run resumed from a checkpoint."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields, replace
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..io.modelfile import ModelFile, ModelFileError, read, write
from .augment import Augment
from .lookahead import Lookahead, SlowWeights
from .layers import layer_from_spec
from .losses import loss_from_spec
from .optim import update_from_spec
from .schedules import Schedule, describe, from_spec
from .settings import FiniteDifferences, Settings
from .training import RunState, data_fingerprint

if TYPE_CHECKING:
    from .network import Network

__all__ = ["load", "resume_run", "save", "settings_of"]


def _settings_json(s: Settings) -> dict:
    lr = s.learning_rate
    rate = {"schedule": lr.to_spec()} if isinstance(lr, Schedule) else {"code": describe(lr)}
    return {
        "learning_rate": rate,
        "batch_size": s.batch_size,
        "iterations": s.iterations,
        "precision": s.precision,
        "verbose": s.verbose,
        "pretty_print": s.pretty_print,
        "approximation": s.approximation.delta if s.approximation is not None else None,
        "shuffle": s.shuffle,
        "seed": s.seed,
        "augment": asdict(s.augment) if s.augment is not None else None,
        "lookahead": asdict(s.lookahead) if s.lookahead is not None else None,
    }


def save(net: "Network", path: str | os.PathLike):
    """Write ``net`` to ``path`` (see io/modelfile.py), atomically; returns the path."""
    names = [n for n, _ in net._param_info]
    slots = list(net._engine.optimizer_slots())
    optim = net.optimizer_state
    run: RunState | None = net._run
    mf = ModelFile(
        spec=json.loads(net.spec_json),
        settings=_settings_json(net.settings),
        params=dict(zip(names, net.weights)),
        state=net.state,
        optim={f"{n}.{k}": optim[i * len(slots) + j] for i, n in enumerate(names) for j, k in enumerate(slots)},
        iteration=net.iteration,
        alpha=net._alpha,
        step=int(net._engine.get_step()),
        run=run.to_json() if run is not None else None,
        run_order=run.order if run is not None else None,
        slow=_slow_tensors(net) if run is not None else {},
    )
    return write(path, mf)


def _schedule_not_saved(name: str) -> Callable[[int, float], float]:
    def learning_rate(iteration: int, alpha: float) -> float:
        raise ValueError(
            f"learning_rate: this model was trained with a learning-rate function ({name}), which a model file "
            "cannot hold (that would mean running code from a file); give it again: "
            "neuroflow.load(path, learning_rate=schedule), or use a schedule from neuroflow.schedules, which files keep"
        )

    learning_rate.__qualname__ = f"unsaved schedule ({name})"
    return learning_rate


def settings_of(mf: ModelFile, learning_rate=None) -> Settings:
    """The stored settings as a Settings object; ``learning_rate`` replaces the stored rate."""
    d, spec = mf.settings, mf.spec
    if learning_rate is None:
        lr = d["learning_rate"]
        learning_rate = from_spec(lr["schedule"]) if "schedule" in lr else _schedule_not_saved(lr["code"])
    return Settings(
        learning_rate=learning_rate, update_rule=update_from_spec(spec["update"]), batch_size=d["batch_size"],
        iterations=d["iterations"], precision=d["precision"], verbose=d["verbose"], pretty_print=d["pretty_print"],
        approximation=FiniteDifferences(d["approximation"]) if d["approximation"] is not None else None,
        reduction=spec["reduction"], dtype=np.float32 if spec["dtype"] == "f32" else np.float64,
        shuffle=d["shuffle"], seed=d["seed"], augment=_stored(Augment, d.get("augment"), "augment"),
        lookahead=_stored(Lookahead, d.get("lookahead"), "lookahead"),
    )


def _stored(cls, d, what: str):
    """A stored settings dataclass (Augment, Lookahead) from its dict; None stays None."""
    if d is None:
        return None
    names = [f.name for f in fields(cls)]
    if not isinstance(d, dict) or set(d) - set(names):
        raise ModelFileError(f"settings: {what}: expected {{{', '.join(names)}}}, got {d!r:.200}")
    return cls(**d)


def _slow_tensors(net: "Network") -> dict[str, np.ndarray]:
    if net._slow is None:
        return {}
    return {**{f"param.{n}": a for (n, _), a in zip(net._param_info, net._slow.params)},
            **{f"state.{n}": a for (n, _), a in zip(net._state_info, net._slow.state)}}


def _slow_of(net: "Network", mf: ModelFile) -> SlowWeights | None:
    if not mf.slow:
        return None
    return SlowWeights([mf.slow[f"param.{n}"] for n, _ in net._param_info], [mf.slow[f"state.{n}"] for n, _ in net._state_info])


def _layout(spec: dict) -> list:
    return [*(layer_from_spec(d, i) for i, d in enumerate(spec["layers"])), loss_from_spec(spec["loss"])]


def _restore(net: "Network", mf: ModelFile) -> None:
    """Parameters, state, optimizer state, counters and the lookahead's slow copy from ``mf``
    into ``net``."""
    net.weights = [mf.params[n] for n, _ in net._param_info]
    if mf.state:
        net.state = dict(mf.state)
    slots = list(net._engine.optimizer_slots())
    if slots:
        net.optimizer_state = [mf.optim[f"{n}.{k}"] for n, _ in net._param_info for k in slots]
    net._engine.set_step(mf.step)
    net._iteration = mf.iteration
    net._alpha = mf.alpha
    net._slow = _slow_of(net, mf)


def load(path: str | os.PathLike, *, backend: str = "cpu", learning_rate=None, settings: Settings | None = None) -> "Network":
    """A Network rebuilt from a model file: layout, settings, parameters, state, optimizer
    state, iteration count, and the run in flight (continue it with ``net.train(xs, ys,
    resume=True)``).

    ``learning_rate`` (a number, a schedule or ``callable(iteration, alpha)``) replaces the
    stored rate; a model trained with a Python function needs it before it can train again
    (a file holds no code). ``settings`` replaces all stored settings; its dtype, update
    rule and reduction must be the stored ones, since the parameters and optimizer state
    depend on them.
    """
    from .network import Network

    mf = read(path)
    stored = settings_of(mf, learning_rate)
    if settings is None:
        s = stored
    else:
        if not isinstance(settings, Settings):
            raise TypeError(f"settings: expected Settings(...), got {settings!r}")
        if settings.dtype is None:  # the default: take the file's precision
            settings = replace(settings, dtype=stored.dtype)
        for key in ("dtype", "update_rule", "reduction"):
            if getattr(settings, key) != getattr(stored, key):
                raise ValueError(
                    f"settings.{key}: the model file was saved with {getattr(stored, key)!r}, got {getattr(settings, key)!r}"
                )
        s = settings if learning_rate is None else replace(settings, learning_rate=learning_rate)
    # the engine gets the file's seed (its dropout masks), whatever the settings say
    norm = mf.spec.get("input_norm")
    net = Network(_layout(mf.spec), replace(s, seed=mf.spec["seed"]), weights=None, backend=backend,
                  input_norm=None if norm is None else (norm["mean"], norm["std"]))
    net._settings = s
    _restore(net, mf)
    net._run = None if mf.run is None else _run_state(mf, str(mf.path))
    return net


def _run_state(mf: ModelFile, where: str) -> RunState:
    try:
        return RunState.from_json(mf.run, mf.run_order)
    except ValueError as e:
        raise ModelFileError(f"{where}: training: {e}") from None


def check_compatible(net: "Network", mf: ModelFile) -> None:
    """Raise ValueError unless ``mf`` holds parameters and state for ``net``'s layout and dtype."""
    mine = json.loads(net.spec_json)
    for key in ("dtype", "input", "input_norm", "layers", "loss", "update", "reduction"):
        if mine.get(key) != mf.spec.get(key):
            what = {"layers": "layout", "update": "update rule", "input": "layout", "input_norm": "input normalisation"}.get(key, key)
            raise ValueError(
                f"resume: {mf.path} was saved from a network with another {what} "
                f"({json.dumps(mf.spec.get(key))[:300]} there, {json.dumps(mine.get(key))[:300]} here)"
            )


def resume_run(net: "Network", resume, data, x: np.ndarray, t: np.ndarray, bs: int) -> RunState:
    """Restore a checkpointed run into ``net``; check it fits the data and settings."""
    if resume is True:
        run = net._run
        if run is None:
            raise ValueError("resume=True: this network has no run to continue; train it first, or load a checkpoint")
        where = "this network's last run"
        mf = None
    else:
        mf = read(resume)
        check_compatible(net, mf)
        if mf.run is None:
            raise ValueError(
                f"resume: {mf.path} holds no training run (it was saved before training); "
                "load it with neuroflow.load and call train() to start a run"
            )
        run, where = _run_state(mf, str(mf.path)), str(mf.path)
    s = net.settings
    # files before the batch pipeline recorded a blake2b fingerprint
    fingerprint = data.fingerprint if run.data.startswith("nf64:") else data_fingerprint(x, t)
    if len(run.order) != len(x) or run.data != fingerprint:
        raise ValueError(
            f"resume: xs/ys are not the data of {where} ({len(run.order)} samples there, {len(x)} here, "
            "or other values); resuming needs the same samples in the same order"
        )
    if run.batch_size != bs or run.shuffle != s.shuffle:
        raise ValueError(
            f"resume: {where} used batch_size={run.batch_size}, shuffle={run.shuffle}; the settings say "
            f"batch_size={bs}, shuffle={s.shuffle}. Resuming continues the same run; to start a new one "
            "from these weights, use neuroflow.load(path) and train() without resume"
        )
    if mf is not None:
        if mf.spec["seed"] != json.loads(net.spec_json)["seed"]:  # the run's dropout masks
            net._rebuild(net.settings, mf.spec["seed"])
        _restore(net, mf)
    # a copy: the file's or the network's record stays as it was if this run is interrupted
    return run.copy()
