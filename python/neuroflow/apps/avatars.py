"""Synthetic "glasses / no glasses" cartoon avatars, a small learnable image task.

Each random face is drawn twice, once with glasses and once without, with the same
rotation and noise, so the two images of a pair differ only where the glasses are.
Faces vary in shape, size, position, skin, hair (colour and style), eyes, brows, mouth and
background; glasses vary in lens shape (round or rectangular), size, frame colour and
thickness, with a bridge, usually temples, and sometimes tinted lenses. Frames are always
darker than the skin, so the task is learnable but not trivial (dark hair, dark brows and
tinted or light-framed glasses all compete in the eye band).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..io.image import write_image

__all__ = ["make_avatars", "save_avatar_folders", "draw_avatar_pair", "CLASS_NAMES"]

CLASS_NAMES = ["glasses", "noglasses"]

_SUPERSAMPLE = 4  # draw large and downsample: cheap anti-aliasing
_SKIN = [(255, 224, 189), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 205, 148), (234, 192, 134)]
_HAIR = [(20, 16, 14), (72, 44, 24), (120, 80, 40), (222, 190, 120), (165, 60, 30), (150, 150, 150), (60, 60, 70)]
_IRIS = [(90, 60, 30), (40, 100, 170), (60, 120, 70), (30, 30, 30), (120, 110, 90)]
_FRAME = [(15, 15, 15), (70, 45, 25), (25, 35, 110), (150, 25, 35), (25, 100, 50), (90, 40, 120), (80, 80, 80), (190, 150, 40)]
_LUMA = np.array([0.299, 0.587, 0.114])


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    c = np.clip(np.array(colour, dtype=float) + rng.uniform(-amount, amount, 3), 0, 255)
    return tuple(int(v) for v in np.rint(c))  # type: ignore[return-value]


def _pick(rng: np.random.Generator, palette: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    return palette[int(rng.integers(len(palette)))]


def _check_size(size: object) -> tuple[int, int]:
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
        or min(size) < 16
    ):
        raise ValueError(f"size must be (X, Y) = (width, height) with ints >= 16, got {size!r}")
    return int(size[0]), int(size[1])


def draw_avatar_pair(
    rng: np.random.Generator, size: tuple[int, int] = (100, 100)
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Draw one random face with and without glasses.

    Returns ``(with_glasses, without_glasses, eye_box)``: two float32 ``(X, Y, 3)`` arrays in
    [0, 1] (Tensor3D layout) and ``eye_box = (x0, y0, x1, y1)``, the pixel bounds (x1, y1
    exclusive) of the region the glasses can touch -- outside it the two images are equal.
    """
    W, H = _check_size(size)
    S = _SUPERSAMPLE
    w, h = W * S, H * S
    u = rng.uniform

    bg = tuple(int(v) for v in rng.integers(90, 251, 3))
    skin = _jitter(rng, _pick(rng, _SKIN), 12)
    hair = _jitter(rng, _pick(rng, _HAIR), 15)
    cx, cy = w * (0.5 + u(-0.07, 0.07)), h * (0.53 + u(-0.05, 0.05))
    fw, fh = w * u(0.25, 0.33), h * u(0.31, 0.39)  # half width / height of the face
    rounded = u() < 0.35
    hair_style = int(rng.integers(4))  # 0 bald, 1 short, 2 long, 3 short with fringe
    hair_line = u(0.45, 0.7)  # where a short cap of hair ends, as a fraction of fh above cy

    eye_y = cy - fh * u(0.08, 0.22)
    eye_dx = fw * u(0.38, 0.48)
    eye_r = fw * u(0.10, 0.15)
    iris = _jitter(rng, _pick(rng, _IRIS), 15)
    brow_y = eye_y - eye_r * u(1.7, 2.3)
    brow_tilt = eye_r * u(-0.3, 0.3)
    mouth_y = cy + fh * u(0.38, 0.58)
    mouth_w = fw * u(0.28, 0.55)
    smile = u(-0.1, 0.35)

    lens_w = min(eye_r * u(1.55, 2.1), eye_dx * 0.88)
    lens_round = u() < 0.5
    lens_h = lens_w if lens_round else max(lens_w * u(0.65, 0.95), eye_r * 1.35)
    frame = np.array(_jitter(rng, _pick(rng, _FRAME), 15), dtype=float)
    # Keep frames clearly darker than the skin, whatever hue was drawn.
    skin_luma, frame_luma = float(np.dot(_LUMA, skin)), float(np.dot(_LUMA, frame))
    if frame_luma > 0.6 * skin_luma:
        frame *= 0.6 * skin_luma / frame_luma
    frame_rgb = tuple(int(v) for v in np.rint(frame))
    thick = max(2, int(round(w * u(0.010, 0.028))))
    tint = u(0.15, 0.55) if u() < 0.2 else 0.0
    temples = u() < 0.8
    angle = u(-7, 7)
    noise_sigma = u(0.0, 0.03)

    def face(glasses: bool) -> Image.Image:
        img = Image.new("RGB", (w, h), bg)
        d = ImageDraw.Draw(img, "RGBA")
        face_box = (cx - fw, cy - fh, cx + fw, cy + fh)
        if hair_style == 2:  # long hair behind the face
            d.ellipse((cx - fw * 1.18, cy - fh * 1.12, cx + fw * 1.18, cy + fh * 0.95), fill=hair)
        for sx in (-1, 1):  # ears
            d.ellipse((cx + sx * fw - fw * 0.14, eye_y - fh * 0.05, cx + sx * fw + fw * 0.14, eye_y + fh * 0.3), fill=skin)
        if rounded:
            d.rounded_rectangle(face_box, radius=fw * 0.6, fill=skin)
        else:
            d.ellipse(face_box, fill=skin)
        if hair_style in (1, 3):  # a cap of hair that stops above the brows
            bottom = min(cy - fh * hair_line, brow_y - eye_r * 0.8)
            d.chord((cx - fw * 1.05, cy - fh * 1.08, cx + fw * 1.05, 2 * bottom - (cy - fh * 1.08)), 180, 360, fill=hair)
            if hair_style == 3:
                d.polygon([(cx - fw * 0.6, bottom - 1), (cx + fw * 0.1, bottom - 1), (cx - fw * 0.35, bottom + eye_r * 0.6)], fill=hair)
        for sx in (-1, 1):
            ex = cx + sx * eye_dx
            d.ellipse((ex - eye_r * 1.25, eye_y - eye_r * 0.8, ex + eye_r * 1.25, eye_y + eye_r * 0.8), fill=(250, 250, 250))
            d.ellipse((ex - eye_r * 0.6, eye_y - eye_r * 0.6, ex + eye_r * 0.6, eye_y + eye_r * 0.6), fill=iris)
            d.ellipse((ex - eye_r * 0.28, eye_y - eye_r * 0.28, ex + eye_r * 0.28, eye_y + eye_r * 0.28), fill=(10, 10, 10))
            d.line((ex - eye_r * 1.3, brow_y + sx * brow_tilt, ex + eye_r * 1.3, brow_y - sx * brow_tilt), fill=hair, width=max(2, int(eye_r * 0.45)))
        nose = tuple(int(v * 0.8) for v in skin)
        d.line((cx, eye_y + eye_r, cx - fw * 0.08, cy + fh * 0.2, cx + fw * 0.02, cy + fh * 0.22), fill=nose, width=max(2, thick // 2))
        d.arc(
            (cx - mouth_w, mouth_y - fh * 0.12 * (1 + smile), cx + mouth_w, mouth_y + fh * 0.12 * (1 + smile)),
            20 - 60 * smile, 160 + 60 * smile, fill=(150, 40, 50), width=max(2, thick // 2 + 1),
        )
        if glasses:
            for sx in (-1, 1):
                ex = cx + sx * eye_dx
                box = (ex - lens_w, eye_y - lens_h, ex + lens_w, eye_y + lens_h)
                fill = (*frame_rgb, int(255 * tint)) if tint else None
                if lens_round:
                    d.ellipse(box, fill=fill, outline=frame_rgb, width=thick)
                else:
                    d.rounded_rectangle(box, radius=lens_w * 0.3, fill=fill, outline=frame_rgb, width=thick)
                if temples:
                    outer = ex + sx * lens_w
                    d.line((outer, eye_y - lens_h * 0.3, cx + sx * fw * 1.02, eye_y - lens_h * 0.45), fill=frame_rgb, width=thick)
            d.line((cx - eye_dx + lens_w - thick, eye_y - lens_h * 0.25, cx + eye_dx - lens_w + thick, eye_y - lens_h * 0.25), fill=frame_rgb, width=thick)
        return img.rotate(angle, resample=Image.Resampling.BICUBIC, center=(cx, cy), fillcolor=bg)

    noise = rng.normal(0.0, noise_sigma, (H, W, 3))

    def finish(img: Image.Image) -> np.ndarray:
        a = np.asarray(img.resize((W, H), Image.Resampling.LANCZOS), dtype=np.float64) / 255.0
        return np.ascontiguousarray(np.clip(a + noise, 0.0, 1.0).transpose(1, 0, 2), dtype=np.float32)

    with_g, without_g = finish(face(True)), finish(face(False))

    # Region the glasses can touch: lenses, bridge and temples up to the face's sides,
    # rotated like the picture (PIL turns counter-clockwise with y pointing down).
    x0, x1 = cx - max(fw * 1.02, eye_dx + lens_w) - thick, cx + max(fw * 1.02, eye_dx + lens_w) + thick
    y0, y1 = eye_y - lens_h - thick, eye_y + lens_h + thick
    t = math.radians(angle)
    xs, ys = [], []
    for px, py in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
        dx, dy = px - cx, py - cy
        xs.append(cx + dx * math.cos(t) + dy * math.sin(t))
        ys.append(cy - dx * math.sin(t) + dy * math.cos(t))
    margin = 3  # filter support of the rotation and of the Lanczos downsampling
    box = (
        max(0, int(math.floor(min(xs) / S)) - margin),
        max(0, int(math.floor(min(ys) / S)) - margin),
        min(W, int(math.ceil(max(xs) / S)) + margin),
        min(H, int(math.ceil(max(ys) / S)) + margin),
    )
    return with_g, without_g, box


def make_avatars(
    n_pairs: int = 20, size: tuple[int, int] = (100, 100), seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``n_pairs`` random faces, each with and without glasses.

    Returns ``(images, labels, class_names)``: ``images`` float32 ``(2 * n_pairs, X, Y, 3)``
    in [0, 1] (Tensor3D layout, ``size = (X, Y) = (width, height)``); pairs are adjacent
    (``images[2i]`` with glasses, ``images[2i + 1]`` the same face without); ``labels``
    int64, 0 = glasses, 1 = noglasses; ``class_names = ['glasses', 'noglasses']``.
    The same ``seed`` always gives the same images.
    """
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 1:
        raise ValueError(f"n_pairs must be a positive int, got {n_pairs!r}")
    W, H = _check_size(size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    images = np.empty((2 * int(n_pairs), W, H, 3), dtype=np.float32)
    for i in range(int(n_pairs)):
        images[2 * i], images[2 * i + 1], _ = draw_avatar_pair(rng, (W, H))
    labels = np.tile(np.array([0, 1], dtype=np.int64), int(n_pairs))
    return images, labels, list(CLASS_NAMES)


def save_avatar_folders(
    root: str | os.PathLike, n_pairs: int = 20, size: tuple[int, int] = (100, 100), seed: int = 0
) -> Path:
    """Write :func:`make_avatars` output as ``root/glasses/avatarNNN.png`` and
    ``root/noglasses/avatarNNN.png`` (pair i has the same number in both), readable by
    :func:`neuroflow.datasets.image_folder`. Creates the folders; returns ``root``.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a str or os.PathLike, got {type(root).__name__}")
    images, labels, names = make_avatars(n_pairs, size, seed)  # validates before any write
    base = Path(root)
    digits = max(2, len(str(n_pairs - 1)))
    for name in names:
        (base / name).mkdir(parents=True, exist_ok=True)
    for k, (img, label) in enumerate(zip(images, labels)):
        pixels = np.rint(img.transpose(1, 0, 2) * 255).astype(np.uint8)
        write_image(Image.fromarray(pixels, "RGB"), base / names[int(label)] / f"avatar{k // 2:0{digits}d}.png")
    return base
