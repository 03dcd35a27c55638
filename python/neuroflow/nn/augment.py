"""Augmentation of training batches, done by the engine core's batch pipeline as it gathers
each batch (rust/data.rs): seeded by ``Settings.seed``, the epoch and the sample, so a run
is reproducible and a resumed run draws what the uninterrupted one drew."""

from __future__ import annotations

import json
import numbers
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Augment:
    """``translate``: shift each image by up to ± that many pixels on X and Y, filling with
    the image's reflection (``padding="reflect"``) or zeros (``"zero"``); ``flip``:
    mirror along X — ``"random"`` (each image, each epoch, with probability ½) or
    ``"alternate"`` (each image every other epoch, starting with a random half: airbench's
    flip); ``cutout``: a square of that side set to 0 at a random place."""

    translate: int = 0
    flip: str = "none"
    cutout: int = 0
    padding: str = "reflect"

    def __post_init__(self) -> None:
        for name in ("translate", "cutout"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise ValueError(f"augment.{name}: expected a whole number ≥ 0 of pixels, got {v!r}")
        if self.flip not in ("none", "random", "alternate"):
            raise ValueError(f'augment.flip: expected "none", "random" or "alternate", got {self.flip!r}')
        if self.padding not in ("reflect", "zero"):
            raise ValueError(f'augment.padding: expected "reflect" or "zero", got {self.padding!r}')

    @property
    def identity(self) -> bool:
        return self.translate == 0 and self.flip == "none" and self.cutout == 0

    def check(self, dim_in: tuple) -> None:
        """Refuse what the input cannot take (before any work starts)."""
        if self.identity:
            return
        if len(dim_in) != 3:
            raise ValueError(f"augment: images (X, Y, Z) are needed, the network takes {dim_in}")
        if self.padding == "reflect" and self.translate >= min(dim_in[:2]):
            raise ValueError(f"augment.translate: {self.translate} pixels is not less than the image's side {min(dim_in[:2])}")

    def to_json(self, seed: int) -> str:
        return json.dumps({**asdict(self), "seed": int(seed)})
