"""A calibration of the speed recipe: airbench94's published training choices, run with
PyTorch on this CPU at a width and epoch count of our choosing, to tell whether the speed
recipe loses accuracy to its recipe (then it would trail this at equal widths and epochs)
or only to the compute a budget buys.

    python benchmarks/airbench_calibration.py [--data PATH] [--epochs 8] [--widths 48 96 192] [--muon]

What it takes from airbench94 (Keller Jordan, legacy/airbench94.py; facts, not code):
batch 1024; Nesterov SGD with momentum 0.85, learning rate 11.5 and weight decay 0.0153
"per 1024 examples" (divided by 1024·(1 + 1/(1 − momentum)), on the summed loss), the
BatchNorm shifts at 64× the learning rate; a schedule rising linearly from 0.2 to 1 over
the first 23 % of steps, then down to 0.07; label smoothing 0.2; a frozen 2×2 whitening
conv with a bias trained for the first 3 epochs; conv → max-pool → BN → GELU → conv →
BN → GELU blocks with BN weights fixed at 1, BN momentum 0.6 (PyTorch's 0.4), eps 1e-12;
Dirac-initialised convs; the read-out scaled by 1/9; airbench's lookahead; translation
by ±2 px (reflected) and the alternating flip; the test accuracy plain, with flips and
with flips of ±1-px shifts (airbench's tta_level 2). CPU float32, 2 threads.

With ``--muon``, airbench94_muon.py's optimizer instead (pass ``--batch 2000``, its batch):
Muon on the 3×3 filters (lr 0.24, momentum 0.6 Nesterov, each filter tensor rescaled to
norm √F before its step, 3 Newton–Schulz steps, here in float32), Nesterov SGD 0.85 on the
BatchNorm shifts and the whitening bias (lr 0.053) and the read-out (lr 0.67), decay
2e-6·batch per step; every rate linear to 0 (the whitening bias's over its 3 epochs); the
read-out's output ×1/W3 on weights of std 1; no lookahead.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.environ.get("NEUROFLOW_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "datasets")))
    ap.add_argument("--epochs", type=float, default=8.0)
    ap.add_argument("--widths", type=int, nargs=3, default=[48, 96, 192])
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--muon", action="store_true")
    a = ap.parse_args()

    import torch
    import torch.nn.functional as F
    from torch import nn

    from neuroflow.io.datasets import cifar10

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xs, ys, _ = cifar10(a.data, "train")
    tx, ty, _ = cifar10(a.data, "test")

    def images(u8: np.ndarray) -> torch.Tensor:  # (N, X, Y, Z) → (N, Z, Y, X): the last axis is the width
        t = torch.from_numpy(u8).permute(0, 3, 2, 1).float().div(255)
        mean = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)
        std = torch.tensor((0.2470, 0.2435, 0.2616)).view(1, 3, 1, 1)
        return ((t - mean) / std).contiguous(memory_format=torch.channels_last)

    train, labels = images(xs), torch.from_numpy(ys.astype(np.int64))
    test, tlabels = images(tx), torch.from_numpy(ty.astype(np.int64))

    def conv(c_in: int, c_out: int, k: int = 3, padding="same", bias: bool = False) -> nn.Conv2d:
        m = nn.Conv2d(c_in, c_out, k, padding=padding, bias=bias)
        if bias:
            m.bias.data.zero_()
        nn.init.dirac_(m.weight.data[:c_in])  # the first c_in filters pass their channel through
        return m

    def norm(c: int) -> nn.BatchNorm2d:
        m = nn.BatchNorm2d(c, eps=1e-12, momentum=0.4)
        m.weight.requires_grad_(False)
        return m

    def block(c_in: int, c_out: int) -> list:
        return [conv(c_in, c_out), nn.MaxPool2d(2), norm(c_out), nn.GELU(), conv(c_out, c_out), norm(c_out), nn.GELU()]

    w1, w2, w3 = a.widths
    white = conv(3, 24, 2, padding=0, bias=True)
    net = nn.Sequential(white, nn.GELU(), *block(24, w1), *block(w1, w2), *block(w2, w3), nn.MaxPool2d(3), nn.Flatten(),
                        nn.Linear(w3, 10, bias=False))
    scale = 1 / 9
    white.weight.requires_grad_(False)
    patches = train[:5000].unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 3, 2, 2).float()
    flat = patches.reshape(len(patches), -1)
    lam, vec = torch.linalg.eigh(flat.T @ flat / len(flat))
    lam, vec = lam.flip(0).view(-1, 1, 1, 1), vec.T.reshape(12, 3, 2, 2).flip(0)
    filt = vec / torch.sqrt(lam + 5e-4)
    white.weight.data[:] = torch.cat((filt, -filt))
    net = net.to(memory_format=torch.channels_last)

    steps_per_epoch = len(train) // a.batch
    total = math.ceil(steps_per_epoch * a.epochs)
    if a.muon:
        # airbench94_muon.py's choices
        scale = 1 / w3
        head = net[-1]
        head.weight.data *= 1 / head.weight.data.std()
        wd = 2e-6 * a.batch
        bias_lr, head_lr = 0.053, 0.67
        norm_biases = [p for n, p in net.named_parameters() if p.requires_grad and p.ndim == 1 and n != "0.bias"]
        filters = [p for p in net.parameters() if p.ndim == 4 and p.requires_grad]
        opt = torch.optim.SGD([{"params": [white.bias], "lr": bias_lr, "weight_decay": wd / bias_lr},
                               {"params": norm_biases, "lr": bias_lr, "weight_decay": wd / bias_lr},
                               {"params": [head.weight], "lr": head_lr, "weight_decay": wd / head_lr}], momentum=0.85, nesterov=True)
        bufs = [torch.zeros_like(p) for p in filters]
        wb_steps = math.ceil(3 * steps_per_epoch)

        def ns(G, steps=3, eps=1e-7):  # Newton–Schulz: ≈ UVᵀ for G = USVᵀ
            a_, b_, c_ = (3.4445, -4.7750, 2.0315)
            X = G / (G.norm() + eps)
            tr = G.size(0) > G.size(1)
            if tr:
                X = X.T
            for _ in range(steps):
                A = X @ X.T
                B = b_ * A + c_ * A @ A
                X = a_ * X + B @ X
            return X.T if tr else X

        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]

        class Sched:  # airbench94_muon sets the rates for step `step` before stepping
            def step(self) -> None:
                for gi, g in enumerate(opt.param_groups):
                    g["lr"] = g["initial_lr"] * (max(0.0, 1 - step / wb_steps) if gi == 0 else 1 - step / total)

        sched = Sched()

        def muon_step() -> None:
            lr_m = 0.24 * (1 - step / total)
            with torch.no_grad():
                for p, buf in zip(filters, bufs):
                    buf.mul_(0.6).add_(p.grad)
                    g = p.grad.add(buf, alpha=0.6)
                    p.data.mul_(len(p.data) ** 0.5 / p.data.norm())
                    p.data.add_(ns(g.reshape(len(g), -1)).view(g.shape), alpha=-lr_m)

        alpha = torch.zeros(total + 1)
    else:
        momentum = 0.85
        per_kilo = 1024 * (1 + 1 / (1 - momentum))
        lr = 11.5 / per_kilo * 1024 / a.batch
        wd = 0.0153 * a.batch / per_kilo
        shifts = [p for n, p in net.named_parameters() if p.requires_grad and p.ndim == 1 and "bias" in n and n != "0.bias"]
        rest = [p for n, p in net.named_parameters() if p.requires_grad and all(p is not s for s in shifts)]
        opt = torch.optim.SGD([{"params": shifts, "lr": 64 * lr, "weight_decay": wd / (64 * lr)},
                               {"params": rest, "lr": lr, "weight_decay": wd / lr}], momentum=momentum, nesterov=True)
        warm = int(total * 0.23)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.2 + 0.8 * s / warm if s < warm else 1.0 - 0.93 * (s - warm) / (total - warm))
        alpha = 0.95**5 * (torch.arange(total + 1) / total) ** 3
    slow = {k: v.clone() for k, v in net.state_dict().items()}

    def pull(decay: float) -> None:
        for (k, s), v in zip(slow.items(), net.state_dict().values()):
            if v.dtype == torch.float32:
                s.lerp_(v, 1 - decay)
                v.copy_(s)

    def accuracy(level: int) -> float:
        net.eval()
        out = []
        with torch.no_grad():
            for x in test.split(2000):
                def both(z):
                    return 0.5 * net(z) + 0.5 * net(z.flip(-1))
                if level == 0:
                    out.append(net(x))
                    continue
                logits = both(x)
                if level == 2:
                    p = F.pad(x, (1,) * 4, "reflect")
                    logits = 0.5 * logits + 0.25 * (both(p[:, :, :32, :32]) + both(p[:, :, 2:, 2:]))
                out.append(logits)
        net.train()
        return (torch.cat(out).argmax(1) == tlabels).float().mean().item()

    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2, reduction="none")
    padded = F.pad(train, (2,) * 4, "reflect")
    flips = torch.rand(len(train)) < 0.5
    step, start = 0, time.perf_counter()
    print(f"airbench94{'_muon' if a.muon else ''}'s choices on the CPU: widths {tuple(a.widths)}, {a.epochs:g} epochs of batch {a.batch}", flush=True)
    for epoch in range(math.ceil(a.epochs)):
        white.bias.requires_grad_(epoch < 3)
        moves = torch.randint(0, 5, (len(train), 2))
        order = torch.randperm(len(train))
        for i in range(steps_per_epoch):
            b = order[i * a.batch:(i + 1) * a.batch]
            x = torch.stack([padded[j, :, moves[j, 0]:moves[j, 0] + 32, moves[j, 1]:moves[j, 1] + 32] for j in b.tolist()])
            flip = flips[b] ^ (epoch % 2 == 1)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x).contiguous(memory_format=torch.channels_last)
            loss = loss_fn(net(x) * scale, labels[b]).sum()
            net.zero_grad(set_to_none=True)  # (every parameter: Muon's filters are not in opt)
            loss.backward()
            if a.muon:
                sched.step()
                opt.step()
                muon_step()
            else:
                opt.step()
                sched.step()
            step += 1
            if step % 5 == 0 and not a.muon:
                pull(alpha[step].item())
            if step >= total:
                if not a.muon:
                    pull(1.0)
                break
        print(f"epoch {epoch + 1}: test accuracy {accuracy(0):.2%} ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"final: {accuracy(0):.2%} plain, {accuracy(1):.2%} with flips, {accuracy(2):.2%} with flips and shifts "
          f"({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
