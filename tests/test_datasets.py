"""Tests for neuroflow.datasets: CIFAR-10 (real and hostile archives), image folders, MNIST idx."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import sys
import tarfile
import tracemalloc
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hostile import run_limited
from neuroflow import datasets

DATA = Path(os.environ.get("NEUROFLOW_DATA") or Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets")
CIFAR = DATA / "cifar-10-binary.tar.gz"
AVATARS = DATA / "avatars"
REC = 3073
FOLDER = "cifar-10-batches-bin"
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

needs_cifar = pytest.mark.skipif(not CIFAR.is_file(), reason=f"{CIFAR} is absent (set NEUROFLOW_DATA to the shared datasets folder)")
needs_avatars = pytest.mark.skipif(not (AVATARS / "glasses").is_dir(), reason=f"{AVATARS}/glasses is absent")


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _direct_decode(record: bytes) -> tuple[int, np.ndarray]:
    """The obvious per-pixel decode of one record, as [x, y, c]: plane[c][y*32 + x]."""
    img = np.empty((32, 32, 3), np.uint8)
    for c in range(3):
        plane = record[1 + c * 1024 : 1 + (c + 1) * 1024]
        for y in range(32):
            for x in range(32):
                img[x, y, c] = plane[y * 32 + x]
    return record[0], img


def _records(rng: np.random.Generator, n: int) -> bytes:
    rec = rng.integers(0, 256, (n, REC), dtype=np.uint8)
    rec[:, 0] = rng.integers(0, 10, n)
    return rec.tobytes()


def _fake_files(rng: np.random.Generator, n: int = 7) -> dict[str, bytes]:
    files = {f"data_batch_{i}.bin": _records(rng, n) for i in range(1, 6)}
    files["test_batch.bin"] = _records(rng, n)
    files["batches.meta.txt"] = ("\n".join(NAMES) + "\n\n").encode()
    return files


def _make_tar(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def _fake_archive(tmp: Path, rng: np.random.Generator, n: int = 7) -> tuple[Path, dict[str, bytes]]:
    files = _fake_files(rng, n)
    return _make_tar(tmp / "cifar-10-binary.tar.gz", {f"{FOLDER}/{k}": v for k, v in files.items()}), files


# ---------------------------------------------------------------- CIFAR-10, the real archive


@pytest.fixture(scope="module")
def cifar_test() -> tuple[np.ndarray, np.ndarray, list[str]]:
    if not CIFAR.is_file():
        pytest.skip(f"{CIFAR} is absent (set NEUROFLOW_DATA to the shared datasets folder)")
    return datasets.cifar10(DATA, "test")


@needs_cifar
def test_cifar_test_split(cifar_test: tuple[np.ndarray, np.ndarray, list[str]]) -> None:
    images, labels, names = cifar_test
    assert images.shape == (10_000, 32, 32, 3) and images.dtype == np.uint8 and images.flags["C_CONTIGUOUS"]
    assert labels.shape == (10_000,) and labels.dtype == np.int64
    assert np.array_equal(np.bincount(labels, minlength=10), np.full(10, 1000))
    assert names == NAMES
    assert images.std() > 30  # real pictures, not blank records


@needs_cifar
def test_cifar_layout_matches_direct_record_decode(cifar_test: tuple[np.ndarray, np.ndarray, list[str]], rng: np.random.Generator) -> None:
    images, labels, _ = cifar_test
    with tarfile.open(CIFAR, "r:gz") as tar:
        raw = tar.extractfile(f"{FOLDER}/test_batch.bin").read()  # type: ignore[union-attr]
    for i in rng.choice(10_000, 3, replace=False):
        label, img = _direct_decode(raw[i * REC : (i + 1) * REC])
        assert labels[i] == label
        np.testing.assert_array_equal(images[i], img)


@needs_cifar
def test_cifar_train_split_and_root_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels, names = datasets.cifar10(CIFAR, "train")  # the archive path itself
    assert images.shape == (50_000, 32, 32, 3)
    assert np.array_equal(np.bincount(labels, minlength=10), np.full(10, 5000))
    monkeypatch.setenv("NEUROFLOW_DATA", str(DATA))  # root=None: from the environment
    _, test_labels, _ = datasets.cifar10(split="test")
    assert test_labels.shape == (10_000,)


# ---------------------------------------------------------------- CIFAR-10, small fake archives


def test_fake_archive_layout_and_order(tmp_path: Path, rng: np.random.Generator) -> None:
    archive, files = _fake_archive(tmp_path, rng)
    images, labels, names = datasets.cifar10(tmp_path, "train")
    assert images.shape == (35, 32, 32, 3) and names == NAMES
    raw = b"".join(files[f"data_batch_{i}.bin"] for i in range(1, 6))
    for i in (0, 6, 7, 34):  # first and last of batch 1, first of batch 2, last of batch 5
        label, img = _direct_decode(raw[i * REC : (i + 1) * REC])
        assert labels[i] == label
        np.testing.assert_array_equal(images[i], img)
    t_images, t_labels, _ = datasets.cifar10(archive, "test")
    label, img = _direct_decode(files["test_batch.bin"][:REC])
    assert t_images.shape == (7, 32, 32, 3) and t_labels[0] == label
    np.testing.assert_array_equal(t_images[0], img)


def test_extracted_folder_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    files = _fake_files(rng, 3)
    folder = tmp_path / FOLDER
    folder.mkdir()
    for k, v in files.items():
        (folder / k).write_bytes(v)
    a = datasets.cifar10(tmp_path, "test")
    b = datasets.cifar10(folder, "test")
    monkeypatch.setenv("NEUROFLOW_DATA", str(tmp_path))
    c = datasets.cifar10(None, "test")
    for other in (b, c):
        np.testing.assert_array_equal(a[0], other[0])
        np.testing.assert_array_equal(a[1], other[1])
    assert a[0].shape == (3, 32, 32, 3)
    (folder / "batches.meta.txt").unlink()  # the built-in names stand in for a missing meta file
    assert datasets.cifar10(folder, "test")[2] == NAMES
    (folder / "data_batch_3.bin").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3.bin"):
        datasets.cifar10(folder, "train")


@pytest.mark.parametrize("evil", ["../evil", "/abs/path", f"{FOLDER}/../../evil", f"{FOLDER}/../test_batch.bin"])
def test_hostile_member_names_are_refused(tmp_path: Path, evil: str, rng: np.random.Generator) -> None:
    box = tmp_path / "box"
    box.mkdir()
    members = {f"{FOLDER}/test_batch.bin": _records(rng, 2), evil: b"payload"}
    _make_tar(box / "cifar-10-binary.tar.gz", members)
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match=r"refusing archive member .*(absolute|'\.\.')"):
        datasets.cifar10(box, "test")
    assert _tree(tmp_path) == before
    assert not (tmp_path / "evil").exists() and not Path("/abs/path").exists()


def test_symlink_member_is_refused(tmp_path: Path) -> None:
    _make_tar(tmp_path / "cifar-10-binary.tar.gz", {}, symlinks={f"{FOLDER}/test_batch.bin": "/etc/passwd"})
    with pytest.raises(ValueError, match="not a regular file"):
        datasets.cifar10(tmp_path, "test")


def test_truncated_records_and_bad_labels(tmp_path: Path, rng: np.random.Generator) -> None:
    truncated = _records(rng, 3)[:-100]
    _make_tar(tmp_path / "cifar-10-binary.tar.gz", {f"{FOLDER}/test_batch.bin": truncated})
    with pytest.raises(ValueError, match=r"test_batch\.bin.*not a positive multiple of the 3073"):
        datasets.cifar10(tmp_path, "test")
    bad = bytearray(_records(rng, 3))
    bad[REC] = 10  # the second record's label
    _make_tar(tmp_path / "cifar-10-binary.tar.gz", {f"{FOLDER}/test_batch.bin": bytes(bad)})
    with pytest.raises(ValueError, match="record 1 has label 10, expected 0..9"):
        datasets.cifar10(tmp_path, "test")
    assert _tree(tmp_path) == ["cifar-10-binary.tar.gz"]


def test_broken_archives(tmp_path: Path, rng: np.random.Generator) -> None:
    archive, _ = _fake_archive(tmp_path, rng)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])  # cut in the middle of the gzip stream
    with pytest.raises(ValueError, match="cannot read .* as a .tar.gz"):
        datasets.cifar10(archive, "train")
    archive.write_bytes(data[:-10])  # every member intact, the gzip trailer (CRC, length) cut
    with pytest.raises(ValueError, match="cannot read .* as a .tar.gz"):
        datasets.cifar10(archive, "test")
    archive.write_bytes(b"this is not gzip data" * 10)
    with pytest.raises(ValueError, match="cannot read"):
        datasets.cifar10(archive, "test")
    _make_tar(archive, {f"{FOLDER}/test_batch.bin": _records(rng, 2)})
    with pytest.raises(FileNotFoundError, match="data_batch_1.bin"):
        datasets.cifar10(archive, "train")
    with pytest.raises(ValueError, match="split"):
        datasets.cifar10(archive, "valid")


def _tar_bytes(entries: list[tuple[str, bytes]]) -> bytes:
    """An uncompressed tar of (name, data) entries, in order, names repeated as given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("second", [f"{FOLDER}/test_batch.bin", f"{FOLDER}/./test_batch.bin", f"{FOLDER}//test_batch.bin"])
def test_a_duplicated_member_is_refused(tmp_path: Path, second: str, rng: np.random.Generator) -> None:
    first, other = _records(rng, 2), _records(rng, 3)
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(gzip.compress(_tar_bytes([(f"{FOLDER}/test_batch.bin", first), (second, other)])))
    with pytest.raises(ValueError, match=r"member .*test_batch\.bin.* appears twice"):
        datasets.cifar10(archive, "test")  # (the last copy used to win: 3 images)


def test_a_duplicated_member_of_the_other_split_is_refused_too(tmp_path: Path, rng: np.random.Generator) -> None:
    files = _fake_files(rng, 2)
    entries = [(f"{FOLDER}/{k}", v) for k, v in files.items()] + [(f"{FOLDER}/data_batch_2.bin", _records(rng, 2))]
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(gzip.compress(_tar_bytes(entries)))
    with pytest.raises(ValueError, match=r"data_batch_2\.bin' appears twice"):
        datasets.cifar10(archive, "test")
    archive.write_bytes(gzip.compress(_tar_bytes(entries[:-1])))  # without the copy: fine
    assert datasets.cifar10(archive, "test")[0].shape == (2, 32, 32, 3)


def test_a_negative_member_size_is_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    raw = bytearray(_tar_bytes([(f"{FOLDER}/test_batch.bin", _records(rng, 1))]))
    raw[124:136] = b"\xff" + ((-1024) % 256**11).to_bytes(11, "big")  # size field, base-256, -1024
    raw[148:156] = b"        "
    raw[148:156] = b"%06o\0 " % sum(raw[:512])  # the header checksum
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ValueError, match="negative size"):
        datasets.cifar10(archive, "test")


def test_a_gzip_bomb_is_refused_not_inflated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    # The real bound is 1.2 GB; the mechanism is the same with a small one.
    monkeypatch.setattr(datasets, "_MAX_ARCHIVE_STREAM", 1 << 20)
    pattern = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    files = _fake_files(rng, 2)
    entries = [(f"{FOLDER}/{k}", v) for k, v in files.items()]
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(gzip.compress(_tar_bytes(entries)))
    assert datasets.cifar10(archive, "test")[0].shape == (2, 32, 32, 3)
    # a huge member that is never read: refused before the reader skips (inflates) it
    archive.write_bytes(gzip.compress(_tar_bytes([("padding.bin", pattern * 512), *entries])))
    with pytest.raises(ValueError, match="more than 1048576 bytes uncompressed"):
        datasets.cifar10(archive, "test")
    # the same bulk after the end of the archive
    archive.write_bytes(gzip.compress(_tar_bytes(entries) + pattern * 512))
    with pytest.raises(ValueError, match="more than 1048576 bytes uncompressed"):
        datasets.cifar10(archive, "test")


def test_a_member_is_read_as_far_as_it_goes(tmp_path: Path, rng: np.random.Generator) -> None:
    # A member whose header claims more than the archive holds: an error, and memory
    # follows the bytes that are there (read in chunks), not the claim.
    raw = _tar_bytes([(f"{FOLDER}/test_batch.bin", _records(rng, 4000))])  # 12 MB claimed, 0.3 MB there
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(gzip.compress(raw[: 512 + 100 * REC]))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="cannot read .* as a .tar.gz archive|truncated"):
            datasets.cifar10(archive, "test")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak


def test_download_is_verified_and_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    src, files = _fake_archive(tmp_path, rng, 2)
    payload = src.read_bytes()
    calls = []

    def fake_open(url: str, timeout: float = 60.0) -> io.BytesIO:
        calls.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(datasets, "_open_url", fake_open)
    root = tmp_path / "new" / "data"
    monkeypatch.setattr(datasets, "CIFAR10_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        datasets.cifar10(root, "test")
    assert _tree(root) == []  # nothing kept from a bad download
    monkeypatch.setattr(datasets, "CIFAR10_SHA256", hashlib.sha256(payload).hexdigest())
    images, labels, _ = datasets.cifar10(root, "test")
    assert calls == [datasets.CIFAR10_URL] * 2
    assert (root / "cifar-10-binary.tar.gz").read_bytes() == payload
    assert _tree(root) == ["cifar-10-binary.tar.gz"]
    assert labels[1] == files["test_batch.bin"][REC] and images.shape == (2, 32, 32, 3)
    datasets.cifar10(root, "test")  # now found locally: no new download
    assert len(calls) == 2


def test_offline_error_says_where_to_put_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, timeout: float = 60.0) -> io.BytesIO:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(datasets, "_open_url", offline)
    root = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=r"nowhere.*cifar-10-binary\.tar\.gz.*no network.*put cifar-10-binary\.tar\.gz"):
        datasets.cifar10(root, "train")
    assert not root.exists()
    with pytest.raises(FileNotFoundError, match="looked in"):
        datasets.cifar10(tmp_path, "train", download=False)
    assert _tree(tmp_path) == []


# ---------------------------------------------------------------- image folders


@needs_avatars
def test_shared_avatar_folders() -> None:
    images, labels, names = datasets.image_folder(AVATARS)
    assert images.shape == (20, 400, 400, 3) and images.dtype == np.float32
    assert names == ["glasses", "noglasses"]
    np.testing.assert_array_equal(labels, [0] * 10 + [1] * 10)
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.std() > 0.05
    small, _, _ = datasets.image_folder(AVATARS, size=(32, 24), gray=True)
    assert small.shape == (20, 32, 24, 1)


def _save(path: Path, rng: np.random.Generator, w: int = 6, h: int = 5, mode: str = "RGB") -> np.ndarray:
    a = rng.integers(0, 256, (h, w, len(mode)), dtype=np.uint8)
    Image.fromarray(a, mode).save(path)
    return a


def test_image_folder_order_labels_and_alpha(tmp_path: Path, rng: np.random.Generator) -> None:
    (tmp_path / "b_cls").mkdir()
    (tmp_path / "a_cls").mkdir()
    (tmp_path / ".hidden").mkdir()
    a2 = _save(tmp_path / "a_cls" / "2.png", rng)
    a1 = _save(tmp_path / "a_cls" / "1.PNG", rng)
    b1 = _save(tmp_path / "b_cls" / "x.png", rng, mode="RGBA")
    (tmp_path / "b_cls" / "notes.txt").write_text("ignored")
    images, labels, names = datasets.image_folder(tmp_path, background=(0, 0, 0))
    assert names == ["a_cls", "b_cls"] and labels.tolist() == [0, 0, 1]
    np.testing.assert_allclose(images[0], a1.transpose(1, 0, 2) / 255, atol=1e-6)
    np.testing.assert_allclose(images[1], a2.transpose(1, 0, 2) / 255, atol=1e-6)
    rgba = b1.transpose(1, 0, 2) / 255
    np.testing.assert_allclose(images[2], rgba[:, :, :3] * rgba[:, :, 3:], atol=1e-6)


def test_image_folder_errors(tmp_path: Path, rng: np.random.Generator) -> None:
    with pytest.raises(FileNotFoundError):
        datasets.image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no class sub-folders"):
        datasets.image_folder(tmp_path)
    (tmp_path / "c").mkdir()
    with pytest.raises(ValueError, match="holds no PNG/JPEG"):
        datasets.image_folder(tmp_path)
    _save(tmp_path / "c" / "a.png", rng, 6, 5)
    _save(tmp_path / "c" / "b.png", rng, 7, 5)
    with pytest.raises(ValueError, match=r"b\.png is 7x5 but .*a\.png is 6x5.*size="):
        datasets.image_folder(tmp_path)
    assert datasets.image_folder(tmp_path, size=(4, 4))[0].shape == (2, 4, 4, 3)
    (tmp_path / "c" / "c.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    with pytest.raises(ValueError, match=r"c\.jpg"):
        datasets.image_folder(tmp_path, size=(4, 4))


# ---------------------------------------------------------------- MNIST idx files


def _idx(data: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, data.ndim]) + np.array(data.shape, dtype=">u4").tobytes()
    return header + data.astype(np.uint8).tobytes()


def _write(path: Path, raw: bytes) -> None:
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_layout(tmp_path: Path, gz: bool, split: str, rng: np.random.Generator) -> None:
    n, stem, sfx = 9, ("train" if split == "train" else "t10k"), (".gz" if gz else "")
    raw_images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)  # [n, row, col]
    raw_labels = rng.integers(0, 10, n, dtype=np.uint8)
    _write(tmp_path / f"{stem}-images-idx3-ubyte{sfx}", _idx(raw_images))
    _write(tmp_path / f"{stem}-labels-idx1-ubyte{sfx}", _idx(raw_labels))
    images, labels = datasets.mnist(tmp_path, split)
    assert images.shape == (n, 28, 28, 1) and images.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, raw_labels)
    for x, y in [(0, 0), (27, 0), (0, 27), (5, 20)]:
        np.testing.assert_array_equal(images[:, x, y, 0], raw_images[:, y, x])


def test_mnist_corrupted_files(tmp_path: Path, rng: np.random.Generator) -> None:
    imgs = _idx(rng.integers(0, 256, (4, 28, 28), dtype=np.uint8))
    labs = _idx(rng.integers(0, 10, 4, dtype=np.uint8))
    ip, lp = tmp_path / "train-images-idx3-ubyte", tmp_path / "train-labels-idx1-ubyte"
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        datasets.mnist(tmp_path)
    lp.write_bytes(labs)
    ip.write_bytes(b"\x00\x00\x08\x01" + imgs[4:])  # magic of a 1-D file
    with pytest.raises(ValueError, match="bad idx magic.*00000803"):
        datasets.mnist(tmp_path)
    ip.write_bytes(imgs[:-10])
    with pytest.raises(ValueError, match="truncated"):
        datasets.mnist(tmp_path)
    ip.write_bytes(imgs + b"\x01")
    with pytest.raises(ValueError, match="longer than its header"):
        datasets.mnist(tmp_path)
    ip.write_bytes(imgs)
    lp.write_bytes(_idx(rng.integers(0, 10, 5, dtype=np.uint8)))
    with pytest.raises(ValueError, match="4 images but .* 5 labels"):
        datasets.mnist(tmp_path)
    lp.unlink()
    gz = tmp_path / "train-labels-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(labs)[:-12])  # gzip stream cut short
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        datasets.mnist(tmp_path)
    with pytest.raises(ValueError, match="split"):
        datasets.mnist(tmp_path, "validation")


def test_an_idx_header_that_lies_about_its_size_allocates_nothing(tmp_path: Path, rng: np.random.Generator) -> None:
    labs = _idx(rng.integers(0, 10, 4, dtype=np.uint8))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(labs)
    n = 2**31 // 784  # (n, 28, 28): 2^31 - 1,296 bytes, under the plausibility bound
    lie = bytes([0, 0, 8, 3]) + struct.pack(">III", n, 28, 28)  # 16 bytes: the header alone
    for name, raw in [("train-images-idx3-ubyte", lie), ("train-images-idx3-ubyte.gz", gzip.compress(lie))]:
        for old in tmp_path.glob("train-images-*"):
            old.unlink()
        (tmp_path / name).write_bytes(raw)
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match=rf"{name}: truncated: header dimensions \({n}, 28, 28\) need {16 + n * 784}"):
                datasets.mnist(tmp_path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 << 20, f"{name}: {peak} bytes allocated for a 16-byte file"  # was 2 GiB


def test_an_idx_header_that_lies_fails_cleanly_under_a_memory_limit(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("RLIMIT_AS and /proc are Linux's")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 3]))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">III", 2**31 // 784, 28, 28))
    r = run_limited(f"""
        import neuroflow.io.datasets as datasets
        try:
            datasets.mnist({str(tmp_path)!r})
        except ValueError as e:
            print("refused:", e)
    """, limit_mb=512)
    assert r.returncode == 0 and "refused:" in r.stdout and "truncated" in r.stdout, r.stderr[-2000:]


def test_idx_dimensions_whose_product_overflows_64_bits(tmp_path: Path) -> None:
    # 2^31 * 2^31 * 4 = 2^64: zero in int64 arithmetic, which the old size check let through
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 3]))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">III", 2**31, 2**31, 4))
    with pytest.raises(ValueError, match=r"implausibly large \(18446744073709551616 bytes"):
        datasets.mnist(tmp_path)
