"""NeuroFlow's JSON weight files: a list of ``{"rows", "cols", "precision", "data"}`` objects,
one per weight layer, ``precision`` "double" or "single", ``data`` the matrix in column-major
order (Breeze's ``DenseMatrix.toArray``).

NeuroFlow's matrices and ours hold the same numbers in other orders (docs/engine.md):

- Convolution: NeuroFlow (filters) rows × (field_x·field_y·depth) cols, column
  ``(z·fx + kx)·fy + ky`` (its im2col row); ours ``W[kx, ky, z, f]``. So
  ``M = W.transpose(3, 2, 0, 1).reshape(F, Z·fx·fy)``.
- Dense: NeuroFlow (inputs) rows × (neurons) cols (it computes ``in · W``), like ours. A
  Dense layer right after a Convolution reads the conv output flattened channel-major
  (row ``z·X·Y + x·Y + y``), where ours is channel-last (``(x·Y + y)·Z + z``); its rows are
  permuted accordingly. Other Dense layers are the same matrix.

Reading checks the structure and every number; writing is atomic.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes

__all__ = ["neuroflow_matrices", "read_neuroflow_json", "set_neuroflow_weights", "weights_from_neuroflow",
           "write_neuroflow_json"]


def _layers(net) -> list[dict]:
    """The network's layers as resolved specs, refusing what NeuroFlow cannot hold: only a
    chain of convolutions then dense layers, without biases, is a NeuroFlow network."""
    specs = json.loads(net.spec_json)["layers"]
    for i, d in enumerate(specs):
        if d["kind"] not in ("conv", "dense"):
            raise ValueError(f"NeuroFlow JSON: layout[{i}] ({d['name']}) is a {d['kind']} layer, which NeuroFlow does not have; "
                             "only Convolution and Dense layers can be written")
        if d.get("bias"):
            raise ValueError(f"NeuroFlow JSON: layout[{i}] ({d['name']}) has a learnable bias, which NeuroFlow does not have")
    return specs


def _conv_before(specs: list, i: int):
    """The conv spec feeding layer ``i`` if ``i`` is the first Dense after one, else None."""
    if i > 0 and specs[i]["kind"] == "dense" and specs[i - 1]["kind"] == "conv":
        return specs[i - 1]
    return None


def _to_neuroflow(specs: list, i: int, w: np.ndarray) -> np.ndarray:
    if specs[i]["kind"] == "conv":
        fx, fy, z, f = w.shape
        return w.transpose(3, 2, 0, 1).reshape(f, z * fx * fy)
    conv = _conv_before(specs, i)
    if conv is not None:
        x, y, z = conv["dim_out"]
        return w.reshape(x * y, z, -1).transpose(1, 0, 2).reshape(x * y * z, -1)
    return w


def _from_neuroflow(specs: list, i: int, m: np.ndarray, shape: tuple) -> np.ndarray:
    if specs[i]["kind"] == "conv":
        fx, fy, z, f = shape
        return m.reshape(f, z, fx, fy).transpose(2, 3, 1, 0)
    conv = _conv_before(specs, i)
    if conv is not None:
        x, y, z = conv["dim_out"]
        return m.reshape(z, x * y, -1).transpose(1, 0, 2).reshape(x * y * z, -1)
    return m


def neuroflow_matrices(net) -> list[np.ndarray]:
    """The network's weights as NeuroFlow's matrices (see the module's doc), in its dtype."""
    specs = _layers(net)
    return [np.ascontiguousarray(_to_neuroflow(specs, i, w)) for i, w in enumerate(net.weights)]


def weights_from_neuroflow(net, matrices) -> list[np.ndarray]:
    """NeuroFlow matrices (rows × cols arrays, one per weight layer) as weights for ``net``,
    checking their number and shapes."""
    specs = _layers(net)
    shapes = [tuple(d["params"][0]["shape"]) for d in specs]
    if not isinstance(matrices, (list, tuple)):
        raise TypeError(f"matrices: expected a list of {len(shapes)} arrays, got {type(matrices).__name__}")
    if len(matrices) != len(shapes):
        raise ValueError(f"matrices: the network has {len(shapes)} weight layers, got {len(matrices)} matrices")
    out = []
    for i, (m, shape) in enumerate(zip(matrices, shapes)):
        m = np.asarray(m)
        if specs[i]["kind"] == "conv":
            fx, fy, z, f = shape
            want = (f, fx * fy * z)
            what = f"{specs[i]['name']}: (filters) × (field_x·field_y·depth)"
        else:
            want = shape
            what = f"{specs[i]['name']}: (inputs) × (neurons)"
        if m.shape != want:
            raise ValueError(f"matrices[{i}]: {what} needs {want[0]} × {want[1]}, got {' × '.join(map(str, m.shape))}")
        out.append(np.ascontiguousarray(_from_neuroflow(specs, i, m, shape), dtype=net.dtype))
    return out


def set_neuroflow_weights(net, matrices) -> None:
    """Assign NeuroFlow matrices (e.g. from :func:`read_neuroflow_json`) to ``net``."""
    net.weights = weights_from_neuroflow(net, matrices)


def write_neuroflow_json(net, path: str | os.PathLike) -> Path:
    """Write the network's weights in NeuroFlow's JSON format, atomically. Returns the path."""
    precision = "single" if net.dtype == np.float32 else "double"
    docs = [
        {"rows": int(m.shape[0]), "cols": int(m.shape[1]), "precision": precision,
         "data": np.asarray(m, dtype=np.float64).ravel(order="F").tolist()}
        for m in neuroflow_matrices(net)
    ]
    return atomic_write_bytes(path, json.dumps(docs, separators=(",", ":")).encode())


# The largest weight file read: some 50 million weights as JSON text.
MAX_BYTES = 1 << 30


def read_neuroflow_json(path: str | os.PathLike) -> list[np.ndarray]:
    """NeuroFlow's matrices from its JSON weight file: rows × cols arrays, float64 for
    "double", float32 for "single". Raises ValueError naming the file and the fault. The
    file is parsed with :mod:`neuroflow.io.safejson` (at most MAX_BYTES, nested at most 8
    deep, numbers of at most 64 characters, no duplicate keys)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"NeuroFlow weight file not found: {p}")
    from .safejson import JSONLimitError, load

    try:
        # Within limits: a list of objects holding lists is 3 deep; numbers as doubles print
        docs = load(p, what="its JSON", max_bytes=MAX_BYTES, max_depth=8, max_number_chars=64, allow_nan=True)
    except JSONLimitError as e:
        raise ValueError(f"{p}: not a NeuroFlow JSON weight file ({e})") from None
    if not isinstance(docs, list) or not docs:
        raise ValueError(f"{p}: expected a non-empty list of {{rows, cols, precision, data}} objects")
    out = []
    for i, d in enumerate(docs):
        where = f"{p}: matrix {i}"
        if not isinstance(d, dict) or not {"rows", "cols", "data"} <= set(d):
            raise ValueError(f"{where}: expected an object with rows, cols, precision and data")
        rows, cols = d["rows"], d["cols"]
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in (rows, cols)):
            raise ValueError(f"{where}: rows and cols must be positive ints, got {rows!r}, {cols!r}")
        precision = d.get("precision", "double")
        if precision not in ("double", "single"):
            raise ValueError(f"{where}: precision must be 'double' or 'single', got {precision!r}")
        data = d["data"]
        if not isinstance(data, list) or len(data) != rows * cols:
            got = len(data) if isinstance(data, list) else type(data).__name__
            raise ValueError(f"{where}: data must hold rows·cols = {rows * cols} numbers, got {got}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in data):
            raise ValueError(f"{where}: data must hold finite numbers only")
        dtype = np.float64 if precision == "double" else np.float32
        with np.errstate(over="ignore"):
            m = np.asarray(data, dtype=np.float64).reshape(cols, rows).T.astype(dtype)
        if not np.isfinite(m).all():  # finite doubles beyond single precision's range
            raise ValueError(f"{where}: data holds numbers too large for {precision} precision")
        out.append(m)
    return out
