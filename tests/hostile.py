"""Helpers for the hostile-input tests: files built in the test (large images that are small on
disk, lying headers), and a child interpreter with a memory limit."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np

import neuroflow as nf

HERE = str(Path(nf.__file__).resolve().parent.parent)
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")])}


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int, color_type: int = 2, bit_depth: int = 8) -> bytes:
    """The signature and IHDR of a PNG: what Pillow reads to learn an image's size."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)


def striped_png(path: Path, width: int, height: int, colours: np.ndarray) -> np.ndarray:
    """Write a ``width`` x ``height`` 8-bit PNG of vertical stripes, streamed so that neither
    the test nor the file needs the full image: len(colours) equal blocks of columns, each
    its colour (RGB or RGBA rows of ``colours``), every row the same (PNG filter "Up"), so
    that a 6000 x 6000 image is about 100 KB. Returns the first row, (width, C) uint8."""
    colours = np.asarray(colours, dtype=np.uint8)
    channels = colours.shape[1]
    block = -(-width // len(colours))
    row = np.repeat(colours, block, axis=0)[:width]
    comp = zlib.compressobj(9)
    parts = [comp.compress(b"\0" + row.tobytes())]
    up = b"\2" + bytes(width * channels)  # "Up" filter: each row equals the one above
    parts += [comp.compress(up) for _ in range(height - 1)]
    parts.append(comp.flush())
    color_type = {3: 2, 4: 6}[channels]
    path.write_bytes(png_header(width, height, color_type) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b""))
    return row


def run_limited(code: str, limit_mb: int, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter whose address space may grow by at most
    ``limit_mb`` MiB beyond what it holds once neuroflow, NumPy and Pillow are imported
    (RLIMIT_AS, Linux). An allocation past it fails with MemoryError instead of succeeding."""
    prologue = textwrap.dedent(f"""
        import resource
        import numpy, PIL.Image, neuroflow, neuroflow.io.datasets, neuroflow.io.image
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + {limit_mb} * 2**20, resource.RLIM_INFINITY))
    """)
    env = {**ENV, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NEUROFLOW_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", prologue + textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=timeout)
