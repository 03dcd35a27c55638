"""Data sets as NumPy arrays in the Tensor3D convention ``[n, x, y, c]`` (see docs/engine.md).

- :func:`cifar10` reads the "CIFAR-10 binary version" straight from its ``.tar.gz`` (nothing
  is extracted to disk) or from the extracted ``cifar-10-batches-bin/`` folder, and can
  download the canonical archive when nothing is found locally.
- :func:`image_folder` reads one class per sub-folder of PNG/JPEG files.
- :func:`mnist` reads MNIST / Fashion-MNIST idx files, plain or gzipped.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

import numpy as np

from .atomic import atomic_write
from .image import _check_background, _check_size, _load, _max_pixels

__all__ = ["cifar10", "image_folder", "mnist", "CIFAR10_CLASSES", "default_data_root"]

# ---------------------------------------------------------------- common


def default_data_root() -> Path:
    """$NEUROFLOW_DATA if set and non-empty, else ``../shared/datasets`` from the current dir."""
    env = os.environ.get("NEUROFLOW_DATA")
    return Path(env) if env else Path.cwd() / ".." / "shared" / "datasets"


def _check_split(split: str) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def _as_path(root: str | os.PathLike, name: str = "root") -> Path:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(root).__name__}")
    return Path(root)


# ---------------------------------------------------------------- CIFAR-10

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-bin"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

_RECORD = 1 + 3 * 32 * 32  # label byte + R, G, B planes
_TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
_TEST_FILES = ["test_batch.bin"]
_META = "batches.meta.txt"
_MAX_RECORD_FILE = 60_000 * _RECORD  # refuse absurd member sizes before reading them
_MAX_META = 64 * 1024
# The whole uncompressed archive: six record files at their limit and some room for the rest
# (the real one is 185 MB); beyond it the archive is refused instead of inflated further.
_MAX_ARCHIVE_STREAM = 6 * _MAX_RECORD_FILE + (64 << 20)
_CHUNK = 1 << 20


def _open_url(url: str, timeout: float = 60.0) -> BinaryIO:
    """Open ``url`` for reading (a seam so tests can simulate being offline)."""
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 -- fixed https URL


def _download(url: str, target: Path, sha256: str) -> Path:
    """Stream ``url`` into ``target`` atomically, verifying its sha256 before it appears.

    Network failures raise OSError (nothing is created, except ``target``'s folder if the
    connection opened); a checksum mismatch raises ValueError and leaves no file behind.
    """
    network_errors = (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError)
    try:
        response = _open_url(url)
    except network_errors as exc:
        raise OSError(f"download of {url} failed: {exc}") from exc
    digest = hashlib.sha256()
    with response:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_write(target) as f:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    f.write(chunk)
                if digest.hexdigest() != sha256:
                    raise ValueError(
                        f"downloaded {url} has sha256 {digest.hexdigest()}, expected {sha256}; "
                        f"the file was discarded (nothing written to {target})"
                    )
        except network_errors as exc:
            raise OSError(f"download of {url} into {target} failed: {exc}") from exc
    return target


def _decode_records(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    if len(data) == 0 or len(data) % _RECORD:
        raise ValueError(
            f"{source}: size {len(data)} bytes is not a positive multiple of the {_RECORD}-byte "
            "CIFAR-10 record (truncated or not a CIFAR-10 batch file)"
        )
    rec = np.frombuffer(data, dtype=np.uint8).reshape(-1, _RECORD)
    labels = rec[:, 0].astype(np.int64)
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise ValueError(f"{source}: record {bad[0]} has label {labels[bad[0]]}, expected 0..9")
    # Each plane is row-major 32x32 with rows = y: [n, c, y, x] -> Tensor3D [n, x, y, c].
    images = np.ascontiguousarray(rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 3, 2, 1))
    return images, labels


def _parse_meta(text: bytes, source: str) -> list[str]:
    names = [line.strip() for line in text.decode("utf-8", "replace").splitlines() if line.strip()]
    if len(names) != 10:
        raise ValueError(f"{source}: expected 10 class names, one a line, found {len(names)}")
    return names


def _safe_member_name(name: str, archive: Path) -> str:
    """The member's name relative to the archive root, refusing absolute and '..' paths."""
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"{archive}: refusing archive member with an absolute path: {name!r}")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        raise ValueError(f"{archive}: refusing archive member with a '..' path component: {name!r}")
    return "/".join(p for p in parts if p != ".")


def _read_exactly(f: IO[bytes], size: int, what: str) -> bytes:
    """Read ``size`` bytes in chunks, so that memory follows the data actually there rather
    than a size some header claims; raises ValueError if the stream ends first."""
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = f.read(min(left, _CHUNK))
        if not chunk:
            raise ValueError(f"{what} is truncated: {size - left} of its {size} bytes present")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_cifar_archive(archive: Path, wanted: Sequence[str]) -> dict[str, bytes]:
    """Read the wanted files of cifar-10-batches-bin/ from the .tar.gz in one sequential pass.

    Every expected member may appear once (a second copy is refused, whether or not this
    split reads it), and none may be larger than a CIFAR-10 file can be; the uncompressed
    stream as a whole is bounded too, so a gzip bomb is refused rather than inflated.
    """
    expected = {f"{CIFAR10_FOLDER}/{n}" for n in (*_TRAIN_FILES, *_TEST_FILES, _META)}
    wanted_set = {f"{CIFAR10_FOLDER}/{n}" for n in wanted}
    seen: dict[str, str] = {}  # normalised name -> the member name it first appeared as
    found: dict[str, bytes] = {}
    too_big = (
        f"{archive}: more than {_MAX_ARCHIVE_STREAM} bytes uncompressed, far more than CIFAR-10 holds "
        "(a corrupted or hostile archive)"
    )
    try:
        # "r:gz" (gzip.GzipFile) rather than the stream mode "r|gz": it reports a gzip
        # stream cut between two members, which the stream mode takes for the end.
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:
                if member.size < 0:
                    raise ValueError(f"{archive}: member {member.name!r} has a negative size ({member.size})")
                if member.offset_data + member.size > _MAX_ARCHIVE_STREAM:
                    raise ValueError(too_big)
                name = _safe_member_name(member.name, archive)
                if name not in expected:
                    continue  # e.g. the folder entry itself or readme.html: ignored, never read
                if name in seen:
                    first = seen[name]
                    also = "" if first == member.name else f" (first as {first!r})"
                    raise ValueError(
                        f"{archive}: member {member.name!r} appears twice{also}; refusing an archive "
                        "whose copies could differ"
                    )
                seen[name] = member.name
                if not member.isfile():
                    raise ValueError(f"{archive}: member {member.name!r} is not a regular file")
                limit = _MAX_META if name.endswith(_META) else _MAX_RECORD_FILE
                if member.size > limit:
                    raise ValueError(f"{archive}: member {member.name!r} is {member.size} bytes, more than {limit}")
                if name not in wanted_set:
                    continue
                f = tar.extractfile(member)
                if f is None:
                    raise ValueError(f"{archive}: member {member.name!r} cannot be read")
                found[name.rsplit("/", 1)[1]] = _read_exactly(f, member.size, f"{archive}: member {member.name!r}")
            # Read to the end of the gzip stream, so that its CRC and length are checked.
            total = tar.offset
            while chunk := tar.fileobj.read(_CHUNK):
                total += len(chunk)
                if total > _MAX_ARCHIVE_STREAM:
                    raise ValueError(too_big)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"cannot read {archive} as a .tar.gz archive: {exc}") from exc
    return found


def _read_cifar_folder(folder: Path, wanted: Sequence[str]) -> dict[str, bytes]:
    found = {}
    for n in wanted:
        p = folder / n
        if p.is_file():
            size = p.stat().st_size
            limit = _MAX_META if n == _META else _MAX_RECORD_FILE
            if size > limit:
                raise ValueError(f"{p}: {size} bytes, more than the {limit} expected at most")
            found[n] = p.read_bytes()
    return found


def _locate_cifar(root: Path) -> tuple[str, Path] | None:
    """('archive' | 'folder', path) for what ``root`` points at, or None if nothing is there."""
    if root.is_file():
        return "archive", root
    if root.is_dir():
        if root.name == CIFAR10_FOLDER or (root / _TEST_FILES[0]).is_file() or (root / _TRAIN_FILES[0]).is_file():
            return "folder", root
        if (root / CIFAR10_FOLDER).is_dir():
            return "folder", root / CIFAR10_FOLDER
        if (root / CIFAR10_ARCHIVE).is_file():
            return "archive", root / CIFAR10_ARCHIVE
    return None


def cifar10(
    root: str | os.PathLike | None = None, split: str = "train", *, download: bool = True
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """CIFAR-10 as ``(images, labels, class_names)``.

    ``images``: ``(N, 32, 32, 3)`` uint8 in Tensor3D order ``[n, x, y, c]`` (x = column,
    y = row, c = R, G, B); ``labels``: ``(N,)`` int64 in 0..9; ``class_names``: 10 names
    (from ``batches.meta.txt`` when present). ``split``: "train" (50,000 images, batches
    1-5 in order) or "test" (10,000).

    ``root`` may be a folder holding ``cifar-10-binary.tar.gz``, that archive itself, a folder
    holding the extracted ``cifar-10-batches-bin/``, or that folder itself; None means
    $NEUROFLOW_DATA, else ``../shared/datasets`` relative to the current directory. The
    archive is read in one streaming pass without extracting anything; only the expected
    member names are read and members with absolute or '..' paths are refused.

    A local file is used as is (no checksum: re-encoded copies differ from the original).
    If nothing is found and ``download`` is true, the canonical archive is downloaded into
    ``root`` (atomically, sha256-verified); if that fails a FileNotFoundError says where
    it looked and what to put there.
    """
    _check_split(split)
    base = default_data_root() if root is None else _as_path(root)
    wanted = [*(_TRAIN_FILES if split == "train" else _TEST_FILES), _META]
    located = _locate_cifar(base)
    if located is None:
        target = base if base.name.endswith((".tar.gz", ".tgz")) else base / CIFAR10_ARCHIVE
        looked = f"{base} (for {CIFAR10_ARCHIVE} or {CIFAR10_FOLDER}/)"
        hint = (
            f"put {CIFAR10_ARCHIVE} (from {CIFAR10_URL}) or its extracted {CIFAR10_FOLDER}/ folder "
            f"there, or pass root= / set NEUROFLOW_DATA to where it is"
        )
        if not download:
            raise FileNotFoundError(f"CIFAR-10 not found: looked in {looked}; {hint}")
        try:
            _download(CIFAR10_URL, target, CIFAR10_SHA256)
        except OSError as exc:
            raise FileNotFoundError(f"CIFAR-10 not found in {looked} and the download failed ({exc}); {hint}") from exc
        located = ("archive", target)
    kind, path = located
    found = _read_cifar_archive(path, wanted) if kind == "archive" else _read_cifar_folder(path, wanted)
    missing = [n for n in wanted if n != _META and n not in found]
    if missing:
        where = f"{path}:{CIFAR10_FOLDER}/" if kind == "archive" else f"{path}/"
        raise FileNotFoundError(f"CIFAR-10 {split} split incomplete: {', '.join(missing)} missing in {where}")
    names = _parse_meta(found[_META], f"{path} ({_META})") if _META in found else list(CIFAR10_CLASSES)
    parts = [_decode_records(found[n], f"{path} ({n})" if kind == "archive" else str(path / n)) for n in wanted if n != _META]
    images = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
    labels = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
    return images, labels, names


# ---------------------------------------------------------------- image folders

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def image_folder(
    root: str | os.PathLike,
    size: tuple[int, int] | None = None,
    gray: bool = False,
    background: Sequence[float] = (255, 255, 255),
    max_pixels: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images in one sub-folder per class, as ``(images, labels, class_names)``.

    ``class_names`` are the sorted names of the non-hidden sub-folders of ``root``; each
    holds PNG/JPEG files (read in sorted name order, so the result is deterministic).
    ``images``: ``(N, X, Y, C)`` float32 in [0, 1], C = 1 if ``gray`` else 3, alpha
    composited onto ``background``; ``size=(X, Y)`` resizes every image, otherwise all
    images must have the same size. ``labels``: ``(N,)`` int64 indices into class_names.

    Files are read as PNG or JPEG only, whatever else Pillow could read; each is shrunk
    towards ``size`` before it becomes floats, and one that declares more than
    ``max_pixels`` pixels is refused before it is decoded (see
    :func:`neuroflow.image.load_tensor_rgb`).
    """
    base = _as_path(root)
    if not base.exists():
        raise FileNotFoundError(f"image folder root not found: {base}")
    if not base.is_dir():
        raise NotADirectoryError(f"root must be a folder with one sub-folder per class, got a file: {base}")
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{base} holds no class sub-folders (expected e.g. {base}/glasses/, {base}/noglasses/)")
    _check_background(background)
    _check_size(size)
    _max_pixels(max_pixels)  # bad options fail before any file is read
    arrays: list[np.ndarray] = []
    labels: list[int] = []
    first: Path | None = None
    for label, cls in enumerate(classes):
        files = sorted(
            p for p in (base / cls).iterdir()
            if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if not files:
            raise ValueError(f"class folder {base / cls} holds no PNG/JPEG images")
        for f in files:
            a = _load(f, gray=gray, background=background, size=size, dtype=np.float32, max_pixels=max_pixels,
                      formats=("PNG", "JPEG"))
            if first is None:
                first = f
            elif a.shape != arrays[0].shape:
                raise ValueError(
                    f"images differ in size: {f} is {a.shape[0]}x{a.shape[1]} but {first} is "
                    f"{arrays[0].shape[0]}x{arrays[0].shape[1]} (width x height); pass size=(X, Y) to resize"
                )
            arrays.append(a)
            labels.append(label)
    return np.stack(arrays), np.array(labels, dtype=np.int64), classes


# ---------------------------------------------------------------- MNIST idx files

_IDX_UBYTE = 0x08
_MAX_IDX_BYTES = 1 << 31  # MNIST's largest file holds 47 MB


def _find_idx(base: Path, stem: str, kind: str) -> Path:
    names = [f"{stem}-{kind}-ubyte", f"{stem}.{kind}-ubyte"]
    tried = [n + sfx for n in names for sfx in ("", ".gz")]
    for n in tried:
        if (base / n).is_file():
            return base / n
    raise FileNotFoundError(f"MNIST file not found in {base}: tried {', '.join(tried)}")


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte idx file with ``ndim`` dimensions, checking header and length.

    The size the header declares is checked before any of the data is read: against the
    file's size for a plain file; a gzipped one is read in chunks, so memory follows the
    data that is really there, never the header's claim.
    """
    gz = path.name.endswith(".gz")
    opener = gzip.open if gz else open
    header_size = 4 + 4 * ndim
    try:
        with opener(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] != _IDX_UBYTE or magic[3] != ndim:
                want = bytes([0, 0, _IDX_UBYTE, ndim]).hex()
                raise ValueError(f"{path}: bad idx magic number {magic.hex() or '(empty file)'}, expected {want}")
            header = f.read(4 * ndim)
            if len(header) < 4 * ndim:
                raise ValueError(f"{path}: truncated idx header")
            dims = tuple(int.from_bytes(header[4 * i : 4 * i + 4], "big") for i in range(ndim))
            if any(d == 0 for d in dims[1:]):
                raise ValueError(f"{path}: idx dimensions {dims} contain a zero")
            count = math.prod(dims)  # Python ints: no wrap-around, whatever the header says
            # the size of one item too: zero items of 2³¹ × 2³² bytes each is no array NumPy can make
            if count > _MAX_IDX_BYTES or math.prod(dims[1:]) > _MAX_IDX_BYTES:
                raise ValueError(
                    f"{path}: idx dimensions {dims} are implausibly large ({count} bytes of data, "
                    f"more than {_MAX_IDX_BYTES})"
                )
            if gz:
                chunks = []
                got = 0
                while got <= count:  # read at most one byte past the declared end
                    chunk = f.read(min(count + 1 - got, _CHUNK))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    got += len(chunk)
                data = b"".join(chunks)
                size = header_size + len(data)
            else:
                size = os.fstat(f.fileno()).st_size
                data = f.read(count) if size == header_size + count else b""
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"cannot read idx file {path}: {exc}") from exc
    if size != header_size + count or len(data) != count:
        short = size < header_size + count or (size == header_size + count and len(data) < count)
        what = "truncated" if short else "longer than its header says"
        holds = f"more than {header_size + count}" if gz and size > header_size + count else str(size)
        raise ValueError(
            f"{path}: {what}: header dimensions {dims} need {header_size + count} bytes of data, "
            f"file holds {holds}"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def mnist(root: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST (or Fashion-MNIST, same format) from idx files as ``(images, labels)``.

    Reads ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte`` (split "train") or
    ``t10k-...`` (split "test") from the folder ``root``, each plain or ``.gz``.
    ``images``: ``(N, 28, 28, 1)`` uint8 in Tensor3D order ``[n, x, y, 0]`` (idx rows are y);
    ``labels``: ``(N,)`` int64. Magic numbers, dimensions and file lengths are checked.
    """
    _check_split(split)
    base = _as_path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"MNIST folder not found: {base}")
    stem = "train" if split == "train" else "t10k"
    img_path = _find_idx(base, stem, "images-idx3")
    lab_path = _find_idx(base, stem, "labels-idx1")
    images = _read_idx(img_path, 3)
    labels = _read_idx(lab_path, 1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{img_path} holds {images.shape[0]} images but {lab_path} holds {labels.shape[0]} labels")
    # idx images are [n, row, col] = [n, y, x]; Tensor3D wants [n, x, y, c].
    return np.ascontiguousarray(images.transpose(0, 2, 1)[..., None]), labels.astype(np.int64)
