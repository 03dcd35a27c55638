"""Tests for neuroflow.image: loading into Tensor3D layout, slices to images, writing, sheets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuroflow import image

DATA = Path(os.environ.get("NEUROFLOW_DATA") or Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets")
BOB = DATA / "avatars" / "bob.png"


def _random_rgb(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- loading


def test_layout_is_transpose_of_pillow(tmp_path: Path, rng: np.random.Generator) -> None:
    img = _random_rgb(rng, 7, 5)  # width 7, height 5
    path = tmp_path / "a.png"
    img.save(path)
    for src in (img, path, str(path)):
        a = image.load_tensor_rgb(src)
        assert a.shape == (7, 5, 3) and a.dtype == np.float32 and a.flags["C_CONTIGUOUS"]
        for x, y in [(0, 0), (6, 0), (0, 4), (3, 2), (6, 4)]:
            np.testing.assert_allclose(a[x, y], np.array(img.getpixel((x, y))) / 255.0, atol=1e-7)


@pytest.mark.skipif(not BOB.is_file(), reason=f"{BOB} is absent (set NEUROFLOW_DATA to the shared datasets folder)")
def test_bob_alpha_is_composited_onto_background() -> None:
    alpha = np.asarray(Image.open(BOB))[:, :, 3].T  # (X, Y)
    clear, opaque = alpha == 0, alpha == 255
    assert clear.mean() > 0.3  # the file really has transparency, with black RGB under it
    white = image.load_tensor_rgb(BOB)
    black = image.load_tensor_rgb(BOB, background=(0, 0, 0))
    assert white.shape == (400, 400, 3)
    assert np.all(white[clear] == 1.0)
    assert np.all(black[clear] == 0.0)
    np.testing.assert_array_equal(white[opaque], black[opaque])
    red = image.load_tensor_rgb(BOB, background=(255, 0, 0))
    np.testing.assert_array_equal(red[clear], np.broadcast_to([1.0, 0.0, 0.0], red[clear].shape))
    gray = image.load_tensor_gray(BOB)
    assert gray.shape == (400, 400, 1) and np.all(gray[clear] == pytest.approx(1.0))


def test_alpha_modes_la_and_palette_transparency(rng: np.random.Generator) -> None:
    g = rng.integers(0, 256, (6, 9), dtype=np.uint8)
    a = rng.integers(0, 256, (6, 9), dtype=np.uint8)
    la = Image.merge("LA", [Image.fromarray(g), Image.fromarray(a)])
    out = image.load_tensor_rgb(la, background=(0, 0, 0))
    expect = (g.T / 255.0) * (a.T / 255.0)
    for c in range(3):
        np.testing.assert_allclose(out[:, :, c], expect, atol=1e-6)

    p = Image.new("P", (4, 3))
    p.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    p.putpixel((1, 2), 1)
    p.info["transparency"] = 0
    out = image.load_tensor_rgb(p, background=(0, 255, 0))
    np.testing.assert_allclose(out[1, 2], np.array([200, 10, 20]) / 255, atol=1e-7)
    np.testing.assert_allclose(out[0, 0], [0, 1, 0])


def test_array_sources(rng: np.random.Generator) -> None:
    u8 = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    np.testing.assert_allclose(image.load_tensor_rgb(u8), u8 / 255.0, atol=1e-7)
    rgba = rng.random((5, 4, 4))
    out = image.load_tensor_rgb(rgba, background=(255, 0, 255), dtype=np.float64)
    bg = np.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(out, rgba[:, :, :3] * rgba[:, :, 3:] + bg * (1 - rgba[:, :, 3:]), atol=1e-12)
    assert out.dtype == np.float64
    gray = image.load_tensor_gray(u8)
    np.testing.assert_allclose(gray[:, :, 0], (u8 / 255.0) @ [0.299, 0.587, 0.114], atol=1e-6)


def test_gray_matches_pillow_luma(rng: np.random.Generator) -> None:
    img = _random_rgb(rng, 11, 6)
    ours = image.load_tensor_gray(img)
    pil = np.asarray(img.convert("L")).T / 255.0
    assert ours.shape == (11, 6, 1)
    np.testing.assert_allclose(ours[:, :, 0], pil, atol=1.01 / 255)


def test_resize_on_load(rng: np.random.Generator) -> None:
    img = _random_rgb(rng, 40, 30)
    a = image.load_tensor_rgb(img, size=(20, 10))
    assert a.shape == (20, 10, 3) and 0.0 <= a.min() and a.max() <= 1.0
    colour = rng.integers(0, 256, 3)
    flat = Image.new("RGB", (33, 17), tuple(int(c) for c in colour))
    np.testing.assert_allclose(image.load_tensor_rgb(flat, size=(8, 12)), np.broadcast_to(colour / 255, (8, 12, 3)), atol=1e-5)
    same = image.load_tensor_rgb(img, size=(40, 30))
    np.testing.assert_array_equal(same, image.load_tensor_rgb(img))


def test_sixteen_bit_gray_is_scaled_not_clipped(rng: np.random.Generator) -> None:
    v = rng.integers(0, 65536, (5, 7), dtype=np.uint16)
    img = Image.fromarray(v.astype(np.int32), "I")
    out = image.load_tensor_gray(img)
    np.testing.assert_allclose(out[:, :, 0], v.T / 65535.0, atol=1e-6)


@pytest.mark.parametrize(
    ("src", "err", "match"),
    [
        (np.zeros((4, 4, 5), np.uint8) + 1, ValueError, r"\(X, Y, 3\)"),
        (np.ones((4, 4, 3), np.int16), TypeError, "uint8 or float"),
        (np.full((4, 4, 3), 1.5), ValueError, r"\[0, 1\]"),
        (np.full((4, 4, 3), np.nan), ValueError, "NaN"),
        (12, TypeError, "path, a PIL.Image or a numpy array"),
    ],
)
def test_bad_sources(src: object, err: type, match: str) -> None:
    with pytest.raises(err, match=match):
        image.load_tensor_rgb(src)  # type: ignore[arg-type]


def test_bad_options_and_files(tmp_path: Path, rng: np.random.Generator) -> None:
    img = _random_rgb(rng, 4, 4)
    with pytest.raises(ValueError, match="background"):
        image.load_tensor_rgb(img, background=(0, 0))
    with pytest.raises(ValueError, match="background"):
        image.load_tensor_rgb(img, background=(0, 0, 300))
    with pytest.raises(ValueError, match="size"):
        image.load_tensor_rgb(img, size=(0, 4))
    with pytest.raises(TypeError, match="dtype"):
        image.load_tensor_rgb(img, dtype=np.int32)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        image.load_tensor_rgb(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="junk.png"):
        image.load_tensor_gray(junk)


# ---------------------------------------------------------------- tensor slices to images


def test_images_from_tensor3d_clamps(rng: np.random.Generator) -> None:
    t = rng.uniform(-1.0, 2.0, (6, 4, 3))
    t[0, 0, 0], t[1, 0, 0], t[2, 0, 0] = 5.0, -3.0, 0.5
    imgs = image.images_from_tensor3d(t)
    assert len(imgs) == 3
    for z, im in enumerate(imgs):
        assert im.mode == "L" and im.size == (6, 4)
        a = np.asarray(im).T  # back to (X, Y)
        np.testing.assert_array_equal(a, np.rint(np.clip(t[:, :, z], 0, 1) * 255).astype(np.uint8))
    a0 = np.asarray(imgs[0]).T
    assert a0[0, 0] == 255 and a0[1, 0] == 0 and a0[2, 0] == 128
    assert np.all(a0[t[:, :, 0] > 1] == 255) and np.all(a0[t[:, :, 0] < 0] == 0)


def test_images_from_tensor3d_boost(rng: np.random.Generator) -> None:
    t = rng.uniform(0.0, 0.1, (3, 5, 2)).astype(np.float32)
    (im, _) = image.images_from_tensor3d(t, boost=10.0)
    np.testing.assert_array_equal(np.asarray(im).T, np.rint(np.clip(t[:, :, 0].astype(np.float64) * 10, 0, 1) * 255))


def test_images_from_tensor3d_errors() -> None:
    with pytest.raises(ValueError, match=r"\(X, Y, Z\)"):
        image.images_from_tensor3d(np.ones((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        image.images_from_tensor3d(np.full((2, 2, 1), np.nan))
    with pytest.raises(ValueError, match="boost"):
        image.images_from_tensor3d(np.ones((2, 2, 1)), boost=float("inf"))
    with pytest.raises(TypeError):
        image.images_from_tensor3d([[[1.0]]])  # type: ignore[arg-type]


# ---------------------------------------------------------------- writing


def test_write_png_roundtrip_and_format_from_suffix(tmp_path: Path, rng: np.random.Generator) -> None:
    img = _random_rgb(rng, 13, 9)
    out = image.write_image(img, tmp_path / "a.png")
    assert out == tmp_path / "a.png"
    with Image.open(out) as back:
        assert back.format == "PNG"
        np.testing.assert_array_equal(np.asarray(back), np.asarray(img))
    image.write_image(img, tmp_path / "b.JPG")
    image.write_image(img.convert("RGBA"), tmp_path / "c.bin", format="jpeg")
    for name in ("b.JPG", "c.bin"):
        with Image.open(tmp_path / name) as back:
            assert back.format == "JPEG" and back.size == (13, 9)
    assert _files(tmp_path) == ["a.png", "b.JPG", "c.bin"]  # no temporary files left


def test_write_errors_leave_nothing(tmp_path: Path, rng: np.random.Generator) -> None:
    img = _random_rgb(rng, 4, 4)
    with pytest.raises(ValueError, match="suffix '.gif'"):
        image.write_image(img, tmp_path / "a.gif")
    with pytest.raises(ValueError, match="format 'bmp'"):
        image.write_image(img, tmp_path / "a.png", format="bmp")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image.write_image(img, tmp_path / "no" / "a.png")
    with pytest.raises(TypeError, match="PIL.Image"):
        image.write_image(np.zeros((4, 4, 3)), tmp_path / "a.png")  # type: ignore[arg-type]
    assert _files(tmp_path) == []


def test_write_is_atomic_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"old contents")

    class Boom(RuntimeError):
        pass

    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        real_fsync(fd)
        raise Boom("disk gone")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(Boom):
        image.write_image(_random_rgb(rng, 4, 4), target)
    assert target.read_bytes() == b"old contents"
    assert _files(tmp_path) == ["a.png"]


# ---------------------------------------------------------------- contact sheets


def test_contact_sheet_layout(rng: np.random.Generator) -> None:
    imgs = [_random_rgb(rng, 10, 8) for _ in range(5)]
    sheet = image.contact_sheet(imgs, columns=3, pad=4)
    assert sheet.mode == "RGB" and sheet.size == (3 * 10 + 4 * 4, 2 * 8 + 3 * 4)
    np.testing.assert_array_equal(np.asarray(sheet.crop((4, 4, 14, 12))), np.asarray(imgs[0]))
    np.testing.assert_array_equal(np.asarray(sheet.crop((18, 16, 28, 24))), np.asarray(imgs[4]))
    assert image.contact_sheet(imgs).size == (3 * 10 + 4 * 4, 2 * 8 + 3 * 4)  # ceil(sqrt(5)) = 3


def test_contact_sheet_labels_scaling_and_arrays(rng: np.random.Generator) -> None:
    focus = image.images_from_tensor3d(rng.random((4, 4, 3)))  # tiny activation maps
    arr = rng.random((6, 3, 3)).astype(np.float32)  # a Tensor3D RGB array, X=6 wide
    sheet = image.contact_sheet([*focus, arr], columns=2, labels=["a", "b", "c", "d"], scale_to=32)
    plain = image.contact_sheet([*focus, arr], columns=2, scale_to=32)
    assert sheet.height > plain.height and sheet.width >= plain.width
    assert plain.size == (2 * 32 + 3 * 4, 2 * 32 + 3 * 4)
    # nearest-neighbour upscaling: each focus unit becomes an 8x8 block
    block = np.asarray(plain.crop((4, 4, 12, 12)))
    assert np.all(block == block[0, 0])
    with pytest.raises(ValueError, match="labels"):
        image.contact_sheet(focus, labels=["only one"])
    with pytest.raises(ValueError, match="at least one"):
        image.contact_sheet([])
    with pytest.raises(ValueError, match="columns"):
        image.contact_sheet(focus, columns=0)
    with pytest.raises(TypeError, match=r"images\[1\]"):
        image.contact_sheet([focus[0], "x"])  # type: ignore[list-item]
