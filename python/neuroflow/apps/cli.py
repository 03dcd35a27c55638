"""The ``neuroflow`` command: the article's two experiments and a look at the machine.

    neuroflow demo [--data DIR] [--out DIR] [--iterations N] [--seed S] [--backend cpu|gpu|auto]
    neuroflow train cifar10 [--data PATH] [--backend cpu|gpu|auto] [--epochs N] [--preset speed|speed-sgd|neuroflow|dense|fast]
                            [--time-budget SECONDS] ...
    neuroflow train cifar10 --workers 4 ...     (4 local processes through MPI; or mpirun -n 4 neuroflow train ...)
    neuroflow info
    neuroflow --version

Exit codes: 0 done, 1 the work could not be done (missing data, no GPU, a bad file, a full
disk, too little memory; a one-line message says why), 2 bad arguments, 130 interrupted,
141 the reader of the output went away (``neuroflow info | head -1``: no message, as a
program killed by SIGPIPE).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

__all__ = ["main"]

# `neuroflow train cifar10 --preset`: the keys of apps/cifar.py's PRESETS (a test keeps them
# equal; named here so that parsing the command line does not import the engine)
PRESET_NAMES = ["speed", "speed-sgd", "neuroflow", "dense", "fast"]


def _int_at_least(minimum: int, what: str):
    """An argparse type: a whole number ≥ minimum, with a message that says so."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
        return v

    return parse


_positive = _int_at_least(1, "a positive whole number")


def _seconds(text: str) -> float:
    """An argparse type: a number of seconds, positive and finite."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (0 < v < 1e9):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return v
_non_negative = _int_at_least(0, "a whole number ≥ 0")
# The CPU engine starts all its threads at once (some ms each): a typo such as 100000000
# would look like a hang, so --threads is bounded.
MAX_THREADS = 1024


def _threads(text: str) -> int:
    v = _positive(text)
    if v > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_THREADS}, got {v}")
    return v


def _parser() -> argparse.ArgumentParser:
    from .glasses import DEFAULTS

    from .. import __version__

    p = argparse.ArgumentParser(prog="neuroflow", description="Train and inspect convolutional nets (after NeuroFlow).")
    p.add_argument("--version", action="version", version=f"neuroflow {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{demo,train,info}", required=True)

    d = sub.add_parser("demo", help="the article's glasses experiment (offline; seconds on a CPU)",
                       description="Train the article's glasses net and write its focus maps, loss curve and model.")
    d.add_argument("--data", metavar="DIR", help="a folder with glasses/ and noglasses/ images (default: draw avatars)")
    d.add_argument("--out", metavar="DIR", default="neuroflow-demo", help="where to write the results (default: %(default)s)")
    d.add_argument("--iterations", type=_positive, default=DEFAULTS.iterations, metavar="N",
                   help="weight updates (default: the article's %(default)s)")
    d.add_argument("--seed", type=_non_negative, default=DEFAULTS.seed, metavar="S",
                   help="first init draw (default: %(default)s)")
    d.add_argument("--attempts", type=_positive, default=DEFAULTS.attempts, metavar="N",
                   help="draws to try until one learns every training image (default: %(default)s)")
    d.add_argument("--backend", choices=["cpu", "gpu", "auto"], default="cpu", help="(default: %(default)s)")

    t = sub.add_parser("train", help="train a published experiment", description="Train a published experiment.")
    tsub = t.add_subparsers(dest="experiment", metavar="{cifar10}", required=True)
    c = tsub.add_parser("cifar10", help="the article's CIFAR-10 experiment",
                        description="CIFAR-10: the speed recipe (--preset speed), the article's 9-layer net (neuroflow), "
                                    "its dense counter-example (dense) or a small net (fast).")
    c.add_argument("--data", metavar="PATH",
                   help="cifar-10-binary.tar.gz, its folder, or the extracted cifar-10-batches-bin/ "
                        "(default: $NEUROFLOW_DATA, else ../shared/datasets)")
    c.add_argument("--download", action="store_true", help="download the archive into --data if it is not there")
    c.add_argument("--backend", choices=["cpu", "gpu", "auto"], default="cpu", help="(default: %(default)s)")
    c.add_argument("--epochs", type=_positive, metavar="N", help="passes over the training set (default: the preset's)")
    c.add_argument("--time-budget", type=_seconds, metavar="SECONDS",
                   help="fit the run (width, steps, schedule) so that the whole command ends within this many seconds")
    c.add_argument("--width", type=_int_at_least(0, "a width index ≥ 0"), metavar="I",
                   help="the speed net's widths (presets speed, speed-sgd) by index, 0 the narrowest (16/32/64); an index "
                        "past the widest is refused with the list (default: 1, or chosen by --time-budget)")
    c.add_argument("--tta", choices=["none", "flip", "flip_translate"],
                   help="test-time views averaged in the final evaluation: none, flips, or flips of the image and of its "
                        "±1-pixel shifts (6 views, 3× the evaluation) (default: the preset's; speed: flip_translate, or flip where a time budget would give the "
                        "four more views over 5 %% of it)")
    c.add_argument("--no-tta", action="store_true", help="the same as --tta none")
    c.add_argument("--flip", choices=["none", "random", "alternate"],
                   help="training augmentation, any preset: mirror images along X at random, or every other "
                        "epoch (default: the preset's: alternate for speed and speed-sgd, none for the others)")
    c.add_argument("--translate", type=_int_at_least(0, "a shift in pixels ≥ 0"), metavar="PX",
                   help="training augmentation: shift images by up to ± PX pixels (reflected edges) (default: the preset's: 2 for speed and speed-sgd, 0)")
    c.add_argument("--cutout", type=_int_at_least(0, "a square's side in pixels ≥ 0"), metavar="PX",
                   help="training augmentation: zero a PX×PX square at a random place (default: 0)")
    c.add_argument("--preset", choices=PRESET_NAMES, default="speed",
                   help="speed: the fastest recipe (Muon, batches of 2000); speed-sgd: the same net by Nesterov SGD at "
                        "batch 64 (the recipe before Muon); neuroflow: the article's layout and settings (hours on a CPU); "
                        "dense: a dense net of a similar weight count; fast: a small net (default: %(default)s)")
    c.add_argument("--out", metavar="DIR", default="neuroflow-cifar10", help="where to write the results (default: %(default)s)")
    c.add_argument("--limit", type=_positive, metavar="N", help="use only the first N training and test images (a quick run)")
    c.add_argument("--validation", type=_positive, metavar="N",
                   help="hold out the last N training images (after --limit): their loss and accuracy are reported after "
                        "every epoch and kept in summary.json; the net trains on the others")
    c.add_argument("--patience", type=_positive, metavar="K",
                   help="stop early once the validation accuracy has not improved for K epochs (needs --validation)")
    c.add_argument("--batch-size", type=_positive, metavar="N", help="samples per weight update (default: the preset's)")
    c.add_argument("--threads", type=_threads, metavar="N", help=f"CPU threads, at most {MAX_THREADS} (default: all cores)")
    c.add_argument("--seed", type=_non_negative, default=0, metavar="S", help="init and shuffle seed (default: %(default)s)")
    c.add_argument("--resume", metavar="FILE", help="continue the run saved in this checkpoint")
    c.add_argument("--workers", type=_positive, metavar="N",
                   help="train data-parallel on N local processes, started through the installed MPI's mpiexec "
                        "(across machines: mpirun -n N -f HOSTFILE neuroflow train ...)")
    c.add_argument("--sync-batchnorm", action="store_true",
                   help="data-parallel runs: BatchNorm statistics over the global batch, so the model is the one-process "
                        "run's (default: per process, as PyTorch's DistributedDataParallel)")
    c.add_argument("--timeout", type=float, metavar="S",
                   help="data-parallel runs: seconds a process waits for the others before it stops the job (default 300)")

    sub.add_parser("info", help="version, CPU threads and GPU adapters", description="Version, CPU threads and GPU adapters.")
    return p


def _info() -> int:
    import platform

    import numpy as np

    from .. import __version__, num_threads

    print(f"neuroflow {__version__} (Python {platform.python_version()}, NumPy {np.__version__})")
    print(f"CPU engine threads: {num_threads()} (set with NEUROFLOW_NUM_THREADS or --threads)")
    try:
        from ..engines.gpu import adapters

        found = adapters()
    except Exception as e:  # wgpu missing, no driver: say why instead of failing
        print(f"GPU adapters: none usable ({e})")
        return 0
    if not found:
        print("GPU adapters: none found")
    for a in found:
        print(f"GPU adapter: {a.get('name') or '?'} ({a.get('backend', '?')}, {a.get('adapter_type', '?')})")
    return 0


def _check_out(out: str) -> None:
    """--out must be a folder, or a path where one can be made: say so before any work."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise NotADirectoryError(f"--out: {out} is a file, not a folder; give a folder for the results (it is created if missing)")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"--out: {out}: {parent} is a file, not a folder")
            break


def _describe(e: BaseException) -> str:
    """One line for an error the user can act on."""
    if isinstance(e, MemoryError):
        return f"out of memory{': ' + str(e) if str(e) else ''} (try fewer images, a smaller --batch-size or --limit)"
    if isinstance(e, OSError) and e.strerror:  # from the OS: "<file>: <reason>", as coreutils say it
        where = f"{e.filename}: " if e.filename else ""
        hint = {
            errno.ENOSPC: " (free some space, or write elsewhere with --out)",
            getattr(errno, "EDQUOT", -1): " (free some space, or write elsewhere with --out)",
            errno.EFBIG: " (a file size limit: see ulimit -f)",
        }.get(e.errno or 0, "")
        return f"{where}{e.strerror}{hint}"
    return " ".join(str(e).split()) or type(e).__name__


def _stdout_gone() -> int:
    """The reader of stdout closed the pipe: stop quietly, as a program killed by SIGPIPE.

    Python's recipe (docs: "Note on SIGPIPE"): point stdout at /dev/null so that the flush
    at exit does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (tests)
        pass
    return 141


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            # a closed pipe shows here, inside the handler, not at exit; argparse's --help
            # raises SystemExit with its text still buffered (how much depends on the
            # environment: with `env -i` all of it, and the flush at exit failed)
            sys.stdout.flush()
    except BrokenPipeError:
        return _stdout_gone()


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "info":
            return _info()
        _check_out(args.out)
        if args.command == "demo":
            from .glasses import run_demo

            run_demo(data=args.data, out=args.out, iterations=args.iterations, seed=args.seed,
                     backend=args.backend, attempts=args.attempts)
            return 0
        workers = getattr(args, "workers", None)
        if workers and workers > 1:
            from ..distributed import launched_by_mpi

            if not launched_by_mpi():
                from .launch import launch

                return launch(workers, list(sys.argv[1:] if argv is None else argv), args)
        from .cifar import run_cifar10

        run_cifar10(args)
        return 0
    except KeyboardInterrupt:
        print("neuroflow: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except (OSError, ValueError, RuntimeError, MemoryError, OverflowError) as e:
        # Missing data, no GPU, unreadable files, a full disk: a message, not a traceback.
        print(f"neuroflow: error: {_describe(e)}", file=sys.stderr)
        return 1
