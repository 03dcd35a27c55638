"""Tests for neuroflow.image: loading into Tensor3D layout, slices to images, writing, sheets."""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from hostile import png_chunk, png_header, run_limited, striped_png
from neuroflow import datasets, image

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


# ---------------------------------------------------------------- decoding within a budget


def _exact(src: Path | Image.Image, size: tuple[int, int] | None, bg=(255, 255, 255)) -> np.ndarray:
    """The reference: decode at full size, turn upright, float64, composite, Lanczos in float."""
    img = src if isinstance(src, Image.Image) else ImageOps.exif_transpose(Image.open(src))
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    a = np.asarray(img.convert("RGBA" if has_alpha else "RGB"), dtype=np.float64) / 255.0
    if has_alpha:
        a = a[:, :, :3] * a[:, :, 3:] + np.asarray(bg) / 255.0 * (1 - a[:, :, 3:])
    if size is not None:
        planes = [np.asarray(Image.fromarray(np.ascontiguousarray(a[:, :, c], dtype=np.float32), "F")
                             .resize(size, Image.LANCZOS)) for c in range(3)]
        a = np.clip(np.stack(planes, axis=2), 0, 1)
    return a.transpose(1, 0, 2)


def _photo(rng: np.random.Generator, w: int, h: int, alpha: bool = False) -> Image.Image:
    """A smooth picture with some grain (and a wavy alpha), as a stand-in for a photograph."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w * 255, yy / h * 255, (np.sin(xx / 37.0 + yy / 53.0) + 1) * 127], -1)
    rgb = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    if not alpha:
        return Image.fromarray(rgb, "RGB")
    a = np.clip((np.sin(xx / 90.0) + 1) * 127 + rng.normal(0, 8, (h, w)), 0, 255).astype(np.uint8)
    return Image.fromarray(np.dstack([rgb, a]), "RGBA")


def test_a_huge_png_is_shrunk_in_integers_under_a_memory_limit(tmp_path: Path, rng: np.random.Generator) -> None:
    # A 6000 x 6000 PNG of ~100 KB: decoded to float64 at full size it took 1.2 GB; now the
    # 8-bit decode (144 MB) is the peak. The old path dies with MemoryError under this limit.
    if not sys.platform.startswith("linux"):
        pytest.skip("RLIMIT_AS and /proc are Linux's")
    colours = rng.integers(0, 256, (8, 3))
    (tmp_path / "c").mkdir()
    striped_png(tmp_path / "c" / "huge.png", 6000, 6000, colours)
    assert (tmp_path / "c" / "huge.png").stat().st_size < 300_000
    r = run_limited(f"""
        import resource
        import numpy as np
        import neuroflow.io.datasets as datasets
        images, labels, names = datasets.image_folder({str(tmp_path)!r}, size=(8, 8))
        np.save({str(tmp_path / "out.npy")!r}, images)
        print("peak MiB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """, limit_mb=400)
    assert r.returncode == 0, r.stderr[-3000:]
    got = np.load(tmp_path / "out.npy")
    # the same picture at a tenth of the size, through the exact float path
    striped_png(tmp_path / "small.png", 600, 600, colours)
    expect = _exact(tmp_path / "small.png", (8, 8))
    assert got.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(got[0], expect, atol=3 / 255)


def test_shrinking_first_changes_little(tmp_path: Path, rng: np.random.Generator) -> None:
    photo, clear = _photo(rng, 1500, 1100), _photo(rng, 1400, 1000, alpha=True)
    photo.save(tmp_path / "p.png")
    photo.save(tmp_path / "p.jpg", quality=95)
    clear.save(tmp_path / "c.png")
    for name, size, bg in [("p.png", (40, 30), (255, 255, 255)), ("p.png", (7, 13), (0, 0, 0)),
                           ("p.jpg", (64, 48), (0, 0, 0)), ("c.png", (50, 20), (255, 0, 128)),
                           ("c.png", (9, 9), (0, 0, 0))]:
        ours = image.load_tensor_rgb(tmp_path / name, size=size, background=bg, dtype=np.float64)
        ref = _exact(tmp_path / name, size, bg)
        assert ours.shape == (*size, 3)
        diff = np.abs(ours - ref)
        assert diff.max() < 6 / 255 and diff.mean() < 1 / 255, (name, size, diff.max() * 255, diff.mean() * 255)
    # the same for images passed in memory, in every mode the reduction handles
    src = _photo(rng, 600, 400, alpha=True)
    for mode in ["RGB", "RGBA", "L", "LA", "P", "PA", "1", "CMYK", "I;16", "I", "F", "La", "RGBa"]:
        if mode in ("I;16", "I"):  # 16-bit grey
            img = Image.fromarray(np.asarray(src.convert("L"), dtype=np.uint16) * 257)
            img = img if mode == "I;16" else img.convert("I")
        else:
            img = src.convert("L").convert("F") if mode == "F" else src.convert(mode)
        assert img.mode == mode
        full = image.load_tensor_rgb(img, dtype=np.float64)  # no size: no reduction
        small = image.load_tensor_rgb(img, size=(20, 10), dtype=np.float64)
        planes = [np.asarray(Image.fromarray(np.ascontiguousarray(full[:, :, c].T, dtype=np.float32), "F")
                             .resize((20, 10), Image.LANCZOS)) for c in range(3)]
        ref = np.clip(np.stack(planes, axis=2).transpose(1, 0, 2), 0, 1)
        tol = 0.12 if mode == "1" else 6 / 255  # a 1-bit image is all edges
        assert np.abs(small - ref).max() < tol, (mode, np.abs(small - ref).max() * 255)


def test_the_reduction_in_strips_is_the_reduction(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    img = _photo(rng, 700, 523, alpha=True)
    whole = image.load_tensor_rgb(img, size=(11, 9))
    monkeypatch.setattr(image, "_STRIP_PIXELS", 3000)  # strips of a few rows of blocks
    np.testing.assert_array_equal(image.load_tensor_rgb(img, size=(11, 9)), whole)


def test_a_jpeg_is_decoded_at_a_reduced_scale(tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import JpegImagePlugin

    _photo(rng, 2400, 1600).save(tmp_path / "big.jpg", quality=92)
    drafts = []
    real = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        out = real(self, mode, size)
        drafts.append((size, self.size))
        return out

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    ours = image.load_tensor_rgb(tmp_path / "big.jpg", size=(48, 32), dtype=np.float64)
    assert drafts and drafts[0][1][0] <= 2400 // 4, drafts  # decoded at 1/4 scale or less
    ref = _exact(tmp_path / "big.jpg", (48, 32))
    assert np.abs(ours - ref).max() < 6 / 255


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_exif_orientation_with_and_without_shrinking(tmp_path: Path, rng: np.random.Generator, orientation: int, fmt: str) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o.{fmt}"
    _photo(rng, 900, 600).save(path, exif=exif, **({"quality": 95} if fmt == "jpg" else {}))
    with Image.open(path) as check:
        assert check.getexif().get(0x0112) == orientation
    upright = _exact(path, None)
    ours = image.load_tensor_rgb(path, dtype=np.float64)
    assert ours.shape == upright.shape == ((600, 900, 3) if orientation >= 5 else (900, 600, 3))
    np.testing.assert_array_equal(ours, upright)
    size = (25, 40) if orientation >= 5 else (40, 25)
    small = image.load_tensor_rgb(path, size=size, dtype=np.float64)
    assert small.shape == (*size, 3)
    assert np.abs(small - _exact(path, size)).max() < 6 / 255


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Headers alone (and a few bytes of pixel data): decoding would fail with "truncated",
    # so the error below shows that nothing was decoded.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(9000, 9000) + png_chunk(b"IDAT", zlib.compress(b"\0" * 100)) + png_chunk(b"IEND", b""))
    with pytest.raises(image.ImageTooLargeError) as e:
        image.load_tensor_rgb(bomb, size=(8, 8))
    msg = str(e.value)
    for part in [str(bomb), "9000x9000", "81,000,000 pixels", "limit of 67,108,864", "max_pixels=",
                 "NEUROFLOW_MAX_IMAGE_PIXELS"]:
        assert part in msg, (part, msg)
    assert isinstance(e.value, ValueError)
    huge = tmp_path / "huge.png"  # past Pillow's own limit too
    huge.write_bytes(png_header(100_000, 100_000) + png_chunk(b"IEND", b""))
    with pytest.raises(image.ImageTooLargeError, match=r"huge\.png refused by Pillow .*10000000000 pixels.*MAX_IMAGE_PIXELS"):
        image.load_tensor_gray(huge, max_pixels=10**11)
    # the limit can be raised (then the decoder speaks), per call or by the environment
    with pytest.raises(ValueError, match="cannot read image .*bomb.png") as e2:
        image.load_tensor_rgb(bomb, size=(8, 8), max_pixels=81_000_000)
    assert not isinstance(e2.value, image.ImageTooLargeError)
    monkeypatch.setenv("NEUROFLOW_MAX_IMAGE_PIXELS", "81_000_000")
    with pytest.raises(ValueError, match="cannot read image"):
        image.load_tensor_rgb(bomb, size=(8, 8))


def test_the_pixel_limit_and_its_settings(tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "c").mkdir()
    path = tmp_path / "c" / "a.png"
    _photo(rng, 64, 50).save(path)
    assert image.load_tensor_rgb(path, max_pixels=3200).shape == (64, 50, 3)  # exactly at the limit
    with pytest.raises(image.ImageTooLargeError, match=r"64x50 = 3,200 pixels, more than the limit of 3,199"):
        image.load_tensor_rgb(path, max_pixels=3199)
    with pytest.raises(image.ImageTooLargeError, match=r"a\.png is 64x50"):
        datasets.image_folder(tmp_path, size=(8, 8), max_pixels=1000)
    monkeypatch.setenv("NEUROFLOW_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(image.ImageTooLargeError, match="limit of 1,000"):
        image.load_tensor_gray(path)
    assert image.load_tensor_gray(path, max_pixels=5000).shape == (64, 50, 1)  # the argument wins
    monkeypatch.setenv("NEUROFLOW_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match=r"\$NEUROFLOW_MAX_IMAGE_PIXELS must be a positive whole number"):
        image.load_tensor_rgb(path)
    monkeypatch.delenv("NEUROFLOW_MAX_IMAGE_PIXELS")
    for bad in (0, -5, 2.5, True, "many"):
        with pytest.raises(ValueError, match="max_pixels"):
            image.load_tensor_rgb(path, max_pixels=bad)  # type: ignore[arg-type]


def test_image_folder_reads_png_and_jpeg_only(tmp_path: Path, rng: np.random.Generator) -> None:
    (tmp_path / "c").mkdir()
    _photo(rng, 12, 10).save(tmp_path / "c" / "a.png")
    _photo(rng, 12, 10).save(tmp_path / "c" / "b.png", format="BMP")  # a BMP in disguise
    with pytest.raises(ValueError, match=r"cannot read image .*b\.png"):
        datasets.image_folder(tmp_path)
    (tmp_path / "c" / "b.png").unlink()
    assert datasets.image_folder(tmp_path)[0].shape == (1, 12, 10, 3)
