"""Images to and from Tensor3D arrays.

A Tensor3D is indexed ``t[x, y, z]`` with shape ``(X, Y, Z) = (width, height, depth)``
(see docs/engine.md), so an image of width W and height H becomes an array of shape
``(W, H, C)`` -- the transpose of the ``(H, W, C)`` that Pillow and NumPy usually use.
Every function here converts at the boundary so callers only ever see Tensor3D layout.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from .atomic import atomic_write

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageTooLargeError",
    "load_tensor_rgb",
    "load_tensor_gray",
    "images_from_tensor3d",
    "write_image",
    "contact_sheet",
]

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray]

#: Images whose files declare more pixels than this are refused before anything is decoded
#: (decompression bombs: a 35 KB PNG can declare 6000 x 6000). 2**26 = 67,108,864 pixels is
#: 8192 x 8192, and under Pillow's own warning threshold. Raise it per call with
#: ``max_pixels=`` or for the process with $NEUROFLOW_MAX_IMAGE_PIXELS.
DEFAULT_MAX_PIXELS = 1 << 26
MAX_PIXELS_ENV = "NEUROFLOW_MAX_IMAGE_PIXELS"
# Shrinking to a target size: box-reduce in integers down to no less than this many times the
# target (Pillow's reducing_gap), then Lanczos in float. So floats are only ever held for an
# image under 12 x 12 times the target's pixels. Against a full-size float Lanczos on
# photo-like test images, 6 differs by at most ~3/255 (Pillow's suggested 3: up to ~16/255
# near the Nyquist frequency).
_REDUCING_GAP = 6
_STRIP_PIXELS = 1 << 20  # pixels per strip while shrinking

# ITU-R 601-2 luma, the weights Pillow's convert("L") uses.
_LUMA = np.array([0.299, 0.587, 0.114])
_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG"}


# ---------------------------------------------------------------- loading


def _check_background(background: Any) -> np.ndarray:
    try:
        bg = np.asarray(background, dtype=np.float64)
    except (TypeError, ValueError):
        bg = None
    if bg is None or bg.shape != (3,) or not np.all(np.isfinite(bg)) or bg.min() < 0 or bg.max() > 255:
        raise ValueError(f"background must be an (r, g, b) triple of values in 0..255, got {background!r}")
    return bg / 255.0


def _check_size(size: Any, name: str = "size") -> tuple[int, int] | None:
    if size is None:
        return None
    ok = (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size)
    )
    if not ok:
        raise ValueError(f"{name} must be None or (X, Y) = (width, height) with positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def _max_pixels(max_pixels: Any) -> int:
    """The pixel limit to apply: ``max_pixels`` if given, else $NEUROFLOW_MAX_IMAGE_PIXELS,
    else DEFAULT_MAX_PIXELS."""
    if max_pixels is None:
        env = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not env:
            return DEFAULT_MAX_PIXELS
        try:
            value = int(env.replace("_", ""))
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"${MAX_PIXELS_ENV} must be a positive whole number of pixels, got {env!r}")
        return value
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise ValueError(f"max_pixels must be None or a positive int, got {max_pixels!r}")
    return int(max_pixels)


class ImageTooLargeError(ValueError):
    """An image file declares more pixels than the limit (see DEFAULT_MAX_PIXELS)."""


_HOW_TO_RAISE = (
    f"if you trust the file, pass max_pixels=N (load_tensor_rgb, load_tensor_gray, image_folder) "
    f"or set ${MAX_PIXELS_ENV}=N"
)

Box = tuple[float, float, float, float]

# EXIF orientations 2..8 (1: as stored). The pixels are decoded, shrunk and resized as stored;
# the small float result is turned upright at the end (as ImageOps.exif_transpose would turn
# the image: resizing and these flips and quarter turns commute).
_SWAPS_AXES = (5, 6, 7, 8)


def _upright(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF ``orientation`` to an (X, Y, C) array (x right, y down)."""
    if orientation == 2:  # mirrored: FLIP_LEFT_RIGHT
        return a[::-1]
    if orientation == 3:  # ROTATE_180
        return a[::-1, ::-1]
    if orientation == 4:  # FLIP_TOP_BOTTOM
        return a[:, ::-1]
    if orientation == 5:  # TRANSPOSE
        return a.transpose(1, 0, 2)
    if orientation == 6:  # ROTATE_270 (a quarter turn clockwise)
        return a[:, ::-1].transpose(1, 0, 2)
    if orientation == 7:  # TRANSVERSE
        return a[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:  # ROTATE_90 (a quarter turn anticlockwise)
        return a[::-1].transpose(1, 0, 2)
    return a


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block: show the pixels as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _stored(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The target size in the file's own orientation."""
    return (size[1], size[0]) if orientation in _SWAPS_AXES else size


def _decode(
    path: str | os.PathLike, size: tuple[int, int] | None, max_pixels: int, formats: Sequence[str] | None = None
) -> tuple[Image.Image, Box | None, int]:
    """Open, check, decode and (with ``size``) shrink an image file, in its 8/16/32-bit mode.

    Returns ``(image, box, orientation)``: the image as stored in the file, ``box`` the
    region of it that the whole file covers (fractional after a shrink; None without), and
    the EXIF orientation still to apply. The declared size is checked against ``max_pixels``
    before anything is decoded. With ``size`` (the upright target), a JPEG is decoded at a
    reduced scale (``draft``) and any image is then box-reduced in integers to no less than
    ``_REDUCING_GAP`` times ``size`` (see :func:`_shrink`).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {p}")
    try:
        with Image.open(p, formats=None if formats is None else list(formats)) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise ImageTooLargeError(
                    f"image {p} is {w}x{h} = {w * h:,} pixels, more than the limit of {max_pixels:,} pixels "
                    f"(a guard against decompression bombs: small files that decode to gigabytes); {_HOW_TO_RAISE}"
                )
            box: Box | None = None
            if size is not None and img.format in ("JPEG", "MPO"):  # MPO: a JPEG with more pictures
                # a JPEG's EXIF comes before its pixels: its orientation is known before decoding
                want = _stored(size, _orientation(img))
                drafted = img.draft(None, (want[0] * _REDUCING_GAP, want[1] * _REDUCING_GAP))
                if drafted is not None:
                    box = tuple(float(v) for v in drafted[1])  # type: ignore[assignment]
            img.load()
            orientation = _orientation(img)
            if size is None:
                return img, None, orientation
            out, box = _shrink(img, _stored(size, orientation), box)
            return out, box, orientation
    except ImageTooLargeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"image {p} refused by Pillow as a possible decompression bomb: {exc} (Pillow's own limit, "
            f"PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}, applies too); if you trust the file, "
            f"raise PIL.Image.MAX_IMAGE_PIXELS and pass max_pixels=N or set ${MAX_PIXELS_ENV}=N"
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ValueError(f"cannot read image {p}: {exc}") from exc


def _reducible(img: Image.Image) -> Image.Image:
    """``img`` in a mode Image.reduce handles and _pil_to_array reads the same way."""
    mode = img.mode
    if mode == "La":  # premultiplied: Pillow converts it to LA only
        img, mode = img.convert("LA"), "LA"
    if mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in img.info:
        return img if mode == "RGBA" else img.convert("RGBA")
    if mode.startswith("I"):
        return img if mode == "I" else img.convert("I")
    if mode in ("F", "L", "RGB"):
        return img
    return img.convert("RGB")  # 1, P, CMYK, YCbCr, LAB, HSV, ...


def _shrink(img: Image.Image, size: tuple[int, int], box: Box | None = None) -> tuple[Image.Image, Box]:
    """Box-reduce ``img`` by whole factors to no less than ``_REDUCING_GAP`` times ``size``
    (Pillow's ``reducing_gap``), in its own integer mode, in strips of rows so that no mode
    conversion ever touches the whole image at once. Alpha is premultiplied while averaging,
    so the result composites as the original would.

    ``box`` is the region of ``img`` that the picture covers (all of it if None); returns the
    reduced image and that region in its coordinates (the last row and column of blocks
    may be partial, so it need not end on a pixel edge)."""
    w, h = img.size
    l, t, r, b = box if box is not None else (0.0, 0.0, float(w), float(h))
    fx = max(1, int((r - l) // (size[0] * _REDUCING_GAP)))
    fy = max(1, int((b - t) // (size[1] * _REDUCING_GAP)))
    if fx == 1 and fy == 1:
        return img, (l, t, r, b)
    rows = fy * max(1, _STRIP_PIXELS // (w * fy))
    out: Image.Image | None = None
    for top in range(0, h, rows):
        part = _reducible(img.crop((0, top, w, min(h, top + rows)))).reduce((fx, fy))
        if out is None:
            out = Image.new(part.mode, (-(-w // fx), -(-h // fy)))
        out.paste(part, (0, top // fy))
    assert out is not None
    return out, (l / fx, t / fy, r / fx, b / fy)


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """A PIL image -> float64 (X, Y, C) in [0, 1], C = 3 (RGB) or 4 (RGBA)."""
    if img.mode == "La":  # premultiplied: Pillow converts it to LA only
        img = img.convert("LA")
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        # 16/32-bit greyscale: convert("RGB") would clip at 255, so scale here instead.
        a = np.asarray(img, dtype=np.float64)
        a = a / 65535.0 if mode.startswith("I") else a
        a = np.clip(a, 0.0, 1.0)[:, :, None].repeat(3, axis=2)
    else:
        has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
        a = np.asarray(img.convert("RGBA" if has_alpha else "RGB"), dtype=np.float64) / 255.0
    return a.transpose(1, 0, 2)


def _array_to_array(arr: np.ndarray, name: str = "src") -> np.ndarray:
    """A Tensor3D-layout array -> float64 (X, Y, C) in [0, 1], C in (1, 2, 3, 4)."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"{name} array must have shape (X, Y, 3) or (X, Y, 4) (or (X, Y)/(X, Y, 1) grey), got {arr.shape}"
        )
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} array must be uint8 or float in [0, 1], got dtype {arr.dtype}")
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} float array must hold finite values in [0, 1], got NaN or inf")
    if out.min() < 0.0 or out.max() > 1.0:
        raise ValueError(f"{name} float array must hold values in [0, 1], got range [{out.min()}, {out.max()}]")
    return out


def _resize(a: np.ndarray, size: tuple[int, int], box: Box | None = None) -> np.ndarray:
    """Resize a float (X, Y, C) array -- or its region ``box`` = (left, top, right, bottom)
    in pixels -- to (size[0], size[1], C), channel by channel in float."""
    whole = (0.0, 0.0, float(a.shape[0]), float(a.shape[1]))
    if box is None or box == whole:
        if a.shape[:2] == size:
            return a
        box = whole
    # LANCZOS in 32-bit float ("F" mode) keeps precision; it overshoots a little, hence clip.
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(a[:, :, c].T, dtype=np.float32), "F").resize(size, Image.Resampling.LANCZOS, box=box)
        )
        for c in range(a.shape[2])
    ]
    return np.clip(np.stack(planes, axis=2).transpose(1, 0, 2), 0.0, 1.0)


def _load_rgb(
    src: ImageSource, background: Any, size: Any, max_pixels: Any = None, formats: Sequence[str] | None = None
) -> np.ndarray:
    bg = _check_background(background)
    size = _check_size(size)
    limit = _max_pixels(max_pixels)
    box: Box | None = None
    orientation = 1
    if isinstance(src, (str, os.PathLike)):
        # Decoded, and shrunk towards ``size``, in 8/16-bit integers: float only when small.
        img, box, orientation = _decode(src, size, limit, formats)
        a = _pil_to_array(img)
    elif isinstance(src, Image.Image):
        if size is not None:
            src, box = _shrink(src, size)
        a = _pil_to_array(src)
    elif isinstance(src, np.ndarray):
        a = _array_to_array(src)
        if a.shape[2] <= 2:  # grey (+ alpha) -> RGB (+ alpha)
            a = np.concatenate([a[:, :, :1].repeat(3, axis=2), a[:, :, 1:]], axis=2)
    else:
        raise TypeError(f"src must be a path, a PIL.Image or a numpy array, got {type(src).__name__}")
    if a.shape[2] == 4:
        # Composite before resizing so transparent pixels' hidden RGB never bleeds in.
        alpha = a[:, :, 3:]
        a = a[:, :, :3] * alpha + bg * (1.0 - alpha)
    if size is not None:
        a = _resize(a, _stored(size, orientation), box)
    return _upright(a, orientation)


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be a numpy floating dtype, got {dtype!r}") from exc
    if dt.kind != "f":
        raise TypeError(f"dtype must be a numpy floating dtype (e.g. np.float32), got {dt}")
    return dt


def load_tensor_rgb(
    src: ImageSource,
    *,
    background: Sequence[float] = (255, 255, 255),
    size: tuple[int, int] | None = None,
    dtype: Any = np.float32,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Load an image as a C-contiguous ``(X, Y, 3)`` array of values in [0, 1].

    ``src`` is a file path (PNG, JPEG, ... -- anything Pillow reads), a ``PIL.Image`` or an
    array in Tensor3D layout: ``(X, Y, 3)`` or ``(X, Y, 4)`` (also ``(X, Y)`` / ``(X, Y, 1)``
    grey), ``uint8`` or float in [0, 1].

    An alpha channel (RGBA, LA, palette or RGB with a transparency key) is composited onto
    ``background`` (r, g, b in 0..255), so fully transparent pixels take the background
    colour rather than whatever RGB happens to be stored under them.

    ``size=(X, Y)`` (width, height) resizes with Lanczos filtering after compositing. A
    file is shrunk while still in 8/16-bit integers (JPEG decoded at a reduced scale, then a
    box reduction to no less than six times ``size``, alpha premultiplied), so only an
    image a few times ``size`` is ever held as floats.

    A file that declares more than ``max_pixels`` pixels (None: $NEUROFLOW_MAX_IMAGE_PIXELS,
    else :data:`DEFAULT_MAX_PIXELS`, 8192 x 8192) is refused with :class:`ImageTooLargeError`
    (a ValueError) before anything is decoded.
    """
    return _load(src, gray=False, background=background, size=size, dtype=dtype, max_pixels=max_pixels)


def load_tensor_gray(
    src: ImageSource,
    *,
    background: Sequence[float] = (255, 255, 255),
    size: tuple[int, int] | None = None,
    dtype: Any = np.float32,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Load an image as a C-contiguous ``(X, Y, 1)`` greyscale array of values in [0, 1].

    Same sources and options as :func:`load_tensor_rgb`; grey is the ITU-R 601 luma
    ``0.299 R + 0.587 G + 0.114 B`` of the composited RGB (what Pillow's ``convert("L")``
    computes, without its rounding to 8 bits).
    """
    return _load(src, gray=True, background=background, size=size, dtype=dtype, max_pixels=max_pixels)


def _load(
    src: ImageSource, *, gray: bool, background: Any, size: Any, dtype: Any, max_pixels: Any,
    formats: Sequence[str] | None = None,
) -> np.ndarray:
    """load_tensor_gray (``gray``) or load_tensor_rgb; ``formats`` restricts the file formats."""
    dt = _check_dtype(dtype)
    rgb = _load_rgb(src, background, size, max_pixels, formats)
    if gray:
        return np.ascontiguousarray(np.clip(rgb @ _LUMA, 0.0, 1.0)[:, :, None], dtype=dt)
    return np.ascontiguousarray(rgb, dtype=dt)


# ---------------------------------------------------------------- tensors to images


def images_from_tensor3d(t: np.ndarray, boost: float = 1.0) -> list[Image.Image]:
    """One greyscale ("L") PIL image per z-slice of a Tensor3D ``t`` of shape (X, Y, Z).

    Each image is X pixels wide and Y high; pixel = round(clamp(value * boost, 0, 1) * 255).
    Values above 1 saturate to white and negative ones to black (NeuroFlow wrapped them
    around modulo 256, which turned strong activations dark).
    """
    if not isinstance(t, np.ndarray):
        raise TypeError(f"t must be a numpy array of shape (X, Y, Z), got {type(t).__name__}")
    if t.ndim != 3 or 0 in t.shape:
        raise ValueError(f"t must have shape (X, Y, Z) with no empty dimension, got {t.shape}")
    if t.dtype.kind not in "fiub":
        raise TypeError(f"t must hold real numbers, got dtype {t.dtype}")
    if isinstance(boost, bool) or not isinstance(boost, (int, float, np.integer, np.floating)) or not math.isfinite(boost):
        raise ValueError(f"boost must be a finite number, got {boost!r}")
    v = t.astype(np.float64) * float(boost)
    if np.isnan(v).any():
        raise ValueError("t contains NaN values; cannot turn them into pixels")
    pixels = np.rint(np.clip(v, 0.0, 1.0) * 255.0).astype(np.uint8)
    # PIL wants (height, width) = (Y, X) row-major, so each slice is transposed.
    return [Image.fromarray(np.ascontiguousarray(pixels[:, :, z].T), "L") for z in range(t.shape[2])]


# ---------------------------------------------------------------- writing


def _format_for(path: Path, format: str | None) -> str:
    key = (format if format is not None else path.suffix.lstrip(".")).lower()
    if key not in _FORMATS:
        what = f"format {format!r}" if format is not None else f"file suffix {path.suffix!r} of {path}"
        raise ValueError(f"unknown image {what}: expected one of png, jpg, jpeg")
    return _FORMATS[key]


def write_image(img: Image.Image, path: str | os.PathLike, format: str | None = None) -> Path:
    """Write a PIL image as PNG or JPEG, atomically, and return the path.

    ``format`` is "png", "jpeg" or "jpg" (any case); None takes it from the suffix of
    ``path``. For JPEG, images with transparency are composited onto white first and other
    modes converted to RGB, since JPEG holds only L and RGB.
    """
    if not isinstance(img, Image.Image):
        raise TypeError(f"img must be a PIL.Image, got {type(img).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    target = Path(path)
    fmt = _format_for(target, format)
    if fmt == "JPEG" and img.mode not in ("L", "RGB"):
        img = _as_display_image(img, 0)
    if fmt == "PNG" and img.mode == "F":
        raise ValueError("img has mode 'F' (32-bit float), which PNG cannot hold; convert it to 'L' or 'I' first")
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    with atomic_write(target) as f:
        f.write(buf.getvalue())
    return target


# ---------------------------------------------------------------- contact sheets


def _font(size: int = 12) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType: bitmap font
        return ImageFont.load_default()


def _as_display_image(item: Any, index: int) -> Image.Image:
    if isinstance(item, Image.Image):
        img = item
    elif isinstance(item, np.ndarray):
        a = _array_to_array(item, name=f"images[{index}]")
        if a.shape[2] <= 2:
            a = np.concatenate([a[:, :, :1].repeat(3, axis=2), a[:, :, 1:]], axis=2)
        img = Image.fromarray(np.ascontiguousarray(np.rint(a * 255).astype(np.uint8).transpose(1, 0, 2)))
    else:
        raise TypeError(f"images[{index}] must be a PIL.Image or a Tensor3D array, got {type(item).__name__}")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        base = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(base, img.convert("RGBA")).convert("RGB")
    if img.mode.startswith("I") or img.mode == "F":
        a = _pil_to_array(img)
        return Image.fromarray(np.ascontiguousarray(np.rint(a * 255).astype(np.uint8).transpose(1, 0, 2)))
    return img.convert("RGB")


def _fit(img: Image.Image, box: tuple[int, int]) -> Image.Image:
    scale = min(box[0] / img.width, box[1] / img.height)
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    if new == img.size:
        return img
    # Small activation maps are scaled up with NEAREST so each unit stays a crisp square.
    return img.resize(new, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS)


def contact_sheet(
    images: Sequence[Image.Image | np.ndarray],
    columns: int | None = None,
    labels: Sequence[str] | None = None,
    pad: int = 4,
    scale_to: int | tuple[int, int] | None = None,
) -> Image.Image:
    """Tile several images into one RGB image on a white background, row by row.

    ``images``: PIL images or Tensor3D arrays ((X, Y), (X, Y, 1|3|4), uint8 or float in
    [0, 1]). ``columns`` defaults to ceil(sqrt(n)). ``labels``: one caption per image,
    drawn under it with Pillow's default font. ``pad``: pixels between and around cells.
    ``scale_to``: an int (longest side) or (width, height) box each image is scaled to fit,
    keeping its aspect ratio -- upscaling uses nearest-neighbour, so e.g. 8x8 focus maps
    stay blocky rather than blurred. Cells are as large as the largest (scaled) image and
    each image is centred in its cell.
    """
    if isinstance(images, (Image.Image, np.ndarray)) or not isinstance(images, Sequence):
        raise TypeError("images must be a sequence (list/tuple) of PIL images or arrays")
    n = len(images)
    if n == 0:
        raise ValueError("images must hold at least one image, got an empty sequence")
    if columns is None:
        columns = math.ceil(math.sqrt(n))
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(f"columns must be a positive int or None, got {columns!r}")
    columns = min(int(columns), n)
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"pad must be a non-negative int, got {pad!r}")
    if labels is not None:
        if isinstance(labels, str) or len(labels) != n:
            got = "a str" if isinstance(labels, str) else f"{len(labels)} labels"
            raise ValueError(f"labels must be a sequence of {n} strings (one per image), got {got}")
        labels = [str(s) for s in labels]
    box: tuple[int, int] | None
    if scale_to is None:
        box = None
    elif isinstance(scale_to, (int, np.integer)) and not isinstance(scale_to, bool) and scale_to > 0:
        box = (int(scale_to), int(scale_to))
    else:
        box = _check_size(scale_to, "scale_to")

    tiles = [_as_display_image(im, i) for i, im in enumerate(images)]
    if box is not None:
        tiles = [_fit(im, box) for im in tiles]

    font = _font()
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_h = 0
    label_w = 0
    if labels is not None:
        boxes = [draw_probe.textbbox((0, 0), s or " ", font=font) for s in labels]
        label_h = math.ceil(max(b[3] for b in boxes)) + 2  # text boxes are typed float; pixels are whole
        label_w = math.ceil(max(b[2] for b in boxes))
    cell_w = max(max(t.width for t in tiles), label_w)
    cell_h = max(t.height for t in tiles) + label_h
    rows = math.ceil(n / columns)
    sheet = Image.new("RGB", (columns * cell_w + (columns + 1) * pad, rows * cell_h + (rows + 1) * pad), "white")
    draw = ImageDraw.Draw(sheet)
    img_h = cell_h - label_h
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        x0 = pad + c * (cell_w + pad)
        y0 = pad + r * (cell_h + pad)
        sheet.paste(tile, (x0 + (cell_w - tile.width) // 2, y0 + (img_h - tile.height) // 2))
        if labels is not None and labels[i]:
            tw = draw.textbbox((0, 0), labels[i], font=font)[2]
            draw.text((x0 + (cell_w - tw) // 2, y0 + img_h + 1), labels[i], fill="black", font=font)
    return sheet
