"""`neuroflow train cifar10 --preset speed` with airbench94's optimizer choices (batch 1024,
lr 1.5 mean, momentum .85, decay per step .002, BN shifts lr x64, readout x1/9 as a
reparametrisation, torch-default init + dirac, schedule .2→1 at 23 %→.07)."""
import math, sys
import numpy as np
from neuroflow.apps import cifar
from neuroflow.apps.cli import main
from neuroflow.nn import schedules
from neuroflow.nn.lookahead import Lookahead
from neuroflow.nn.optim import Nesterov
C = cifar
S = 1 / 9
MOM = 0.85
import os
PEAK = float(os.environ.get("AB_PEAK", 11.5 * 1024 / (1024 * (1 + 1 / (1 - MOM)))))   # 1.5
DECAY = 0.0153 * 1024 / (1024 * (1 + 1 / (1 - MOM)))          # per step at the peak: 0.002
INIT = os.environ.get("AB_INIT", "torch")
EPS = float(os.environ.get("AB_EPS", 1e-12))

def speed_ab(data, batch_size, iterations, seed, backend, widths=C.SPEED_WIDTHS[C.DEFAULT_WIDTH], peak=None,
             augment=C.SPEED_AUGMENT, **kw):
    peak = PEAK if peak is None else peak
    lam = DECAY / PEAK
    norm = C._channel_stats(data.xs)
    white = C.Convolution((32, 32, 3), padding=0, field=2, filters=24, activator=C.GELU, name="white", lr_mult=0.0)
    layout = [white]
    for i, c in enumerate(widths):
        bn = dict(momentum=0.4, eps=EPS, activator=C.GELU, scale=False, lr_mult=64.0, wd_mult=1 / 64)
        layout += [C.Convolution(padding=1, field=3, filters=c, activator=C.Linear, name=f"b{i}c0"), C.MaxPool(2, name=f"b{i}mp"),
                   C.BatchNorm(name=f"b{i}bn0", **bn),
                   C.Convolution(padding=1, field=3, filters=c, activator=C.Linear, name=f"b{i}c1"),
                   C.BatchNorm(name=f"b{i}bn1", **bn)]
    layout += [C.MaxPool(3, name="head"), C.Dense(10, C.Linear, name="out", lr_mult=S * S, wd_mult=1 / (S * S)),
               C.SoftmaxLogEntropy(label_smoothing=0.2)]
    steps = max(iterations, 1)
    settings = C.Settings(learning_rate=schedules.triangular(peak, steps, warmup=0.23, start=0.2 * peak, end=0.07 * peak),
                          update_rule=Nesterov(MOM, weight_decay=lam), batch_size=batch_size, iterations=iterations,
                          reduction="mean", dtype=np.float32, seed=seed, augment=augment,
                          lookahead=Lookahead.airbench(steps), **kw)
    net = C.Network(layout, settings, backend=backend, input_norm=norm)
    rng = np.random.default_rng(seed + 1)
    p = dict(net.parameters)
    new = {"white.weight": C.whitening(data.xs, norm).astype(net.dtype)}
    for k, w in p.items():
        if k.endswith(".weight") and k != "white.weight":
            fan_in = int(np.prod(w.shape[:-1]))
            if INIT == "torch":
                v = rng.uniform(-1, 1, size=w.shape) / math.sqrt(fan_in)
            else:
                v = np.asarray(w, dtype=np.float64)
            if k.startswith("b"):
                n = min(w.shape[2], w.shape[3])
                v[:, :, :, :n] = 0
                v[1, 1, np.arange(n), np.arange(n)] = 1
            if k == "out.weight":
                v = v * S
            new[k] = v.astype(net.dtype)
    net.parameters = new
    return net

if os.environ.get("AB_WIDTHS"):
    C.SPEED_WIDTHS.append(tuple(int(v) for v in os.environ["AB_WIDTHS"].split(",")))
C.PRESETS["speed"] = C.Preset(speed_ab, int(os.environ.get("AB_BATCH", 1024)), 10, "flip", True)
sys.exit(main(sys.argv[1:]))
