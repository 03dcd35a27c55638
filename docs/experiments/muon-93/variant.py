"""`neuroflow train cifar10 --preset speed` with airbench94_muon's optimizer choices, written in
the engine's terms: Muon (lr 0.24, momentum 0.6, weights normalised, 3 Newton–Schulz steps) on
the 3×3 filters; Nesterov 0.85 on BatchNorm shifts (lr 0.053 per summed loss) and the read-out
(lr 0.67, output ×1/W3 as a reparametrisation: initial weights of std 1/W3, lr_mult ×1/W3²,
wd_mult ×W3²), decay 2e-6·batch per step over their lr; every rate linear to 0; no lookahead;
torch-default init with Dirac; BN eps 1e-12. Env: MU_BATCH (2000), MU_WIDTHS ("64,128,128"),
MU_LR (0.24), MU_STEPS (3)."""
import math, os, sys
import numpy as np
from neuroflow.apps import cifar as C
from neuroflow.apps.cli import main
from neuroflow.nn import schedules
from neuroflow.nn.optim import Muon

LR = float(os.environ.get("MU_LR", 0.24))
NS_STEPS = int(os.environ.get("MU_STEPS", 3))


def speed_muon(data, batch_size, iterations, seed, backend, widths=C.SPEED_WIDTHS[C.DEFAULT_WIDTH], peak=None,
               augment=C.SPEED_AUGMENT, **kw):
    B, S = batch_size, 1 / widths[-1]
    lr = LR if peak is None else peak
    wd = 2e-6 * B
    lam_bn, lam_head = wd / 0.053 / B, wd / 0.67 / B / (S * S)
    norm = C._channel_stats(data.xs)
    layout = [C.Convolution((32, 32, 3), padding=0, field=2, filters=24, activator=C.GELU, name="white", lr_mult=0.0)]
    for i, c in enumerate(widths):
        bn = dict(momentum=0.4, eps=1e-12, activator=C.GELU, scale=False, lr_mult=0.053 * B / lr, wd_mult=1.0)
        layout += [C.Convolution(padding=1, field=3, filters=c, activator=C.Linear, name=f"b{i}c0", wd_mult=0.0),
                   C.MaxPool(2, name=f"b{i}mp"), C.BatchNorm(name=f"b{i}bn0", **bn),
                   C.Convolution(padding=1, field=3, filters=c, activator=C.Linear, name=f"b{i}c1", wd_mult=0.0),
                   C.BatchNorm(name=f"b{i}bn1", **bn)]
    layout += [C.MaxPool(3, name="head"),
               C.Dense(10, C.Linear, name="out", lr_mult=0.67 * B * S * S / lr, wd_mult=lam_head / lam_bn),
               C.SoftmaxLogEntropy(label_smoothing=0.2)]
    steps = max(iterations, 1)
    settings = C.Settings(learning_rate=schedules.triangular(lr, steps, warmup=0.0, end=0.0),
                          update_rule=Muon(0.6, fallback_mu=0.85, steps=NS_STEPS, normalize=True, weight_decay=lam_bn),
                          batch_size=batch_size, iterations=iterations, reduction="mean", dtype=np.float32, seed=seed,
                          augment=augment, **kw)
    net = C.Network(layout, settings, backend=backend, input_norm=norm)
    rng = np.random.default_rng(seed + 1)
    new = {"white.weight": C.whitening(data.xs, norm).astype(net.dtype)}
    for k, w in net.parameters.items():
        if k.endswith(".weight") and k != "white.weight":
            v = rng.uniform(-1, 1, size=w.shape) / math.sqrt(int(np.prod(w.shape[:-1])))
            if k.startswith("b"):
                n = min(w.shape[2], w.shape[3])
                v[:, :, :, :n] = 0
                v[1, 1, np.arange(n), np.arange(n)] = 1
            if k == "out.weight":
                v = v / v.std() * S
            new[k] = v.astype(net.dtype)
    net.parameters = new
    return net


C.SPEED_WIDTHS.append(tuple(int(v) for v in os.environ.get("MU_WIDTHS", "64,128,128").split(",")))
C.PRESETS["speed"] = C.Preset(speed_muon, int(os.environ.get("MU_BATCH", 2000)), 8, "flip", True)
sys.exit(main(sys.argv[1:]))
