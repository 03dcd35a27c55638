"""The CIFAR-10 speed recipe in neuroflow and in PyTorch, one after the other on this machine:
test accuracy against training time, and the time each needs to reach each accuracy.

    python benchmarks/cifar_race.py [--data PATH] [--epochs 8] [--width 1] [--threads 2]
                                    [--limit N] [--json out.json]

The same recipe in both (neuroflow's `--preset speed-sgd`, python/neuroflow/apps/cifar.py; the
Muon recipe of `--preset speed` is raced by airbench_calibration.py --muon):
the same net (frozen 2×2 whitening conv, three blocks of conv → max-pool →
BatchNorm(GELU) → conv → BatchNorm(GELU) with BN shifts only, max-pool, a linear read-out),
the same initial weights (PyTorch's are copied from neuroflow's), per-channel input
normalisation, label smoothing 0.2, Nesterov 0.9 with weight decay 5e-4 on the conv and
read-out weights only, the same one-cycle learning rate per step, the same lookahead
(airbench's: every 5 steps the weights and BatchNorm statistics are pulled to a slow copy
by neuroflow's `Lookahead` fractions), batch 64, shuffled
epochs, translation by up to ±2 pixels with reflected borders and airbench's alternating
flip, flip test-time augmentation at the end. PyTorch draws its batches from a uint8
tensor and converts, normalises and augments them with its own ops, as a user's loop does;
random draws differ between the two (same distributions).

Timing: the training clock runs from the first step to the last and stops while the test
set is evaluated after each epoch (without TTA: the curve); "time to X %" is the training
clock at the end of the first epoch whose test accuracy reached X. The machine is shared
and each framework runs once: read ratios within ±10 % as ties.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import neuroflow as nf
from neuroflow.apps.cifar import SPEED_WIDTHS, Data, speed_net
from neuroflow.io.datasets import cifar10
from neuroflow.nn.settings import Waypoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nets import torch_speed  # noqa: E402

THRESHOLDS = (0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.94)
BATCH = 64


def load(root: str, limit: int | None) -> Data:
    xs, ys, names = cifar10(root, "train")
    tx, ty, _ = cifar10(root, "test")
    if limit:
        xs, ys, tx, ty = xs[:limit], ys[:limit], tx[:limit], ty[:limit]
    return Data(xs, ys, tx, ty, names)


def run_neuroflow(data: Data, epochs: int, widths: tuple, seed: int) -> dict:
    steps_per_epoch = math.ceil(len(data.xs) / BATCH)
    curve: list = []
    clock = {"paused": 0.0}

    def after_epoch(iteration: int, net) -> None:
        t = time.perf_counter()
        acc = net.evaluate(data.tx, data.ty).accuracy
        curve.append((iteration // steps_per_epoch, t - clock["start"] - clock["paused"], acc))
        clock["paused"] += time.perf_counter() - t

    net = speed_net(data, BATCH, steps_per_epoch * epochs, seed, "cpu", widths=widths, verbose=False,
                    waypoint=Waypoint(steps_per_epoch, after_epoch))
    initial = {k: v.copy() for k, v in net.parameters.items()}
    clock["start"] = time.perf_counter()
    net.train(data.xs, data.ys)
    train_s = time.perf_counter() - clock["start"] - clock["paused"]
    t = time.perf_counter()
    final = net.score(net.outputs(data.tx, "flip"), data.ty).accuracy
    return {"curve": curve, "train_seconds": train_s, "final_tta": final, "tta_seconds": time.perf_counter() - t,
            "initial": initial, "schedule": net.settings.learning_rate, "norm": net.input_norm,
            "lookahead": net.settings.lookahead, "steps": net.settings.iterations}


def torch_model(widths: tuple, initial: dict):
    import torch
    from torch import nn

    model = torch_speed(widths)
    # neuroflow's initial weights: conv (kx, ky, Z, F) -> (F, Z, kx, ky) with images as (N, Z, X, Y)
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    bns = [m for m in model if isinstance(m, nn.BatchNorm2d)]
    names = list(initial)
    conv_w = [k for k in names if k.endswith(".weight") and initial[k].ndim == 4]
    shifts = [k for k in names if k.endswith(".shift")]
    dense_w = [k for k in names if k.endswith(".weight") and initial[k].ndim == 2]
    assert len(conv_w) == len(convs) and len(shifts) == len(bns) and len(dense_w) == 1, names
    with torch.no_grad():
        for m, k in zip(convs, conv_w):
            m.weight.copy_(torch.from_numpy(initial[k]).permute(3, 2, 0, 1))
        for m, k in zip(bns, shifts):
            m.bias.copy_(torch.from_numpy(initial[k]))
        model[-1].weight.copy_(torch.from_numpy(initial[dense_w[0]]).T)
    decay = [m.weight for m in convs[1:]] + [model[-1].weight]
    plain = [m.bias for m in bns]
    return model.to(memory_format=torch.channels_last), decay, plain


def run_torch(data: Data, epochs: int, widths: tuple, seed: int, ref: dict) -> dict:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    model, decay, plain = torch_model(widths, ref["initial"])
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": plain, "weight_decay": 0.0}],
                          lr=0.0, momentum=0.9, nesterov=True)
    mean = torch.tensor(ref["norm"][0], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(ref["norm"][1], dtype=torch.float32).view(1, 3, 1, 1)
    xs = torch.from_numpy(data.xs).permute(0, 3, 1, 2)  # uint8 (N, Z, X, Y), a view
    ys = torch.from_numpy(data.ys.astype(np.int64))
    tx = torch.from_numpy(data.tx).permute(0, 3, 1, 2)
    n, steps_per_epoch = len(xs), math.ceil(len(data.xs) / BATCH)
    base_flip = torch.from_numpy(gen.integers(0, 2, n).astype(bool))

    def prepare(u8):
        return ((u8.float() / 255.0 - mean) / std).contiguous(memory_format=torch.channels_last)

    def evaluate(flip: bool) -> float:
        model.eval()
        correct = 0
        with torch.no_grad():
            for lo in range(0, len(tx), 500):
                x = prepare(tx[lo:lo + 500])
                p = F.softmax(model(x), dim=1)
                if flip:
                    p = (p + F.softmax(model(x.flip(2)), dim=1)) / 2
                correct += int((p.argmax(1) == torch.from_numpy(data.ty[lo:lo + 500].astype(np.int64))).sum())
        model.train()
        return correct / len(tx)

    la, total = ref["lookahead"], ref["steps"]
    slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    curve, paused, step = [], 0.0, 0
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.from_numpy(gen.permutation(n))
        for lo in range(0, n, BATCH):
            idx = order[lo:lo + BATCH]
            x = F.pad(xs[idx].float(), (2, 2, 2, 2), mode="reflect")  # translate ±2, reflected borders
            dx, dy = gen.integers(0, 5, len(idx)), gen.integers(0, 5, len(idx))
            x = torch.stack([x[i, :, a:a + 32, b:b + 32] for i, (a, b) in enumerate(zip(dx, dy))])
            flip = base_flip[idx] ^ bool(epoch % 2)  # airbench's alternating flip
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(2), x)
            x = ((x / 255.0 - mean) / std).contiguous(memory_format=torch.channels_last)
            for g in opt.param_groups:
                g["lr"] = ref["schedule"](step + 1)  # iterations count from 1, as neuroflow calls it
            loss = F.cross_entropy(model(x), ys[idx], label_smoothing=0.2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if la is not None and la.due(step, total):  # the slow copy moves, the model restarts from it
                fraction = la.pull(step, total)
                with torch.no_grad():
                    for k, v in model.state_dict().items():
                        if k in slow:
                            slow[k].lerp_(v, fraction)
                            v.copy_(slow[k])
        t = time.perf_counter()
        curve.append((epoch + 1, t - start - paused, evaluate(False)))
        paused += time.perf_counter() - t
    train_s = time.perf_counter() - start - paused
    t = time.perf_counter()
    final = evaluate(True)
    return {"curve": curve, "train_seconds": train_s, "final_tta": final, "tta_seconds": time.perf_counter() - t}


def time_to(curve: list, acc: float):
    return next((s for _, s, a in curve if a >= acc), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.environ.get("NEUROFLOW_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "datasets")))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--width", type=int, default=1, help="index into SPEED_WIDTHS")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--limit", type=int, default=None, help="first N training and test images (a quick check)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import torch

    nf.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    widths = SPEED_WIDTHS[args.width]
    data = load(args.data, args.limit)
    print(f"CIFAR-10 speed recipe, widths {widths}, {args.epochs} epochs of batch {BATCH}, {len(data.xs)} training and "
          f"{len(data.tx)} test images, {args.threads} threads; neuroflow {nf.__version__}, PyTorch {torch.__version__}",
          flush=True)
    results = {"neuroflow": run_neuroflow(data, args.epochs, widths, args.seed)}
    results["torch"] = run_torch(data, args.epochs, widths, args.seed, results["neuroflow"])
    print(f"{'epoch':>5}  {'neuroflow s':>11} {'acc':>7}  {'PyTorch s':>9} {'acc':>7}")
    for (e, s1, a1), (_, s2, a2) in zip(results["neuroflow"]["curve"], results["torch"]["curve"]):
        print(f"{e:>5}  {s1:>11.1f} {a1:>7.2%}  {s2:>9.1f} {a2:>7.2%}")
    for name in ("neuroflow", "torch"):
        r = results[name]
        print(f"{name}: {r['train_seconds']:.1f} s training, final test accuracy with flip TTA {r['final_tta']:.2%} "
              f"({r['tta_seconds']:.1f} s)")
    table = []
    for acc in THRESHOLDS:
        a, b = time_to(results["neuroflow"]["curve"], acc), time_to(results["torch"]["curve"], acc)
        if a is None and b is None:
            continue
        ratio = f"{b / a:.2f}× sooner" if a and b else "—"
        print(f"time to {acc:.0%}: neuroflow {a and f'{a:.1f} s' or 'not reached'}, PyTorch "
              f"{b and f'{b:.1f} s' or 'not reached'}: neuroflow {ratio}")
        table.append({"accuracy": acc, "neuroflow_s": a, "torch_s": b})
    if args.json:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
        out = {"date": datetime.now(timezone.utc).isoformat(timespec="minutes"), "commit": commit,
               "machine": platform.processor() or platform.machine(), "threads": args.threads, "widths": widths,
               "epochs": args.epochs, "torch": torch.__version__, "time_to": table,
               **{k: {kk: vv for kk, vv in v.items() if kk in ("curve", "train_seconds", "final_tta", "tta_seconds")}
                  for k, v in results.items()}}
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
