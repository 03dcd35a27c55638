"""``neuroflow train cifar10``: the article's CIFAR-10 experiment, and a small fast variant.

- ``neuroflow``: the published layout: seven 128-filter convolutions (fields 3/3/4/3/3/4/3,
  strides 1/1/2/1/1/2/1, padding 1), 1×1 convolutions to 128 and 10 channels, Dense(10, ReLU),
  SoftmaxLogEntropy; normal init per layer; Momentum(0.8), batches of 250, summed gradients,
  learning rate 1e-5, then 1e-6 from iteration 4000. Made for a GPU: on two CPU cores it trains
  about 43 images/s, some 20 minutes an epoch.
- ``fast``: five small convolutions and a linear read-out, He init, mean gradients and a
  larger learning rate: about a minute an epoch on two CPU cores.

Each epoch ends with the test accuracy (evaluated in chunks) and a checkpoint; the end writes
the model, the loss curve and the confusion matrix.

Started by an MPI launcher (``mpirun -n 4 neuroflow train cifar10 ...``, or ``--workers 4``)
it trains data-parallel (neuroflow/distributed.py): every rank computes its share of each
batch and of the test predictions; rank 0 prints and writes the files.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ..nn.activators import Linear, ReLU
from ..io.atomic import atomic_write_bytes
from ..nn.layers import Convolution, Dense
from ..nn.losses import SoftmaxLogEntropy
from ..nn.network import Network
from ..nn.settings import LossFuncOutput, Settings, Waypoint
from ..nn.optim import Momentum
from ..nn.breeders import WeightBreeder

__all__ = ["NEUROFLOW_INIT", "fast_net", "neuroflow_net", "neuroflow_rate", "run_cifar10"]

# The article's init: normal (mean, σ) per layout index.
NEUROFLOW_INIT = {0: (0, 0.1), 1: (0, 0.1), 2: (0, 0.1), 3: (0, 0.01), 4: (0, 0.1), 5: (0, 0.01), 6: (0, 0.01),
                  7: (0, 0.1), 8: (0, 1), 9: (0.01, 0.01)}


def neuroflow_rate(iteration: int, alpha: float) -> float:
    """The article's schedule: 1e-5, then 1e-6 from iteration 4000."""
    return 1e-5 if iteration < 4000 else 1e-6


def neuroflow_net(batch_size: int = 250, iterations: int = 1, seed: int = 0, backend: str = "cpu", **kw) -> Network:
    dim: tuple[int, ...] | None = (32, 32, 3)  # each layer's dim_out (a tuple: its dim_in is given)
    layers: list[Convolution] = []
    for i, (field, stride) in enumerate(zip((3, 3, 4, 3, 3, 4, 3), (1, 1, 2, 1, 1, 2, 1))):
        c = Convolution(dim, padding=1, field=field, stride=stride, filters=128, activator=ReLU, name=f"c{i}")
        layers.append(c)
        dim = c.dim_out
    c7 = Convolution(dim, padding=0, field=1, stride=1, filters=128, activator=ReLU, name="c7")
    c8 = Convolution(c7.dim_out, padding=0, field=1, stride=1, filters=10, activator=ReLU, name="c8")
    layout = [*layers, c7, c8, Dense(10, ReLU), SoftmaxLogEntropy()]
    settings = Settings(learning_rate=neuroflow_rate, update_rule=Momentum(0.8), batch_size=batch_size,
                        iterations=iterations, reduction="sum", dtype=np.float32, seed=seed, **kw)
    return Network(layout, settings, weights=WeightBreeder.normal(NEUROFLOW_INIT, seed=seed), backend=backend)


def fast_net(batch_size: int = 64, iterations: int = 1, seed: int = 0, backend: str = "cpu", **kw) -> Network:
    c0 = Convolution((32, 32, 3), padding=1, field=3, stride=1, filters=24, activator=ReLU, name="c0")
    c1 = Convolution(c0.dim_out, padding=1, field=4, stride=2, filters=48, activator=ReLU, name="c1")
    c2 = Convolution(c1.dim_out, padding=1, field=3, stride=1, filters=48, activator=ReLU, name="c2")
    c3 = Convolution(c2.dim_out, padding=1, field=4, stride=2, filters=96, activator=ReLU, name="c3")
    c4 = Convolution(c3.dim_out, padding=1, field=4, stride=2, filters=128, activator=ReLU, name="c4")
    layout = [c0, c1, c2, c3, c4, Dense(10, Linear), SoftmaxLogEntropy()]
    settings = Settings(learning_rate=0.02, update_rule=Momentum(0.9), batch_size=batch_size, iterations=iterations,
                        reduction="mean", dtype=np.float32, seed=seed, **kw)
    return Network(layout, settings, weights=WeightBreeder.he(seed=seed), backend=backend)


_PRESETS = {"neuroflow": (neuroflow_net, 250), "fast": (fast_net, 64)}


def _say(text: str) -> None:
    try:  # keeps a live progress bar intact
        from tqdm import tqdm

        tqdm.write(text)
    except ImportError:
        print(text, flush=True)


def _distributed(args):
    """A Distributed when an MPI launcher started several processes, else None."""
    from ..distributed import Distributed, launched_by_mpi

    if launched_by_mpi() <= 1:
        return None
    return Distributed(sync_batchnorm=getattr(args, "sync_batchnorm", False), timeout=getattr(args, "timeout", None))


def run_cifar10(args) -> dict:
    """Train as the parsed command line says; returns a summary (also in ``out/summary.json``)."""
    from .. import set_num_threads
    from ..io.datasets import cifar10
    from ..nn.metrics import accuracy, confusion_matrix
    from .plots import confusion_matrix_png, loss_curve_png

    if args.threads:
        set_num_threads(args.threads)
    dist = _distributed(args)
    main = dist is None or dist.is_main
    say = _say if main else (lambda text: None)
    predict = dist.predict if dist is not None else (lambda net, x: net(x))
    make, default_batch = _PRESETS[args.preset]
    batch = args.batch_size or default_batch
    try:
        xs, ys, names = cifar10(args.data, "train", download=args.download)
        tx, ty, _ = cifar10(args.data, "test", download=args.download)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e} (on the command line: --data PATH, or --download to fetch it)") from None
    if args.limit:
        xs, ys, tx, ty = xs[: args.limit], ys[: args.limit], tx[: args.limit], ty[: args.limit]
    out = Path(args.out)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    if dist is not None:
        dist.barrier("making the output folder")
    steps = math.ceil(len(xs) / min(batch, len(xs)))
    total = steps * args.epochs
    history: list[dict] = []
    t0 = time.perf_counter()

    def end_of_epoch(iteration: int, net: Network) -> None:
        epoch = iteration // steps
        t_eval = time.perf_counter()
        acc = accuracy(predict(net, tx), ty)
        net.save(out / "checkpoint.safetensors")
        history.append({"epoch": epoch, "iteration": iteration, "test_accuracy": acc,
                        "seconds": round(time.perf_counter() - t0, 1), "eval_seconds": round(time.perf_counter() - t_eval, 1)})
        say(f"epoch {epoch}/{args.epochs}: test accuracy {acc:.2%} on {len(tx)} images "
             f"({time.perf_counter() - t0:.0f} s so far); checkpoint written to {out / 'checkpoint.safetensors'}")

    net = make(batch_size=batch, iterations=total, seed=args.seed, backend=args.backend,
               waypoint=Waypoint(steps, end_of_epoch), loss_func_output=LossFuncOutput(file=out / "losses.txt"))
    ranks = f", {dist.size} processes ({dist.library})" if dist is not None else ""
    say(f"CIFAR-10, preset {args.preset}: {len(xs)} training and {len(tx)} test images, {args.epochs} epoch(s) of "
        f"{steps} iterations, batch {min(batch, len(xs))}, {net.backend}{ranks}")
    run = net.train(xs, ys, resume=args.resume, distributed=dist)
    if run.interrupted:
        say(f"interrupted; writing the results so far (continue with --resume {out / 'model.safetensors'})")
    predictions = predict(net, tx)
    acc = accuracy(predictions, ty)
    net.save(out / "model.safetensors")
    if not main:
        return {}
    losses = np.loadtxt(out / "losses.txt", ndmin=1)
    loss_curve_png(losses, out / "loss.png", title=f"CIFAR-10 ({args.preset}): training loss",
                   xlabel="iteration", ylabel="batch loss" + (" (mean per image)" if net.settings.reduction == "mean" else " (per image)"))
    confusion_matrix_png(confusion_matrix(predictions, ty, len(names)), names, out / "confusion.png",
                         title=f"CIFAR-10 test set, preset {args.preset}: {acc:.1%} correct")
    summary = {"preset": args.preset, "epochs": args.epochs, "iterations": net.iteration, "stopped_by": run.stopped_by,
               "train_images": int(len(xs)), "test_images": int(len(tx)), "batch_size": min(batch, len(xs)),
               "test_accuracy": acc, "epochs_done": history, "seconds": round(time.perf_counter() - t0, 1),
               "images_per_second": round(run.images_per_second, 1), "backend": net.backend,
               "processes": dist.size if dist is not None else 1}
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    say(f"test accuracy {acc:.2%}; wrote {out}/: model.safetensors, checkpoint.safetensors, loss.png, "
         f"confusion.png, losses.txt, summary.json ({summary['seconds']:.0f} s)")
    return summary
