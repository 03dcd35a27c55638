"""Checkpoints during training: a waypoint action that saves the network, so that
``net.train(xs, ys, resume=path)`` can continue the run exactly (nn/training.py)."""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Callable

__all__ = ["checkpoint_to"]


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
