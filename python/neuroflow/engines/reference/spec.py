"""Reading the resolved spec: every field checked, shapes taken from it (never computed
here), refused with a ValueError that names the layer when something does not fit."""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any, Optional

from .updates import SLOTS

IDS = json.loads((Path(__file__).resolve().parent.parent.parent / "ids.json").read_text())
ALGORITHMS = tuple(IDS["conv_algorithms"])
ACTIVATED = ("conv", "dense", "batchnorm", "residual")  # the kinds with an activator
WINDOWED = ("conv", "maxpool", "avgpool")


def number(d: dict, key: str, where: str, default=None, *, lo=-math.inf, hi=math.inf, open_lo=False, open_hi=False) -> float:
    v = d.get(key, default)
    if v is None:
        raise ValueError(f"{where}: missing {key!r}")
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{where}: {key} must be a finite number, got {v!r}")
    if v < lo or v > hi or (open_lo and v == lo) or (open_hi and v == hi):
        lb, rb = "(" if open_lo else "[", ")" if open_hi else "]"
        raise ValueError(f"{where}: {key} = {v!r} is outside {lb}{lo}, {hi}{rb}")
    return float(v)


def ints(d: dict, key: str, where: str, length: Optional[int] = None, lo: int = 0) -> tuple:
    v = d.get(key)
    if (not isinstance(v, list) or not all(isinstance(e, int) and not isinstance(e, bool) and e >= lo for e in v)
            or (length is not None and len(v) != length)):
        raise ValueError(f"{where}: {key} must be a list of {length or 'some'} integers >= {lo}, got {v!r}")
    return tuple(v)


def flag(d: dict, key: str, where: str) -> bool:
    if not isinstance(d.get(key), bool):
        raise ValueError(f"{where}: {key} must be true or false, got {d.get(key)!r}")
    return d[key]


def activator(d: dict, where: str) -> dict:
    a = d.get("activator")
    if not isinstance(a, dict) or a.get("name") not in IDS["activators"]:
        raise ValueError(f"{where}: activator must be one of {IDS['activators']}, got {a!r}")
    return {"name": a["name"], "alpha": number(a, "alpha", where, 0.0), "bias": number(a, "bias", where, 0.0)}


class Layer:
    """One layer of the resolved spec: kind, pre-order uid, full name (residual prefixes
    included), its checked configuration `cfg`, inner layers (residual), and the indices of
    its params and state in the engine's lists."""

    def __init__(self, d, uid: int, prefix: str, dim_in: tuple, params: list, state: list):
        name = d.get("name") if isinstance(d, dict) else None
        where = f"layer {prefix}{name} (uid {uid})"
        if not isinstance(d, dict) or d.get("kind") not in IDS["layers"]:
            raise ValueError(f"{where}: kind must be one of {IDS['layers']}, got {d.get('kind') if isinstance(d, dict) else d!r}")
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"{where}: a layer needs a non-empty name without dots")
        self.kind, self.uid, self.name = d["kind"], uid, prefix + name
        self.cfg: dict[str, Any] = {"name": self.name, "dim_in": ints(d, "dim_in", where, lo=1), "dim_out": ints(d, "dim_out", where, lo=1)}
        cfg = self.cfg
        if cfg["dim_in"] != dim_in:
            raise ValueError(f"{where}: dim_in {list(cfg['dim_in'])} but its input is {list(dim_in)}")
        if self.kind in ACTIVATED:
            cfg["activator"] = activator(d, where)
        if self.kind in WINDOWED or self.kind == "global_avg_pool":
            if len(dim_in) != 3 or len(cfg["dim_out"]) != (1 if self.kind == "global_avg_pool" else 3):
                raise ValueError(f"{where}: {self.kind} needs a 3-D input, and dim_out {list(cfg['dim_out'])} does not fit")
        if self.kind in WINDOWED:
            cfg["field"], cfg["stride"] = ints(d, "field", where, 2, 1), ints(d, "stride", where, 2, 1)
            cfg["padding"] = ints(d, "padding", where, 2, 0)
            if self.kind != "conv" and any(p >= f for p, f in zip(cfg["padding"], cfg["field"])):
                raise ValueError(f"{where}: padding {list(cfg['padding'])} must be smaller than the field {list(cfg['field'])}")
        if self.kind == "conv":
            cfg["bias"] = flag(d, "bias", where)
            if d.get("algorithm", "auto") not in ALGORITHMS:
                raise ValueError(f"{where}: algorithm must be one of {ALGORITHMS}, got {d.get('algorithm')!r}")
        elif self.kind == "dense":
            cfg["bias"] = flag(d, "bias", where)
            if len(cfg["dim_out"]) != 1:
                raise ValueError(f"{where}: a dense output is flat, got dim_out {list(cfg['dim_out'])}")
        elif self.kind == "batchnorm":
            cfg["momentum"] = number(d, "momentum", where, lo=0.0, hi=1.0)
            cfg["eps"] = number(d, "eps", where, lo=0.0, open_lo=True)
            cfg["scale"], cfg["shift"] = flag(d, "scale", where), flag(d, "shift", where)
        elif self.kind == "dropout":
            cfg["rate"] = number(d, "rate", where, lo=0.0, hi=1.0, open_hi=True)
        if self.kind in ("batchnorm", "dropout", "residual") and cfg["dim_out"] != dim_in:
            raise ValueError(f"{where}: {self.kind} keeps the shape, but dim_out {list(cfg['dim_out'])} != dim_in {list(dim_in)}")
        self.inner: list[Layer] = []
        self.params: list[int] = []  # indices into the engine's parameter list
        self.state: list[int] = []  # indices into the engine's state list
        if self.kind == "residual":
            return  # its params and state are its inner layers' (whatever its own lists say); the walk collects them
        self._read_params(d.get("params", []), where, params)
        self._read_state(d.get("state", []), where, state)

    def _read_params(self, got, where: str, params: list) -> None:
        cfg, din, dout = self.cfg, self.cfg["dim_in"], self.cfg["dim_out"]
        if self.kind in ("conv", "dense"):
            wshape = (*cfg["field"], din[2], dout[2]) if self.kind == "conv" else (math.prod(din), dout[0])
            want = [("weight", wshape)] + ([("bias", (dout[-1],))] if cfg["bias"] else [])
        elif self.kind == "batchnorm":
            want = [(n, (din[-1],)) for n in ("scale", "shift") if cfg[n]]
        else:
            want = []
        if not isinstance(got, list) or not all(isinstance(p, dict) for p in got):
            raise ValueError(f"{where}: params must be a list of objects")
        have = [(p.get("name"), ints(p, "shape", where, lo=1)) for p in got]
        if have != want:
            raise ValueError(f"{where}: params {have} do not fit its configuration, dim_in and dim_out (expected {want})")
        for p in got:
            lr_mult = number(p, "lr_mult", where, 1.0, lo=0.0)
            wd_mult = number(p, "wd_mult", where, 1.0, lo=0.0)
            self.params.append(len(params))
            params.append((f"{self.name}.{p['name']}", tuple(p["shape"]), lr_mult, wd_mult))

    def _read_state(self, got, where: str, state: list) -> None:
        want = [(n, (self.cfg["dim_in"][-1],)) for n in ("running_mean", "running_var")] if self.kind == "batchnorm" else []
        if not isinstance(got, list) or not all(isinstance(s, dict) for s in got):
            raise ValueError(f"{where}: state must be a list of objects")
        have = [(s.get("name"), ints(s, "shape", where, lo=1)) for s in got]
        if have != want:
            raise ValueError(f"{where}: state {have} does not fit (expected {want})")
        for s in got:
            self.state.append(len(state))
            state.append((f"{self.name}.{s['name']}", tuple(s["shape"]), number(s, "init", where)))


def parse_layers(layers, dim_in: tuple, prefix: str, uid: list, params: list, state: list) -> list[Layer]:
    """Layers in order, numbered in pre-order from uid[0]; params and state appended in layout order."""
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"{'layer ' + prefix[:-1] if prefix else 'spec'}: layers must be a non-empty list")
    out = []
    for d in layers:
        layer = Layer(d, uid[0], prefix, dim_in, params, state)
        uid[0] += 1
        if layer.kind == "residual":
            layer.inner = parse_layers(d.get("layers"), dim_in, layer.name + ".", uid, params, state)
            if layer.inner[-1].cfg["dim_out"] != dim_in:
                raise ValueError(f"layer {layer.name}: inner layers end at {list(layer.inner[-1].cfg['dim_out'])}, not at its input {list(dim_in)}")
        dim_in = layer.cfg["dim_out"]
        out.append(layer)
    return out


def walk(layers: list[Layer]):
    """Every layer in pre-order (the uid order)."""
    for layer in layers:
        yield layer
        yield from walk(layer.inner)


def read_loss(d) -> dict:
    if not isinstance(d, dict) or d.get("name") not in IDS["losses"]:
        raise ValueError(f"spec: loss name must be one of {IDS['losses']}, got {d!r}")
    loss = {"name": d["name"], "n": number(d, "n", "loss", 1.0, lo=0.0, open_lo=True)}
    loss["label_smoothing"] = number(d, "label_smoothing", "loss", 0.0, lo=0.0, hi=1.0, open_hi=True)
    if loss["label_smoothing"] and not loss["name"].startswith("softmax"):
        raise ValueError(f"loss: label_smoothing applies to the softmax losses only, not {loss['name']}")
    return loss


def read_update(d) -> dict:
    if not isinstance(d, dict) or d.get("name") not in IDS["updates"]:
        raise ValueError(f"spec: update name must be one of {IDS['updates']}, got {d!r}")
    assert set(SLOTS) == set(IDS["updates"])
    name = d["name"]
    # weight_decay defaults to 0 except for adamw, whose point it is (no silent default there)
    rule = {"name": name, "weight_decay": number(d, "weight_decay", "update", None if name == "adamw" else 0.0, lo=0.0)}
    if name in ("momentum", "nesterov"):
        rule["mu"] = number(d, "mu", "update", lo=0.0, hi=1.0, open_hi=True)
    if name in ("adam", "adamw"):
        rule["beta1"] = number(d, "beta1", "update", lo=0.0, hi=1.0, open_hi=True)
        rule["beta2"] = number(d, "beta2", "update", lo=0.0, hi=1.0, open_hi=True)
        rule["eps"] = number(d, "eps", "update", lo=0.0, open_lo=True)
    if name == "muon":
        rule["mu"] = number(d, "mu", "update", lo=0.0, hi=1.0, open_hi=True)
        rule["fallback_mu"] = number(d, "fallback_mu", "update", lo=0.0, hi=1.0, open_hi=True)
        steps = d.get("steps", 5)
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 100:
            raise ValueError(f"update: steps must be an integer from 1 to 100, got {steps!r}")
        rule["steps"] = steps
        rule["normalize"] = flag({"normalize": d.get("normalize", False)}, "normalize", "update")
    return rule
