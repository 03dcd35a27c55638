"""PNG pictures of training results: a loss curve and a confusion matrix.

matplotlib (through its object API and the Agg canvas, so the global pyplot backend and
state are never touched) is used when it is installed; otherwise a plainer picture is
drawn with Pillow, so a picture is always written. Writes are atomic.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..io.atomic import atomic_write

__all__ = ["loss_curve_png", "confusion_matrix_png"]


def _import_matplotlib() -> Any | None:
    """``(Figure, FigureCanvasAgg)`` if matplotlib is importable, else None (a test seam)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure, FigureCanvasAgg


def _check_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {p}")
    if not p.parent.is_dir():
        raise FileNotFoundError(f"cannot write {p}: folder {p.parent} does not exist")
    return p


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType: bitmap font
        return ImageFont.load_default()


def _save_png(img: Image.Image, path: Path) -> Path:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    with atomic_write(path) as f:
        f.write(buf.getvalue())
    return path


def _save_figure(fig: Any, canvas_cls: Any, path: Path) -> Path:
    canvas_cls(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    with atomic_write(path) as f:
        f.write(buf.getvalue())
    return path


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if not hi - lo > 1e-9 * max(abs(lo), abs(hi)):  # flat to float precision: centre it in a small range
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    digits = max(0, 2 - math.floor(math.log10(step)))  # enough to keep neighbouring ticks apart
    return [round(i * step, digits) for i in range(first, last + 1)]


def _fmt(v: float) -> str:
    return f"{v:.4g}"


# ---------------------------------------------------------------- loss curve


def loss_curve_png(
    losses: Sequence[float] | np.ndarray,
    path: str | os.PathLike,
    title: str = "Training loss",
    *,
    xlabel: str = "step",
    ylabel: str = "loss",
    start: float = 0,
) -> Path:
    """Plot ``losses`` (one value per step/epoch) against ``start``, ``start + 1``, … and write
    a PNG (``start``: the number of the first step or epoch shown, e.g. where a resumed run began).

    Non-finite values (a diverged run) are left out as gaps, so the picture still shows
    what happened before. Returns the path written.
    """
    try:
        y = np.asarray(losses, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"losses must be a sequence of numbers: {exc}") from exc
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"losses must be a non-empty 1-D sequence, got shape {y.shape}")
    if not np.isfinite(y).any():
        raise ValueError("losses holds no finite value to plot")
    p = _check_path(path)
    mpl = _import_matplotlib()
    if mpl is not None:
        Figure, Canvas = mpl
        fig = Figure(figsize=(6.4, 4.0))
        ax = fig.add_subplot()
        ax.plot(start + np.arange(y.size), np.where(np.isfinite(y), y, np.nan), color="tab:blue", lw=1.5, marker="." if y.size <= 50 else None)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        return _save_figure(fig, Canvas, p)
    return _save_png(_loss_curve_pillow(y, title, xlabel, ylabel, float(start)), p)


def _loss_curve_pillow(y: np.ndarray, title: str, xlabel: str, ylabel: str, start: float) -> Image.Image:
    W, H = 640, 400
    left, right, top, bottom = 70, 20, 36, 50
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    font, big = _font(12), _font(15)
    finite = y[np.isfinite(y)]
    yt = _nice_ticks(float(finite.min()), float(finite.max()))
    xt = _nice_ticks(start, start + float(max(y.size - 1, 1)))
    y_lo, y_hi, x_lo, x_hi = yt[0], yt[-1], xt[0], xt[-1]
    pw, ph = W - left - right, H - top - bottom

    def px(x: float) -> float:
        return left + pw * (x - x_lo) / (x_hi - x_lo)

    def py(v: float) -> float:
        return top + ph * (1 - (v - y_lo) / (y_hi - y_lo))

    for v in yt:
        d.line((left, py(v), W - right, py(v)), fill=(230, 230, 230))
        tw = d.textlength(_fmt(v), font=font)
        d.text((left - 6 - tw, py(v) - 7), _fmt(v), fill="black", font=font)
    for v in xt:
        d.line((px(v), top, px(v), H - bottom), fill=(230, 230, 230))
        tw = d.textlength(_fmt(v), font=font)
        d.text((px(v) - tw / 2, H - bottom + 5), _fmt(v), fill="black", font=font)
    d.rectangle((left, top, W - right, H - bottom), outline="black")
    # One polyline per run of finite values, so NaN/inf steps show as gaps.
    run: list[tuple[float, float]] = []
    for i, v in enumerate([*y, math.nan]):
        if math.isfinite(v):
            run.append((px(start + i), py(v)))
        elif run:
            if len(run) == 1:
                x0, y0 = run[0]
                d.ellipse((x0 - 2, y0 - 2, x0 + 2, y0 + 2), fill=(31, 119, 180))
            else:
                d.line(run, fill=(31, 119, 180), width=2)
            run = []
    d.text(((W - d.textlength(title, font=big)) / 2, 10), title, fill="black", font=big)
    d.text(((W - d.textlength(xlabel, font=font)) / 2, H - 22), xlabel, fill="black", font=font)
    label = Image.new("RGB", (int(d.textlength(ylabel, font=font)) + 4, 16), "white")
    ImageDraw.Draw(label).text((2, 1), ylabel, fill="black", font=font)
    rot = label.rotate(90, expand=True)
    img.paste(rot, (4, top + (ph - rot.height) // 2))
    return img


# ---------------------------------------------------------------- confusion matrix


def confusion_matrix_png(
    cm: np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str = "Confusion matrix",
) -> Path:
    """Draw a ``(K, K)`` confusion matrix (rows = true class, columns = predicted) as a PNG.

    Cells are coloured by the fraction of their row (so the diagonal reads as per-class
    recall) and labelled with the counts. Returns the path written.
    """
    m = np.asarray(cm)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"cm must be a non-empty square (K, K) matrix, got shape {m.shape}")
    if m.dtype.kind not in "biuf" or not np.all(np.isfinite(m)) or (m < 0).any():
        raise ValueError("cm must hold finite non-negative counts")
    if isinstance(class_names, str) or len(class_names) != m.shape[0]:
        got = "a str" if isinstance(class_names, str) else f"{len(class_names)} names"
        raise ValueError(f"class_names must hold {m.shape[0]} names (one per row of cm), got {got}")
    names = [str(n) for n in class_names]
    p = _check_path(path)
    rows = m.sum(axis=1, keepdims=True).astype(np.float64)
    frac = np.divide(m, rows, out=np.zeros(m.shape, dtype=np.float64), where=rows > 0)
    k = m.shape[0]
    mpl = _import_matplotlib()
    if mpl is not None:
        Figure, Canvas = mpl
        side = min(12.0, 2.5 + 0.6 * k)
        fig = Figure(figsize=(side + 1.0, side))
        ax = fig.add_subplot()
        im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
        ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title=title)
        ax.set_xticklabels(names, rotation=45, ha="right")
        ax.set_yticklabels(names)
        if k <= 30:
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, _fmt(float(m[i, j])), ha="center", va="center", fontsize=8,
                            color="white" if frac[i, j] > 0.5 else "black")
        fig.tight_layout()
        return _save_figure(fig, Canvas, p)
    return _save_png(_confusion_pillow(m, frac, names, title), p)


def _confusion_pillow(m: np.ndarray, frac: np.ndarray, names: list[str], title: str) -> Image.Image:
    k = m.shape[0]
    font, big = _font(12), _font(15)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    name_w = int(max(probe.textlength(n, font=font) for n in names)) + 8
    count_w = int(max(probe.textlength(_fmt(float(v)), font=font) for v in m.ravel())) + 8
    cell = max(28, count_w)
    left, top = name_w + 24, name_w + 40
    footer = "rows: true class, columns: predicted"
    W = max(left + k * cell + 20, int(probe.textlength(footer, font=font)) + 20)
    H = top + k * cell + 40
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    d.text(((W - d.textlength(title, font=big)) / 2, 8), title, fill="black", font=big)
    for i in range(k):
        for j in range(k):
            f = float(frac[i, j])
            # white -> dark blue ramp, like matplotlib's "Blues"
            colour = tuple(int(round(a + (b - a) * f)) for a, b in zip((247, 251, 255), (8, 48, 107)))
            x0, y0 = left + j * cell, top + i * cell
            d.rectangle((x0, y0, x0 + cell - 1, y0 + cell - 1), fill=colour, outline=(200, 200, 200))
            text = _fmt(float(m[i, j]))
            tw = d.textlength(text, font=font)
            d.text((x0 + (cell - tw) / 2, y0 + cell / 2 - 7), text, fill="white" if f > 0.5 else "black", font=font)
    for i, n in enumerate(names):
        tw = d.textlength(n, font=font)
        d.text((left - 6 - tw, top + i * cell + cell / 2 - 7), n, fill="black", font=font)
        label = Image.new("RGB", (int(tw) + 4, 16), "white")
        ImageDraw.Draw(label).text((2, 1), n, fill="black", font=font)
        rot = label.rotate(90, expand=True)
        img.paste(rot, (left + i * cell + (cell - rot.width) // 2, top - 6 - rot.height))
    d.text((10, H - 24), footer, fill=(90, 90, 90), font=font)
    return img
