"""The conformance cases: small networks that between them use every layer kind, activator,
loss, update rule, reduction and CPU conv algorithm (tests/conformance/test_meta.py checks
that they do), and the seeded data each case runs on.

A case is an *unresolved* spec (the fields a user's configuration gives) plus how to draw
its data. `resolved(case, dtype)` fills in dim_in/dim_out/params/state through
`neuroflow._core.resolve`, the one place shapes are computed; `hand_resolve` below is an
independent oracle written from docs/engine.md's table, which test_meta.py checks it against.

Data: everything is drawn from a generator seeded by the case's name, so a case is the same
on every engine and every run. Values are rounded to float32 (so f32 and f64 engines start
from exactly the same numbers) and never zero: magnitudes in [0.1, 1) with random signs,
weights scaled by 1/√fan-in, running variances in [0.5, 2).
"""

from __future__ import annotations

import copy
import json
import math
import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

ALGORITHMS = ("im2col", "im2col_t", "winograd", "winograd4", "direct")
STEPS = 3  # training steps compared per case


# ---------------------------------------------------------------- unresolved layers


def act(name: str = "linear", alpha: float = 0.0, bias: float = 0.0) -> dict:
    return {"name": name, "alpha": alpha, "bias": bias}


def pair(v) -> list:
    return list(v) if isinstance(v, (tuple, list)) else [v, v]


def conv(name, filters, field=3, stride=1, padding=0, bias=False, activator=None, algorithm="auto") -> dict:
    return {"kind": "conv", "name": name, "padding": pair(padding), "field": pair(field), "stride": pair(stride),
            "filters": filters, "bias": bias, "activator": activator or act(), "algorithm": algorithm}


def dense(name, neurons, bias=False, activator=None) -> dict:
    return {"kind": "dense", "name": name, "neurons": neurons, "bias": bias, "activator": activator or act()}


def bn(name, scale=True, shift=True, activator=None, momentum=0.1, eps=1e-5) -> dict:
    return {"kind": "batchnorm", "name": name, "momentum": momentum, "eps": eps, "scale": scale, "shift": shift,
            "activator": activator or act()}


def maxpool(name, field, stride=None, padding=0) -> dict:
    return {"kind": "maxpool", "name": name, "field": pair(field), "stride": pair(stride or field), "padding": pair(padding)}


def avgpool(name, field, stride=None, padding=0) -> dict:
    return {"kind": "avgpool", "name": name, "field": pair(field), "stride": pair(stride or field), "padding": pair(padding)}


def gap(name) -> dict:
    return {"kind": "global_avg_pool", "name": name}


def dropout(name, rate) -> dict:
    return {"kind": "dropout", "name": name, "rate": rate}


def residual(name, layers, activator=None) -> dict:
    return {"kind": "residual", "name": name, "layers": layers, "activator": activator or act()}


def loss(name="softmax_log_entropy", n=1, label_smoothing=0.0) -> dict:
    return {"name": name, "n": n, "label_smoothing": label_smoothing}


def update(name="vanilla", weight_decay=0.0, **kw) -> dict:
    return {"name": name, **kw, "weight_decay": weight_decay}


ADAM = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


# ---------------------------------------------------------------- resolution


def _out_size(size, pad, field, stride, exact: bool, what: str) -> int:
    span = size + 2 * pad - field
    if span < 0 or (exact and span % stride):
        raise ValueError(f"{what}: field {field}, stride {stride}, padding {pad} do not fit size {size}")
    return span // stride + 1


def hand_resolve(spec: dict) -> dict:
    """dim_in, dim_out, params and state of every layer from `input` and the layers'
    configuration (docs/engine.md's table), with per-parameter multipliers from a layer's
    `lr_mult`/`wd_mult` maps (param name -> factor, default 1). A residual's own lists are
    empty: its inner layers carry theirs (full names "res.inner.weight")."""
    spec = copy.deepcopy(spec)

    def param(d, name, shape):
        mults = (d.get("lr_mult", {}).get(name, 1.0), d.get("wd_mult", {}).get(name, 1.0))
        return {"name": name, "shape": list(shape), "lr_mult": mults[0], "wd_mult": mults[1]}

    def walk(layers, dim):
        for d in layers:
            kind, d["dim_in"] = d["kind"], list(dim)
            params, state = [], []
            if kind in ("conv", "maxpool", "avgpool"):
                X, Y, Z = dim
                (px, py), (fx, fy), (sx, sy) = d["padding"], d["field"], d["stride"]
                exact = kind == "conv"
                if not exact and (2 * px > fx or 2 * py > fy):
                    raise ValueError(f"{d['name']}: pooling padding must be at most half the field")
                out = [_out_size(X, px, fx, sx, exact, d["name"]), _out_size(Y, py, fy, sy, exact, d["name"])]
                dim = out + [d["filters"] if kind == "conv" else Z]
                if kind == "conv":
                    params = [param(d, "weight", (fx, fy, Z, d["filters"]))] + ([param(d, "bias", (d["filters"],))] if d["bias"] else [])
            elif kind == "dense":
                params = [param(d, "weight", (math.prod(dim), d["neurons"]))] + ([param(d, "bias", (d["neurons"],))] if d["bias"] else [])
                dim = [d["neurons"]]
            elif kind == "batchnorm":
                params = [param(d, n, (dim[-1],)) for n in ("scale", "shift") if d[n]]
                state = [{"name": "running_mean", "shape": [dim[-1]], "init": 0.0},
                         {"name": "running_var", "shape": [dim[-1]], "init": 1.0}]
            elif kind == "global_avg_pool":
                dim = [dim[2]]
            elif kind == "residual":
                walk(d["layers"], dim)  # its params and state are its inner layers' own
            d["dim_out"], d["params"], d["state"] = list(dim), params, state

    walk(spec["layers"], spec["input"])
    return spec


def core_resolve() -> Optional[Callable[[str], str]]:
    try:
        from neuroflow import _core
    except ImportError:
        return None
    return getattr(_core, "resolve", None)


def resolve(spec: dict) -> dict:
    """The resolved spec (neuroflow._core.resolve)."""
    from neuroflow import _core

    return json.loads(_core.resolve(json.dumps(spec)))


def leaves(layers: list, prefix: str = ""):
    """(full name, layer) of every layer in pre-order (uid order)."""
    for d in layers:
        yield prefix + d["name"], d
        if d["kind"] == "residual":
            yield from leaves(d["layers"], prefix + d["name"] + ".")


# ---------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    name: str
    input: tuple
    layers: list
    loss: dict = field(default_factory=loss)
    update: dict = field(default_factory=update)
    reduction: str = "sum"
    seed: int = 7
    n: int = 3  # batch size
    lr: float = 0.05
    uint8: bool = False  # inputs as uint8 (levels 1..255, or `levels`)
    levels: Optional[tuple] = None  # uint8 values to draw from
    negative_x: bool = False  # all inputs negative (padding must not win a max-pool)
    soft_targets: bool = False  # probability rows instead of one-hot (softmax losses)
    mults: dict = field(default_factory=dict)  # full param name -> (lr_mult, wd_mult), set on its layer
    fixed: dict = field(default_factory=dict)  # full param name -> constant value (ties)
    smooth: bool = True  # differentiable at the case's data: finite differences apply
    input_norm: Optional[dict] = None  # {"mean": [...], "std": [...]} per input channel

    def spec(self, dtype: str = "f64") -> dict:
        """The unresolved spec, with the multipliers as the layers' lr_mult/wd_mult maps."""
        layers = copy.deepcopy(self.layers)
        for full, d in leaves(layers):
            for key, (lr, wd) in self.mults.items():
                layer, _, param = key.rpartition(".")
                if layer == full:
                    d.setdefault("lr_mult", {})[param] = lr
                    d.setdefault("wd_mult", {})[param] = wd
        spec = {"version": 2, "dtype": dtype, "input": list(self.input), "layers": layers,
                "loss": dict(self.loss), "update": dict(self.update), "reduction": self.reduction, "seed": self.seed}
        if self.input_norm is not None:
            spec["input_norm"] = copy.deepcopy(self.input_norm)
        return spec

    def kinds(self) -> set:
        return {d["kind"] for _, d in leaves(self.layers)}


def resolved(case: Case, dtype: str) -> dict:
    """The case's resolved spec in `dtype`."""
    spec = resolve(case.spec(dtype))
    got = {f"{full}.{p['name']}": (p["lr_mult"], p["wd_mult"]) for full, d in leaves(spec["layers"]) for p in d["params"]}
    for key, mults in case.mults.items():
        assert got.get(key) == mults, f"{case.name}: {key} resolved with multipliers {got.get(key)}, expected {mults}"
    return spec


def _cases() -> list[Case]:
    A = act
    c = []
    # --- conv: padding, stride 2, odd and rectangular sizes, bias on/off, several filters
    c.append(Case("conv_pad_bias", (5, 6, 2), [conv("c0", 3, padding=1, bias=True, activator=A("tanh")), dense("d1", 4, bias=True)]))
    c.append(Case("conv_stride2_odd", (7, 5, 3), [conv("c0", 5, stride=2, padding=1, activator=A("sigmoid")), gap("g1"), dense("d2", 3)],
                  loss=loss("squared_error"), update=update("momentum", 5e-3, mu=0.9), reduction="mean"))
    c.append(Case("conv_rect", (5, 6, 2), [conv("c0", 4, field=(3, 2), stride=(1, 2), padding=(0, 1), bias=True,
                                                 activator=A("leaky_relu", 0.1, 0.05)), dense("d1", 3)],
                  loss=loss("abs_cubic_error"), update=update("nesterov", mu=0.8)))
    c.append(Case("input_norm_uint8", (5, 4, 3), [conv("c0", 3, padding=1, bias=True, activator=A("tanh")), dense("d1", 3)],
                  uint8=True, input_norm={"mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26]}))
    c.append(Case("input_norm_float", (6,), [dense("d0", 4, bias=True, activator=A("softplus")), dense("d1", 3)],
                  input_norm={"mean": [0.1, -0.2, 0.3, 0.0, 0.5, -0.5], "std": [2.0, 0.5, 1.0, 3.0, 0.25, 1.5]}))
    c.append(Case("conv_1x1", (4, 3, 5), [conv("c0", 6, field=1, bias=True, activator=A("softplus")),
                                          conv("c1", 2, field=2, activator=A("tanh", bias=-0.1)), dense("d2", 3)], n=2))
    c.append(Case("conv_uint8", (7, 5, 3), [conv("c0", 4, stride=2, padding=1, bias=True, activator=A("relu", bias=0.05)),
                                            dense("d1", 3, bias=True)], uint8=True, n=4))
    # --- each CPU conv algorithm, on the shapes it takes, with a second layer so that its input gradient runs too
    c.append(Case("alg_im2col", (7, 5, 3), [conv("c0", 5, stride=2, padding=1, activator=A("tanh"), algorithm="im2col"),
                                            conv("c1", 6, padding=1, bias=True, activator=A("gelu"), algorithm="im2col"),
                                            gap("g2"), dense("d3", 3)]))
    # im2col tiles that run over several samples and start inside one (10 samples of 49
    # and of 9 output positions: tiles of 123 and of 64 rows; input gradients by groups of
    # 7 samples and the 3 left)
    c.append(Case("alg_im2col_tiles_cross_samples", (7, 7, 2), [conv("c0", 5, padding=1, activator=A("tanh"), algorithm="im2col"),
                                                                conv("c1", 4, stride=2, algorithm="im2col"), dense("d2", 3)], n=10))
    c.append(Case("alg_im2col_t", (5, 5, 3), [conv("c0", 6, padding=1, activator=A("gelu"), algorithm="im2col_t"),
                                              conv("c1", 5, field=2, activator=A("sigmoid"), algorithm="im2col_t"),
                                              conv("c2", 5, padding=2, field=3, activator=A("tanh"), algorithm="im2col_t"),
                                              gap("g3"), dense("d4", 3)]))
    c.append(Case("alg_winograd", (4, 4, 8), [conv("c0", 8, padding=1, bias=True, activator=A("tanh"), algorithm="winograd"),
                                              conv("c1", 8, padding=1, activator=A("sigmoid"), algorithm="winograd"),
                                              gap("g2"), dense("d3", 3)], n=2))
    c.append(Case("alg_winograd_odd", (5, 6, 8), [conv("c0", 8, activator=A("softplus"), algorithm="winograd"),
                                                  conv("c1", 9, padding=1, bias=True, activator=A("tanh"), algorithm="winograd"),
                                                  gap("g2"), dense("d3", 2)], n=2, loss=loss("squared_error")))
    # F(4×4): a 9×7 map is 3×2 tiles with partial ones on both sides; padding 2 in y
    c.append(Case("alg_winograd4", (9, 7, 8), [conv("c0", 8, padding=1, bias=True, activator=A("gelu"), algorithm="winograd4"),
                                               conv("c1", 9, padding=(0, 2), activator=A("tanh"), algorithm="winograd4"),
                                               gap("g2"), dense("d3", 3)], n=2))
    # winograd4 on a 4×4 stride-2 layer runs over its input's phases (a 2×2 layer of 4Z
    # channels, F(4×4, 2×2)); then a 2×2 stride-1 layer, F(4×4, 2×2) itself
    c.append(Case("alg_winograd4_phases", (10, 8, 4), [conv("c0", 8, field=4, stride=2, padding=1, bias=True, activator=A("gelu"),
                                                            algorithm="winograd4"),
                                                       conv("c1", 9, field=2, padding=(1, 0), activator=A("tanh"), algorithm="winograd4"),
                                                       gap("g2"), dense("d3", 3)], n=2))
    # activators whose f′ needs the pre-activations, on every conv path: training keeps f′
    # itself for the backward pass (Activator::forward_keep_fprime)
    c.append(Case("kept_fprime", (4, 4, 8), [conv("c0", 8, padding=1, bias=True, activator=A("gelu", bias=0.1), algorithm="winograd"),
                                             conv("c1", 8, padding=1, activator=A("square"), algorithm="winograd"),
                                             conv("c2", 1, padding=1, activator=A("leaky_relu", -0.2), algorithm="direct"),
                                             conv("c3", 3, field=2, activator=A("gelu"), algorithm="im2col_t"),
                                             gap("g4"), dense("d5", 3)], n=2, loss=loss("squared_error")))
    c.append(Case("alg_direct", (7, 7, 2), [conv("c0", 4, stride=2, padding=1, bias=True, activator=A("tanh"), algorithm="direct"),
                                            conv("c1", 1, padding=1, activator=A("sigmoid"), algorithm="direct"), dense("d2", 3)]))
    c.append(Case("alg_direct_s1", (5, 7, 1), [conv("c0", 3, padding=1, activator=A("softplus"), algorithm="direct"),
                                               conv("c1", 2, field=(2, 3), bias=True, activator=A("tanh"), algorithm="direct"),
                                               dense("d2", 2)], loss=loss("squared_error")))
    # --- dense
    c.append(Case("dense_flat", (7,), [dense("d0", 5, bias=True, activator=A("gelu")), dense("d1", 4, activator=A("tanh", bias=0.2))], n=4))
    # --- batchnorm: after conv, scale/shift on and off, on flat input, momentum and eps
    c.append(Case("bn_conv_relu", (5, 5, 3), [conv("c0", 4, padding=1), bn("b1", activator=A("relu")), maxpool("m2", 2), dense("d3", 3)],
                  update=update("momentum", mu=0.9)))
    c.append(Case("bn_scale_only", (4, 5, 2), [conv("c0", 3, padding=1), bn("b1", shift=False, activator=A("tanh"), momentum=0.3, eps=1e-3),
                                               gap("g2"), dense("d3", 3)], n=2))
    c.append(Case("bn_shift_only", (4, 4, 3), [conv("c0", 3, padding=1, activator=A("tanh")), bn("b1", scale=False, activator=A("sigmoid")),
                                               avgpool("a2", 2), dense("d3", 3)]))
    c.append(Case("bn_neither", (5, 3, 2), [conv("c0", 3, field=(3, 1)), bn("b1", scale=False, shift=False, activator=A("softplus")),
                                            dense("d2", 2)], loss=loss("squared_error"), reduction="mean"))
    c.append(Case("bn_flat", (6,), [bn("b0"), dense("d1", 5, bias=True, activator=A("tanh")), bn("b2", activator=A("gelu"), momentum=0.5),
                                    dense("d3", 3)], n=4))
    # --- max-pool: overlapping windows, padding (which never wins), odd sizes, ties
    c.append(Case("maxpool_2x2", (6, 6, 2), [conv("c0", 3, padding=1, activator=A("tanh")), maxpool("m1", 2), dense("d2", 3)]))
    # windows that tile the input (the engine's one-pass gradient) and leave a row and a
    # column past the last window, whose gradient is zero
    c.append(Case("maxpool_tiled_leftover", (7, 5, 3), [conv("c0", 3, padding=1, activator=A("tanh")), maxpool("m1", (3, 2)), dense("d2", 3)]))
    c.append(Case("maxpool_overlap_pad", (7, 5, 2), [conv("c0", 3, padding=1, activator=A("leaky_relu", 0.2)),
                                                     maxpool("m1", 3, stride=2, padding=1), dense("d2", 3)]))
    c.append(Case("maxpool_s1_pad_negative", (5, 4, 2), [maxpool("m0", 3, stride=1, padding=1), conv("c1", 2, padding=1, activator=A("tanh")),
                                                         maxpool("m2", (2, 3), stride=(1, 2), padding=(0, 1)), dense("d3", 3)],
                  negative_x=True))
    c.append(Case("maxpool_ties", (4, 4, 2), [conv("c0", 1, field=1), maxpool("m1", 2, stride=1), dense("d2", 3, bias=True)],
                  uint8=True, levels=(1, 2), fixed={"c0.weight": 1.0}, smooth=False))
    # --- avg-pool: padding counts, overlapping windows
    c.append(Case("avgpool_2x2", (6, 4, 2), [conv("c0", 3, padding=1, activator=A("sigmoid")), avgpool("a1", 2), dense("d2", 3)]))
    c.append(Case("avgpool_pad", (7, 5, 3), [avgpool("a0", 3, stride=2, padding=1), conv("c1", 2, padding=1, activator=A("tanh")),
                                             dense("d2", 3)]))
    c.append(Case("avgpool_s1", (4, 5, 2), [conv("c0", 3, padding=1, activator=A("softplus")), avgpool("a1", 3, stride=1, padding=1),
                                            gap("g2"), dense("d3", 3)]))
    # --- dropout: several rates, 3-D and flat, first and last layer, a seed using both halves
    c.append(Case("dropout_conv", (5, 5, 2), [conv("c0", 4, padding=1, activator=A("relu")), dropout("p1", 0.5), gap("g2"), dense("d3", 3)],
                  seed=0x9E3779B97F4A7C15))
    c.append(Case("dropout_flat_last", (8,), [dropout("p0", 0.1), dense("d1", 6, bias=True, activator=A("tanh")), dropout("p2", 0.25)],
                  loss=loss("squared_error"), seed=12345678901, n=4))
    c.append(Case("dropout_zero", (6,), [dense("d0", 5, activator=A("sigmoid")), dropout("p1", 0.0), dense("d2", 3)]))
    # --- residual: conv + bn inside, nested, dropout inside, flat, and as the last layer
    c.append(Case("residual_conv_bn", (4, 4, 3), [conv("c0", 4, padding=1, activator=A("tanh")),
                                                  residual("r1", [conv("c2", 4, padding=1), bn("b3", activator=A("relu"))], A("relu")),
                                                  gap("g4"), dense("d5", 3)], update=update("nesterov", 1e-3, mu=0.9)))
    c.append(Case("residual_nested", (4, 5, 3), [conv("c0", 3, field=1, activator=A("tanh")),
                                                 residual("r1", [conv("c2", 3, padding=1, bias=True, activator=A("tanh")),
                                                                 residual("r3", [conv("c4", 3, padding=1), bn("b5", activator=A("sigmoid"))],
                                                                          A("linear", bias=0.1)),
                                                                 dropout("p6", 0.3)], A("gelu", bias=0.1)),
                                                 avgpool("a7", 2), dense("d8", 2)], loss=loss("squared_error"), seed=99))
    c.append(Case("residual_flat_last", (5,), [dense("d0", 5, bias=True, activator=A("tanh")),
                                               residual("r1", [dense("d2", 5, activator=A("tanh")), dense("d3", 5, bias=True)], A("softplus"))],
                  n=4))
    # --- every activator (α and bias included) in a hidden layer and on the output the loss reads
    for name in ("relu", "leaky_relu", "sigmoid", "tanh", "linear", "softplus", "square", "gelu"):
        alpha = 0.15 if name == "leaky_relu" else 0.0
        c.append(Case(f"act_{name}", (5,), [dense("d0", 4, bias=True, activator=A(name, alpha, 0.1)),
                                            dense("d1", 3, activator=A(name, alpha, -0.05))], loss=loss("squared_error"), n=4))
    # --- losses: label smoothing, soft targets, several true classes
    c.append(Case("loss_softmax_smoothing", (6,), [dense("d0", 5, bias=True, activator=A("tanh")), dense("d1", 4)],
                  loss=loss("softmax_log_entropy", label_smoothing=0.1), n=4))
    c.append(Case("loss_softmax_soft_targets", (6,), [dense("d0", 4, activator=A("sigmoid")), dense("d1", 5)], soft_targets=True,
                  reduction="mean"))
    c.append(Case("loss_mult", (6,), [dense("d0", 5, bias=True, activator=A("tanh")), dense("d1", 5)],
                  loss=loss("softmax_log_mult_entropy", n=2)))
    c.append(Case("loss_mult_smoothing", (6,), [dense("d0", 5, activator=A("gelu")), dense("d1", 6)],
                  loss=loss("softmax_log_mult_entropy", n=3, label_smoothing=0.2), reduction="mean"))
    c.append(Case("loss_abs_cubic", (4, 3, 2), [conv("c0", 2, padding=1, activator=A("tanh")), dense("d1", 3)],
                  loss=loss("abs_cubic_error"), reduction="mean"))
    # --- update rules with weight decay and per-parameter multipliers, both reductions
    bnnet = [conv("c0", 3, padding=1), bn("b1", activator=A("tanh")), gap("g2"), dense("d3", 3, bias=True)]
    mults = {"b1.shift": (10.0, 0.0), "d3.bias": (2.0, 0.0), "c0.weight": (0.5, 2.0)}
    c.append(Case("upd_vanilla_wd", (4, 4, 2), bnnet, update=update("vanilla", 1e-2), mults=mults))
    c.append(Case("upd_momentum_wd", (4, 4, 2), bnnet, update=update("momentum", 5e-3, mu=0.9), mults=mults, reduction="mean"))
    c.append(Case("upd_nesterov_wd", (4, 4, 2), bnnet, update=update("nesterov", 1e-2, mu=0.8), mults=mults))
    c.append(Case("upd_adam_wd", (4, 4, 2), bnnet, update=update("adam", 1e-2, **ADAM), mults=mults, lr=0.01))
    c.append(Case("upd_adam_mean", (6,), [dense("d0", 4, bias=True, activator=A("tanh")), dense("d1", 3)],
                  update=update("adam", 0.0, beta1=0.8, beta2=0.99, eps=1e-6), reduction="mean", lr=0.02))
    c.append(Case("upd_adamw", (4, 4, 2), bnnet, update=update("adamw", 0.05, **ADAM), mults=mults, lr=0.01, reduction="mean"))
    c.append(Case("upd_adamw_dropout", (7,), [dense("d0", 6, bias=True, activator=A("gelu")), dropout("p1", 0.3), dense("d2", 3)],
                  update=update("adamw", 0.1, **ADAM), lr=0.01, mults={"d0.bias": (3.0, 1.0)}))
    # Muon: filters tall (K = 18 > F = 3) and wide (1×1: K = 2 < F = 6), one frozen; biases,
    # BatchNorm and dense weights by the Nesterov fallback
    muon = dict(mu=0.6, fallback_mu=0.85)
    c.append(Case("upd_muon", (4, 4, 2), bnnet, update=update("muon", 1e-2, **muon, steps=3, normalize=True), mults=mults,
                  lr=0.05, reduction="mean"))
    c.append(Case("upd_muon_wide", (4, 4, 2), [conv("c0", 6, field=1), conv("c1", 4, padding=1, activator=A("tanh")),
                                               conv("c2", 3, padding=1, bias=True, activator=A("gelu")), gap("g3"), dense("d4", 3)],
                  update=update("muon", 1e-2, **muon), mults={"c1.weight": (0.0, 1.0), "c2.weight": (0.5, 3.0)}, lr=0.05))
    # --- frozen parameters (lr_mult 0): no update, slots untouched, no gradient in a
    # training pass; a frozen prefix (here through a residual) is not back-propagated
    frozen = [conv("c0", 3, padding=1, bias=True, activator=A("tanh")),
              residual("r1", [conv("c", 3, padding=1), bn("b", activator=A("relu"))]),
              conv("c2", 2, padding=1, activator=A("gelu")), gap("g3"), dense("d4", 3, bias=True)]
    off = {k: (0.0, 1.0) for k in ("c0.weight", "c0.bias", "r1.c.weight", "r1.b.scale", "r1.b.shift")}
    c.append(Case("frozen_prefix_adam", (5, 4, 2), frozen, update=update("adam", 1e-2, **ADAM), mults=off, lr=0.01))
    c.append(Case("frozen_prefix_nesterov", (5, 4, 2), frozen, update=update("nesterov", 1e-2, mu=0.8), mults=off,
                  reduction="mean"))
    # frozen layers between trained ones still pass ∂L/∂x down; a layer half frozen
    c.append(Case("frozen_middle_adamw", (5, 4, 2), frozen, update=update("adamw", 0.05, **ADAM), lr=0.01,
                  mults={"c0.weight": (0.0, 1.0), "r1.c.weight": (0.0, 1.0), "c2.weight": (0.0, 0.0)}))
    c.append(Case("frozen_all_momentum", (5, 4, 2), frozen, update=update("momentum", 1e-2, mu=0.9),
                  mults={**off, "c2.weight": (0.0, 1.0), "d4.weight": (0.0, 1.0), "d4.bias": (0.0, 1.0)}))
    return c


CASES = {case.name: case for case in _cases()}


# ---------------------------------------------------------------- data


def _rng(case: Case, what: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{case.name}/{what}".encode()))


def nonzero(rng, shape, low=0.1, high=1.0) -> np.ndarray:
    """Magnitudes in [low, high) with random signs, rounded to float32 (held as float64)."""
    v = rng.uniform(low, high, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return v.astype(np.float32).astype(np.float64)


def f32(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float32).astype(np.float64)


@dataclass
class Data:
    params: list
    state: list
    slots: list
    step: int
    batches: list  # (x, t) per training step; batches[0] is also the forward/gradient batch


def make_data(case: Case, spec: dict, slots: list[str]) -> Data:
    """Seeded starting point and batches for a case (float64 arrays, float32-representable)."""
    rng = _rng(case, "params")
    params = []
    for full, d in leaves(spec["layers"]):
        if d["kind"] == "residual":
            continue
        for p in d["params"]:
            shape, name = tuple(p["shape"]), f"{full}.{p['name']}"
            if name in case.fixed:
                params.append(np.full(shape, case.fixed[name]))
            elif p["name"] == "weight":
                params.append(f32(nonzero(rng, shape) * (1.5 / math.sqrt(math.prod(shape[:-1])))))
            elif p["name"] == "scale":
                params.append(f32(rng.uniform(0.5, 1.5, shape)))
            else:  # bias, shift
                params.append(nonzero(rng, shape, 0.05, 0.5))
    rng = _rng(case, "state")
    state = []
    for _, d in leaves(spec["layers"]):
        for s in d["state"] if d["kind"] != "residual" else []:
            shape = tuple(s["shape"])
            state.append(nonzero(rng, shape, 0.05, 0.5) if s["name"] == "running_mean" else f32(rng.uniform(0.5, 2.0, shape)))
    rng = _rng(case, "slots")
    opt = []
    for p in params:
        for slot in slots:
            opt.append(f32(rng.uniform(1e-4, 1e-2, p.shape)) if slot == "v" else nonzero(rng, p.shape, 0.005, 0.05))
    rng = _rng(case, "batches")
    k = math.prod(_last_dim_out(spec))
    batches = [(_x(case, rng), _targets(case, rng, k)) for _ in range(STEPS)]
    return Data(params, state, opt, int(rng.integers(1, 10)), batches)


def _last_dim_out(spec: dict) -> list:
    return spec["layers"][-1]["dim_out"]


def _x(case: Case, rng) -> np.ndarray:
    shape = (case.n, *case.input)
    if case.uint8:
        levels = np.array(case.levels or range(1, 256), dtype=np.uint8)
        return rng.choice(levels, size=shape)
    x = nonzero(rng, shape)
    return -np.abs(x) if case.negative_x else x


def _targets(case: Case, rng, k: int) -> np.ndarray:
    name = case.loss["name"]
    if name == "softmax_log_entropy":
        if case.soft_targets:
            # probability rows in sixteenths, each ≥ 1/16: exact in float32, summing to exactly 1
            return (1.0 + rng.multinomial(16 - k, np.full(k, 1.0 / k), size=case.n)) / 16.0
        return np.eye(k)[rng.integers(0, k, case.n)]
    if name == "softmax_log_mult_entropy":
        t = np.zeros((case.n, k))
        for row in t:
            row[rng.choice(k, size=int(case.loss["n"]), replace=False)] = 1.0
        return t
    return nonzero(rng, (case.n, k))
