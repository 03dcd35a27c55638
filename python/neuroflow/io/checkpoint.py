"""Where a training run stands, so a checkpoint can continue it exactly.

A run is one call of ``Network.train``: ``settings.iterations`` weight updates over batches
drawn from a shuffled order of the samples. Its position is the shuffle generator's state,
the order of the epoch in flight, the place in it, and how many updates are done. Saved with
the weights and the optimizer state (``net.save``), it lets ``train(xs, ys, resume=path)``
go on so that the resumed run ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["RunState", "checkpoint_to", "data_fingerprint"]


def data_fingerprint(x: np.ndarray, t: np.ndarray) -> str:
    """A short hash of the samples and targets a run trains on, to refuse resuming on others."""
    h = hashlib.blake2b(digest_size=16)
    for a in (x, t):
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    return h.hexdigest()


@dataclass
class RunState:
    """The position of one training run (see the module's doc)."""

    rng: np.random.Generator
    order: np.ndarray  # int64 (N,): sample order of the epoch in flight
    pos: int  # next place in ``order``; from N on, a new epoch starts
    done: int  # weight updates done in this run
    total: int  # updates the run was asked for
    batch_size: int
    shuffle: bool
    data: str  # data_fingerprint of the run's samples

    @classmethod
    def start(cls, n: int, batch_size: int, total: int, shuffle: bool, seed: int | None, data: str) -> "RunState":
        return cls(np.random.default_rng(seed), np.arange(n, dtype=np.int64), n, 0, total, batch_size, shuffle, data)

    def to_json(self) -> dict:
        state = self.rng.bit_generator.state
        return {
            "rng": {"bit_generator": state["bit_generator"], "state": state["state"],
                    "has_uint32": state["has_uint32"], "uinteger": state["uinteger"]},
            "pos": self.pos, "done": self.done, "total": self.total, "batch_size": self.batch_size,
            "shuffle": self.shuffle, "data": self.data,
        }

    @classmethod
    def from_json(cls, d: dict, order: np.ndarray) -> "RunState":
        """Rebuild from stored values only (ints, strings); raises ValueError naming a bad field."""
        if not isinstance(d, dict):
            raise ValueError(f"run: expected an object, got {d!r}")
        rng = d.get("rng")
        if not isinstance(rng, dict) or rng.get("bit_generator") != "PCG64":
            raise ValueError("run.rng: expected a PCG64 generator state")
        inner = rng.get("state")
        if not isinstance(inner, dict) or not all(_is_int(inner.get(k)) and inner[k] >= 0 for k in ("state", "inc")):
            raise ValueError("run.rng.state: expected non-negative ints 'state' and 'inc'")
        if not _is_int(rng.get("has_uint32")) or not _is_int(rng.get("uinteger")):
            raise ValueError("run.rng: expected ints 'has_uint32' and 'uinteger'")
        gen = np.random.Generator(np.random.PCG64())
        try:
            gen.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": inner["state"], "inc": inner["inc"]},
                                       "has_uint32": rng["has_uint32"], "uinteger": rng["uinteger"]}
        except (ValueError, TypeError, OverflowError) as e:
            raise ValueError(f"run.rng: not a valid generator state ({e})") from None
        for key in ("pos", "done", "total", "batch_size"):
            if not _is_int(d.get(key)) or d[key] < (1 if key in ("total", "batch_size") else 0):
                raise ValueError(f"run.{key}: expected a non-negative int, got {d.get(key)!r}")
        if not isinstance(d.get("shuffle"), bool):
            raise ValueError(f"run.shuffle: expected true or false, got {d.get('shuffle')!r}")
        if not isinstance(d.get("data"), str):
            raise ValueError("run.data: expected the data fingerprint")
        n = order.shape[0] if order.ndim == 1 else -1
        if order.dtype != np.int64 or n < 1 or not np.array_equal(np.sort(order), np.arange(n)):
            raise ValueError("run.order: expected a permutation of 0..N-1 (int64)")
        if d["pos"] > n + d["batch_size"]:
            raise ValueError(f"run.pos: {d['pos']} is past the {n} samples")
        return cls(gen, order, d["pos"], d["done"], d["total"], d["batch_size"], d["shuffle"], d["data"])


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def checkpoint_to(path: str | os.PathLike) -> Callable:
    """A waypoint action that saves the network: ``Waypoint(100, checkpoint_to("run.safetensors"))``.

    ``path`` may hold ``{iteration}`` (e.g. ``"ckpt-{iteration:06d}.safetensors"``) to keep one
    file per waypoint; otherwise each waypoint replaces the file (atomically). Continue a run
    from such a file with ``net.train(xs, ys, resume=path)``.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    text = os.fspath(path)
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as e:
        raise ValueError(f"path: {text!r} is not a valid pattern ({e}); use {{iteration}} or no braces") from None
    if fields - {"iteration"}:
        raise ValueError(f"path: only {{iteration}} may be filled in, got {sorted(fields - {'iteration'})} in {text!r}")
    folder = Path(text).parent
    if not folder.is_dir():
        raise FileNotFoundError(f"path: folder {folder} does not exist")

    def save_checkpoint(iteration: int, net) -> None:
        net.save(text.format(iteration=iteration) if fields else text)

    save_checkpoint.__qualname__ = f"checkpoint_to({text!r})"
    return save_checkpoint
