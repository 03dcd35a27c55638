"""``neuroflow train ... --workers N``: run the same command on N local processes through the
installed MPI's ``mpiexec`` (the one beside this Python, as pip's ``mpich`` wheel installs
it, else the first on PATH), each process with its share of the cores.

Across machines use the launcher itself: ``mpirun -n 8 -f hosts neuroflow train ...``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["find_mpiexec", "launch"]


def find_mpiexec() -> str:
    """The mpiexec to run, or a RuntimeError that says what to install."""
    from ..distributed import INSTALL_HINT, DistributedError

    given = os.environ.get("NEUROFLOW_MPIEXEC")
    if given:
        return given
    for candidate in (Path(sys.executable).parent / "mpiexec", Path(sys.prefix) / "bin" / "mpiexec"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("mpiexec") or shutil.which("mpirun")
    if found is None:
        raise DistributedError(f"--workers: no mpiexec found (beside {sys.executable} or on PATH): {INSTALL_HINT}")
    return found


def _without_workers(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--workers":
            skip = True
        elif not a.startswith("--workers="):
            out.append(a)
    return out


def launch(workers: int, argv: list[str], args) -> int:
    """Run ``python -m neuroflow ARGV`` (less --workers) on `workers` processes; their status."""
    from ..distributed import mpi

    mpi()  # mpi4py and its library must load here, or the ranks would fail one by one
    exe = find_mpiexec()
    env = dict(os.environ, NEUROFLOW_WORKERS=str(workers))
    if getattr(args, "threads", None):
        env["NEUROFLOW_NUM_THREADS"] = str(args.threads)
    elif not env.get("NEUROFLOW_NUM_THREADS"):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        env["NEUROFLOW_NUM_THREADS"] = str(max(1, cores // workers))
    cmd = [exe, "-n", str(workers), sys.executable, "-m", "neuroflow", *_without_workers(argv)]
    print(f"neuroflow: starting {workers} processes: {' '.join(cmd)}", file=sys.stderr, flush=True)
    try:
        code = subprocess.call(cmd, env=env)
    except OSError as e:
        raise RuntimeError(f"--workers: cannot run {exe}: {e}") from None
    except KeyboardInterrupt:  # mpiexec passes Ctrl-C on to the processes and ends with them
        return 130
    if code != 0:
        out = Path(getattr(args, "out", ".") or ".")
        ckpt = out / "checkpoint.safetensors"
        where = f"; the last checkpoint is {ckpt} (continue with --resume {ckpt})" if ckpt.exists() else ""
        print(f"neuroflow: error: the {workers} processes stopped with status {code} (see the messages above){where}",
              file=sys.stderr, flush=True)
        return 1 if code > 0 else 1
    return 0
