"""Fuzzing as tests: the readers that strangers feed files to, given mutated files.

Every outcome must be either a successful read whose result is consistent (a network whose
parameters have the shapes its layout implies, images of the shape the header declares, …)
or the reader's documented clean error -- never another exception type, never a hang
(hypothesis' deadline), never an allocation that follows a header's claim rather than the
data really present (checked with tracemalloc), never a crash.

- model files (io/modelfile.py format 2, io/modelfile_v1.py), through ``neuroflow.load``
  and ``neuroflow.modelfile.read``: byte flips, truncation, inserted bytes, edits of the
  safetensors header (shapes, dtypes, offsets), and edits of the metadata JSON (shapes,
  types, huge numbers, deep nesting) and of the tensors, re-signed the way someone
  crafting a file would, so that the checks behind the checksums must refuse them.
  Documented errors: ``read`` raises ModelFileError (a ValueError); ``load`` also raises
  ValueError for stored settings the Settings object refuses.
- NeuroFlow JSON weight files (io/nfjson.py; tests/test_nfjson_hostile.py has the fixed
  cases and random bytes): mutated valid files. Documented error: ValueError naming the file.
- MNIST idx files and the CIFAR-10 .tar.gz (io/datasets.py): lying headers, sizes and
  members. Documented errors: ValueError (FileNotFoundError when a split's member is missing).
- image files (io/image.py, image_folder): random bytes, truncated and mutated PNG/JPEG,
  huge declared dimensions. Documented errors: ValueError, ImageTooLargeError (a ValueError)
  for a file declaring more pixels than the limit, before anything is decoded.

CI runs a small, fixed set of examples per test (tests/fuzzing.py). The long run, with a
fresh seed that is printed (replay with NEUROFLOW_TEST_SEED=<seed>)::

    NEUROFLOW_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz_readers.py tests/test_fuzz_spec.py -q -x -s
"""

from __future__ import annotations

import gzip
import io
import json
import math
import struct
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import assume, event, given, strategies as st
from PIL import Image
from safetensors.numpy import load as st_load, save as st_save

import neuroflow as nf
from neuroflow import (
    Adam, BatchNorm, Convolution, Dense, Dropout, GlobalAvgPool, LeakyReLU, Linear, MaxPool, Momentum, Network,
    Residual, ReLU, Settings, SoftmaxLogEntropy, SoftmaxLogMultEntropy, Tanh, Vanilla, Waypoint, WeightBreeder,
)
from neuroflow import _core
from neuroflow.io import modelfile
from neuroflow.io.datasets import _safe_member_name, cifar10, image_folder, mnist
from neuroflow.io.image import ImageTooLargeError, load_tensor_gray, load_tensor_rgb
from neuroflow.io.modelfile import ModelFileError, spec_tensors
from neuroflow.io.nfjson import read_neuroflow_json, set_neuroflow_weights, write_neuroflow_json

from fuzzing import describe_run, fuzz, peak_allocation
from hostile import png_chunk, png_header


def test_fuzz_settings_are_reported() -> None:
    print(describe_run())  # shown with -s


# ================================================================ shared mutation strategies

# Scalars a hostile hand writes into JSON: wrong types, edge and huge numbers, NaN.
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 40), st.integers(-(2**70), 2**70),
    st.sampled_from([2**31, 2**32, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1e308, 5e-324, -1.0, 0.5]),
    st.text(max_size=12),
    st.sampled_from(["f32", "f64", "F32", "F64", "I64", "U8", "conv", "dense", "batchnorm", "residual", "relu",
                     "momentum", "adam", "vanilla", "weight", "sum", "mean", "piecewise", "", "."]),
)
JSON_VALUES = st.recursive(
    SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4), max_leaves=10)


def _deep(n: int) -> Any:
    v: Any = []
    for _ in range(n):
        v = [v]
    return v


HOSTILE = st.one_of(JSON_VALUES, st.integers(60, 200).map(_deep))


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


def _nudged(v: Any) -> st.SearchStrategy:
    """A value near ``v`` of the same type: the edits that keep a file plausible."""
    if isinstance(v, bool):
        return st.just(not v)
    if isinstance(v, int):
        return st.sampled_from([v + 1, v - 1, v * 2, -v, 0, v + 2**32, 2**63 - 1, 2**64])
    if isinstance(v, float):
        return st.sampled_from([v * 2, -v, 0.0, v + 1e-9, 1e300, float("nan"), float("inf")])
    if isinstance(v, str):
        return st.sampled_from([v + "x", v[:-1], v.upper(), "", "c0", "f64" if v == "f32" else "f32"])
    if isinstance(v, list):
        return st.sampled_from([v[:-1], v + v[-1:], v[::-1], [v]]) if v else st.just([0])
    return st.just({})


def mutate_json(data: st.DataObject, doc: Any, edits: int = 3) -> Any:
    """``doc`` after 1..``edits`` random edits at random places: a value replaced by a hostile
    one or nudged, a key or item removed or added."""
    doc = json.loads(json.dumps(doc))
    for _ in range(data.draw(st.integers(1, edits), label="edits")):
        path = data.draw(st.sampled_from(_paths(doc)), label="path")
        if not path:
            doc = data.draw(HOSTILE, label="whole")
            continue
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        op = data.draw(st.sampled_from(["replace", "nudge", "nudge", "delete", "add"]), label="op")
        if op == "replace":
            parent[key] = data.draw(HOSTILE, label="value")
        elif op == "nudge":
            parent[key] = data.draw(_nudged(parent[key]), label="value")
        elif op == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[data.draw(st.text(max_size=8), label="new key")] = data.draw(HOSTILE, label="value")
        else:
            parent.insert(key, data.draw(HOSTILE, label="value"))
    return doc


def mutate_bytes(data: st.DataObject, raw: bytes, edits: int = 3) -> bytes:
    """``raw`` after byte flips, overwrites, insertions, deletions and a truncation."""
    b = bytearray(raw)
    for _ in range(data.draw(st.integers(1, edits), label="byte edits")):
        op = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]), label="byte op")
        pos = data.draw(st.integers(0, max(0, len(b) - 1)), label="pos")
        if op == "flip" and b:
            b[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        elif op == "set" and b:
            b[pos] = data.draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, ord("9"), ord("[")]), label="byte")
        elif op == "insert":
            b[pos:pos] = data.draw(st.binary(min_size=1, max_size=16), label="inserted")
        elif op == "delete":
            del b[pos:pos + data.draw(st.integers(1, 64), label="deleted")]
        else:
            del b[pos:]
    return bytes(b)


def _write(tmp: Path, name: str, raw: bytes) -> Path:
    p = tmp / name
    p.write_bytes(raw)
    return p


# ================================================================ model files


def _small_conv(tmp: Path) -> bytes:
    c0 = Convolution((7, 5, 2), padding=1, field=3, stride=1, filters=3, activator=ReLU.biased(0.05), name="first")
    c1 = Convolution(c0.dim_out, padding=(1, 0), field=(3, 3), stride=(2, 1), filters=2, activator=LeakyReLU(0.1))
    s = Settings(verbose=False, iterations=3, batch_size=4, learning_rate=0.01, update_rule=Momentum(0.8), seed=11)
    net = Network([c0, c1, Dense(4, Tanh), Dense(3, Linear.biased(-0.2)), SoftmaxLogEntropy()], s,
                  weights=WeightBreeder.normal(0, 0.3, seed=2))
    rng = np.random.default_rng(1)
    net.train(rng.uniform(0, 1, (6, 7, 5, 2)), rng.integers(0, 3, 6))
    return net.save(tmp / "conv.safetensors").read_bytes()


def _mixed_checkpoint(tmp: Path) -> bytes:
    """BatchNorm, pooling, a residual, dropout, biases, Adam, f32, and a run in flight."""
    c0 = Convolution((6, 5, 2), padding=1, field=3, stride=1, filters=3, activator=ReLU)
    inner = Convolution((3, 2, 3), padding=1, field=3, stride=1, filters=3, activator=ReLU)
    ckpt = tmp / "ckpt.safetensors"
    s = Settings(verbose=False, iterations=3, batch_size=4, learning_rate=0.01, update_rule=Adam(), seed=3, dtype=np.float32,
                 waypoint=Waypoint(2, nf.checkpoint_to(ckpt)))
    net = Network([c0, BatchNorm(activator=ReLU), MaxPool(2), Residual([inner]), Dropout(0.1), Dense(4, Linear, bias=True),
                   SoftmaxLogEntropy()], s)
    rng = np.random.default_rng(2)
    net.train(rng.uniform(0, 1, (9, 6, 5, 2)).astype(np.float32), rng.integers(0, 4, 9))
    assert modelfile.read(ckpt).run is not None
    return ckpt.read_bytes()


def _gap_vanilla(tmp: Path) -> bytes:
    """Its parameters do not depend on the input's width and height (global pooling)."""
    net = Network([Convolution((6, 5, 2), padding=1, field=3, stride=1, filters=3, activator=ReLU), GlobalAvgPool(),
                   Dense(2, Tanh), SoftmaxLogMultEntropy(2)],
                  Settings(verbose=False, update_rule=Vanilla(), reduction="mean", iterations=2, batch_size=3, seed=1))
    return net.save(tmp / "gap.safetensors").read_bytes()


def _version_1(tmp: Path) -> bytes:
    """A model file as neuroflow 0.1 wrote it (as in tests/test_modelfile.py)."""
    rng = np.random.default_rng(3)
    w = [rng.normal(size=(3, 3, 2, 2)), rng.normal(size=(40, 3))]
    m = [rng.normal(size=a.shape) for a in w]
    acts = [{"name": "relu", "alpha": 0.0, "bias": 0.05}, {"name": "linear", "alpha": 0.0, "bias": 0.0}]
    layers = [{"kind": "conv", "dim_in": [5, 4, 2], "padding": [1, 1], "field": [3, 3], "stride": [1, 1], "filters": 2},
              {"kind": "dense", "dim_in": 40, "neurons": 3}]
    spec = {"dtype": "f64", "layers": [{**l, "activator": a} for l, a in zip(layers, acts)],
            "loss": {"name": "softmax_log_entropy", "n": 1.0}, "update": {"name": "momentum", "mu": 0.8}, "reduction": "sum"}
    layout = {"layers": [{**l, "name": n, "activator": a} for l, a, n in zip(layers, acts, ["first", "Dense"])],
              "loss": spec["loss"]}
    settings = {"learning_rate": 0.01, "learning_rate_schedule": None, "batch_size": 4, "iterations": 6, "precision": 1e-5,
                "verbose": False, "pretty_print": False, "approximation": None, "shuffle": True, "seed": 11}
    tensors = {f"weights.{i}": a for i, a in enumerate(w)} | {f"state.{i}": a for i, a in enumerate(m)}
    meta = {"format": "neuroflow.model", "format_version": "1", "neuroflow_version": "0.1.0", "spec": json.dumps(spec),
            "layout": json.dumps(layout), "settings": json.dumps(settings),
            "training": json.dumps({"iteration": 6, "alpha": 0.01, "run": None}),
            "checksums": json.dumps({k: modelfile._checksum(v) for k, v in tensors.items()})}
    raw = st_save(tensors, metadata=meta)
    assert nf.load(_write(tmp, "v1.safetensors", raw)).iteration == 6
    return raw


_MODELS: dict[str, bytes] = {}


def model(kind: str) -> bytes:
    """The valid file of ``kind`` that the mutations start from (built once; a module global
    rather than a fixture, so that a failing example's report does not print every file)."""
    if not _MODELS:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            _MODELS.update(conv=_small_conv(tmp), mixed=_mixed_checkpoint(tmp), gap=_gap_vanilla(tmp), v1=_version_1(tmp))
    return _MODELS[kind]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


MODEL_KINDS = st.sampled_from(["conv", "mixed", "gap", "v1"])


def _parts(raw: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A valid file's tensors and metadata (fresh copies: the tests edit them)."""
    header, _ = _safetensors_header(raw)
    return {k: v.copy() for k, v in st_load(raw).items()}, dict(header.get("__metadata__", {}))


def _sign(tensors: dict[str, np.ndarray], meta: dict[str, str], v1: bool) -> dict[str, str]:
    """Checksums recomputed for the edited contents, as someone crafting a file would."""
    sums = {k: modelfile._checksum(v) for k, v in tensors.items()}
    if not v1:
        sums["metadata"] = modelfile._meta_digest(meta)
    return {**meta, "checksums": json.dumps(sums)}


def _safetensors_header(raw: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _with_header(header: Any, rest: bytes) -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + rest


def check_model_file(path: Path) -> str:
    """Load ``path``; every outcome must be a consistent network or a clean error. Returns
    the outcome, for the statistics hypothesis prints with --hypothesis-show-statistics."""
    try:
        mf = modelfile.read(path)
    except ModelFileError as e:
        assert str(path) in str(e), e
        with pytest.raises(ModelFileError):  # load refuses it the same way
            nf.load(path)
        return "refused by read"
    except Exception as e:  # noqa: BLE001 -- the point: nothing else may come out
        pytest.fail(f"modelfile.read raised {type(e).__name__} (not ModelFileError): {e!r:.500}")
    try:
        net = nf.load(path)
    except ValueError as e:  # ModelFileError is one; Settings' own checks raise plain ValueError
        assert type(e) in (ModelFileError, ValueError), f"{type(e).__name__}: {e}"
        assert str(e), "an error without a message"
        return "refused by load"
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"neuroflow.load raised {type(e).__name__} (not ModelFileError/ValueError): {e!r:.500}")
    # A loaded network: its layout is what the core resolves, its parameters and state have
    # the shapes that layout implies, and hold the file's numbers.
    spec = json.loads(net.spec_json)
    assert json.loads(_core.resolve(net.spec_json)) == spec
    assert spec == mf.spec
    params, state = spec_tensors(spec)
    assert [(n, tuple(s)) for n, s in net._param_info] == params
    dtype = np.float32 if spec["dtype"] == "f32" else np.float64
    for (name, shape), w in zip(params, net.weights):
        assert w.shape == shape and w.dtype == dtype, (name, w.shape, w.dtype)
        np.testing.assert_array_equal(w, mf.params[name])
    assert sorted(net.state) == sorted(n for n, _ in state)
    for name, shape in state:
        np.testing.assert_array_equal(net.state[name], mf.state[name])
    assert net.iteration == mf.iteration and net._alpha == mf.alpha
    assert (net._run is None) == (mf.run is None)
    size = math.prod(spec["input"])
    if size <= 4096:  # inference on a sample of the declared input shape
        x = np.random.default_rng(0).uniform(0, 1, (2, *spec["input"])).astype(dtype)
        y = net(x)
        assert y.shape == (2, *spec["layers"][-1]["dim_out"])
    return f"loaded (format {mf.format_version})"


@fuzz()
@given(data=st.data(), kind=MODEL_KINDS)
def test_model_files_with_damaged_bytes(scratch: Path, data: st.DataObject, kind: str) -> None:
    """Byte flips, overwrites, insertions, deletions and truncation anywhere in the file."""
    raw = mutate_bytes(data, model(kind))
    event(check_model_file(_write(scratch, "bytes.safetensors", raw)))


@fuzz()
@given(data=st.data(), kind=MODEL_KINDS)
def test_model_files_with_edited_safetensors_headers(scratch: Path, data: st.DataObject, kind: str) -> None:
    """The safetensors header's JSON edited: tensor dtypes, shapes and offsets, metadata
    values of other types, huge numbers, deep nesting; the tensor data left as it was."""
    header, rest = _safetensors_header(model(kind))
    raw = _with_header(mutate_json(data, header), rest)
    event(check_model_file(_write(scratch, "header.safetensors", raw)))


META_KEYS = st.sampled_from(["spec", "spec", "spec", "settings", "settings", "training", "training", "layout", "checksums",
                             "format", "format_version", "neuroflow_version"])


@fuzz()
@given(data=st.data(), kind=MODEL_KINDS, key=META_KEYS, resolve=st.booleans(), sign=st.booleans())
def test_model_files_with_edited_metadata(scratch: Path, data: st.DataObject, kind: str, key: str,
                                          resolve: bool, sign: bool) -> None:
    """A metadata entry's JSON edited (values replaced or nudged, keys removed or added),
    mostly re-signed; with ``resolve`` an edited spec is first resolved again by the core,
    so that it is self-consistent and only the tensors can disagree with it."""
    tensors, meta = _parts(model(kind))
    assume(key in meta)
    try:
        doc = json.loads(meta[key])
    except ValueError:
        doc = meta[key]
    if data.draw(st.integers(0, 9), label="whole text") == 0:
        text = data.draw(st.one_of(st.text(max_size=40), st.integers(1, 10**5).map(lambda n: "[" * n + "]" * n)), label="text")
    else:
        doc = mutate_json(data, doc)
        if resolve and key == "spec":
            try:  # as the crafter would (who cannot resolve a huge stride either: see check_strides)
                modelfile.check_strides(doc, "crafted")
                doc = json.loads(_core.resolve(json.dumps(doc)))
            except ValueError:
                pass
        text = json.dumps(doc) if not isinstance(doc, str) or key in ("spec", "settings", "training", "layout", "checksums") else doc
    meta[key] = text
    if sign and key != "checksums":
        meta = _sign(tensors, meta, kind == "v1")
    event(check_model_file(_write(scratch, "meta.safetensors", st_save(tensors, metadata=meta))))


def _edited_tensor(data: st.DataObject, a: np.ndarray) -> np.ndarray | None:
    op = data.draw(st.sampled_from(["dtype", "reshape", "slice", "grow", "value", "drop", "scalar"]), label="tensor op")
    if op == "dtype":
        with np.errstate(all="ignore"):
            return a.astype(data.draw(st.sampled_from([np.float16, np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_])))
    if op == "reshape":
        return a.reshape(data.draw(st.sampled_from([(-1,), (1, -1), (-1, 1), a.shape[::-1], (*a.shape, 1)])))
    if op == "slice":
        return a.reshape(-1)[: data.draw(st.integers(0, max(0, a.size - 1)))]
    if op == "grow":
        return np.concatenate([a.reshape(-1), np.zeros(data.draw(st.integers(1, 5)), a.dtype)])
    floating = a.dtype.kind == "f"
    if op == "value":
        b = a.copy().reshape(-1)
        if b.size:
            if floating:
                values: list = [np.nan, np.inf, -np.inf, 1e300 if a.dtype == np.float64 else 6e4, -0.0, 3.0]
            elif a.dtype.kind == "b":
                values = [True, False]
            else:  # out of range or out of order in run.order, say
                info = np.iinfo(a.dtype)
                values = [int(info.min), int(info.max), 0, 1, min(int(b.size), int(info.max))]
            b[data.draw(st.integers(0, b.size - 1))] = data.draw(st.sampled_from(values))
        return b.reshape(a.shape)
    if op == "scalar":
        return np.asarray(data.draw(st.floats(allow_nan=False, width=16) if floating else st.integers(0, 1)), dtype=a.dtype)
    return None


@fuzz()
@given(data=st.data(), kind=MODEL_KINDS)
def test_model_files_with_edited_tensors(scratch: Path, data: st.DataObject, kind: str) -> None:
    """Tensors of another dtype or shape, cut short, non-finite, missing, extra or renamed;
    the file re-signed."""
    tensors, meta = _parts(model(kind))
    names = sorted(tensors)
    for _ in range(data.draw(st.integers(1, 3), label="tensor edits")):
        name = data.draw(st.sampled_from(names), label="tensor")
        if name not in tensors:
            continue
        what = data.draw(st.sampled_from(["edit", "edit", "rename", "extra"]), label="what")
        if what == "edit":
            b = _edited_tensor(data, tensors[name])
            if b is None:
                del tensors[name]
            else:
                tensors[name] = b
        elif what == "rename":
            new = data.draw(st.sampled_from([name + "x", name.replace(".", "_"), "param." + name, name.upper(), "run.order"]))
            tensors[new] = tensors.pop(name)
        else:
            tensors[data.draw(st.sampled_from(["param.extra", "state.x", "optim.first.weight.v", "run.order", "weights.9"]))] = (
                np.zeros(3, tensors[name].dtype))
    meta = _sign(tensors, meta, kind == "v1")
    event(check_model_file(_write(scratch, "tensors.safetensors", st_save(tensors, metadata=meta))))


def test_an_unedited_file_of_each_kind_loads(scratch: Path) -> None:
    """The fuzzed files start from files that load (so a refusal is the mutation's doing)."""
    for kind in ("conv", "mixed", "gap", "v1"):
        assert check_model_file(_write(scratch, f"{kind}.safetensors", model(kind))).startswith("loaded"), kind


# ================================================================ NeuroFlow JSON weight files


def _nf_json_file(tmp: Path) -> bytes:
    c0 = Convolution((5, 4, 2), padding=1, field=3, stride=1, filters=2, activator=ReLU)
    net = Network([c0, Dense(3, Tanh), Dense(2, Linear), SoftmaxLogEntropy()], Settings(verbose=False, dtype=np.float32),
                  weights=WeightBreeder.normal(0, 0.5, seed=4))
    return write_neuroflow_json(net, tmp / "w.json").read_bytes()


_NF_JSON: list[bytes] = []


def nf_json() -> bytes:
    if not _NF_JSON:
        with tempfile.TemporaryDirectory() as d:
            _NF_JSON.append(_nf_json_file(Path(d)))
    return _NF_JSON[0]


def check_nf_json(path: Path) -> str:
    try:
        matrices = read_neuroflow_json(path)
    except ValueError as e:
        assert type(e) is ValueError and str(path) in str(e), f"{type(e).__name__}: {e}"
        return "refused"
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"read_neuroflow_json raised {type(e).__name__} (not ValueError): {e!r:.500}")
    docs = json.loads(path.read_bytes())  # it read: so Python's parser reads it too
    assert isinstance(docs, list) and len(docs) == len(matrices)
    for d, m in zip(docs, matrices):
        assert m.shape == (d["rows"], d["cols"])
        assert m.dtype == (np.float32 if d.get("precision", "double") == "single" else np.float64)
        assert np.isfinite(m).all()
        np.testing.assert_array_equal(m, np.asarray(d["data"], dtype=np.float64).reshape(d["cols"], d["rows"]).T.astype(m.dtype))
    # the matrices fit the network the file came from, or are refused with a ValueError
    net = Network([Convolution((5, 4, 2), padding=1, field=3, stride=1, filters=2, activator=ReLU), Dense(3, Tanh),
                   Dense(2, Linear), SoftmaxLogEntropy()], Settings(verbose=False, dtype=np.float32))
    try:
        set_neuroflow_weights(net, matrices)
    except ValueError as e:
        assert type(e) is ValueError, e
        return "read, refused by the network"
    assert [w.shape for w in net.weights] == [(3, 3, 2, 2), (40, 3), (3, 2)]
    return "read and set"


@fuzz()
@given(data=st.data())
def test_neuroflow_json_with_edited_values(scratch: Path, data: st.DataObject) -> None:
    """A valid weight file's JSON edited: rows, cols and precision of other values and types,
    data cut short or grown, huge numbers, NaN, deep nesting, keys removed or added."""
    doc = json.loads(nf_json())
    text = json.dumps(mutate_json(data, doc, edits=2))
    event(check_nf_json(_write(scratch, "edited.json", text.encode())))


@fuzz()
@given(data=st.data())
def test_neuroflow_json_with_damaged_bytes(scratch: Path, data: st.DataObject) -> None:
    event(check_nf_json(_write(scratch, "damaged.json", mutate_bytes(data, nf_json()))))


# ================================================================ MNIST idx files

DIMS = st.one_of(st.integers(1, 4), st.integers(0, 4), st.integers(0, 2**32 - 1), st.sampled_from([2**31, 2**32 - 1, 60000, 28]))


def _idx(data: st.DataObject, ndim: int, what: str, n: int | None = None) -> tuple[bytes, int]:
    """An idx file whose header may lie: the magic number, the dimensions, and the data
    really present. Returns (file, bytes of data present)."""
    magic = data.draw(st.sampled_from([bytes([0, 0, 8, ndim])] * 4 + [bytes([0, 0, 8, 4 - ndim]), bytes([0, 0, 9, ndim]), b"\1\0\x08\x03", b""]),
                      label=f"{what} magic")
    dims = [data.draw(DIMS, label=f"{what} dim {i}") for i in range(ndim)]
    if n is not None and data.draw(st.integers(0, 3), label=f"{what} as many"):
        dims[0] = n
    want = math.prod(dims)
    size = want if want <= 4096 and data.draw(st.integers(0, 3), label=f"{what} honest") else data.draw(st.integers(0, 300))
    body = data.draw(st.binary(min_size=min(size, 64), max_size=min(size, 64)), label=f"{what} bytes")
    payload = (body * (size // max(1, len(body)) + 1))[:size] if body else bytes(size)
    raw = magic + b"".join(d.to_bytes(4, "big") for d in dims) + payload
    if data.draw(st.integers(0, 4), label=f"{what} damaged") == 0:
        raw = mutate_bytes(data, raw)
    return raw, len(raw)


@fuzz()
@given(data=st.data(), gz=st.booleans())
def test_mnist_idx_files_with_lying_headers(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, gz: bool) -> None:
    """Headers that claim up to 2³² × 2³² × 2³² bytes over a few bytes of data are refused
    before anything of that size is allocated; whatever reads is consistent."""
    folder = tmp_path_factory.mktemp("mnist")
    img, n_img = _idx(data, 3, "images")
    lab, n_lab = _idx(data, 1, "labels", n=int.from_bytes(img[4:8], "big") if len(img) >= 8 else None)
    sfx = ".gz" if gz else ""
    for name, raw in ((f"train-images-idx3-ubyte{sfx}", img), (f"train-labels-idx1-ubyte{sfx}", lab)):
        if gz and data.draw(st.integers(0, 5), label="damage the gzip") == 0:
            (folder / name).write_bytes(mutate_bytes(data, gzip.compress(raw)))
        else:
            (folder / name).write_bytes(gzip.compress(raw) if gz else raw)
    try:
        with peak_allocation() as peak:
            images, labels = mnist(folder, "train")
    except ValueError as e:
        assert type(e) is ValueError and str(folder) in str(e), f"{type(e).__name__}: {e}"
        event("refused")
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"mnist raised {type(e).__name__} (not ValueError): {e!r:.500}")
    else:
        n, rows, cols = (int.from_bytes(img[4 + 4 * i: 8 + 4 * i], "big") for i in range(3))
        assert images.shape == (n, cols, rows, 1) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        np.testing.assert_array_equal(images[..., 0].transpose(0, 2, 1).ravel(), np.frombuffer(img[16:], np.uint8))
        np.testing.assert_array_equal(labels, np.frombuffer(lab[8:], np.uint8))
        event("read")
    # memory follows the bytes present (a chunk of 1 MiB read at a time), never a header's claim
    assert peak[0] < (8 << 20) + 8 * (n_img + n_lab), f"peak allocation {peak[0]:,} bytes for {n_img + n_lab} bytes of files"


# ================================================================ CIFAR-10 archives

_FOLDER = "cifar-10-batches-bin/"
MEMBER_NAMES = st.sampled_from(
    [_FOLDER + "test_batch.bin"] * 4 + [_FOLDER + "batches.meta.txt"] * 2 + [
        _FOLDER + "data_batch_1.bin", "./" + _FOLDER + "test_batch.bin", _FOLDER + "../" + _FOLDER + "test_batch.bin",
        "/" + _FOLDER + "test_batch.bin", "../test_batch.bin", _FOLDER + "readme.html", "cifar-10-batches-bin", "C:" + _FOLDER,
        _FOLDER + "test_batch.bin/", "", _FOLDER + "./test_batch.bin",
    ])


def _records(data: st.DataObject) -> bytes:
    n = data.draw(st.integers(0, 3), label="records")
    labels = data.draw(st.lists(st.integers(0, 12), min_size=n, max_size=n), label="labels")
    pixels = data.draw(st.binary(min_size=8, max_size=8), label="pixels")
    out = b"".join(bytes([l]) + (pixels * 384) for l in labels)
    return out + data.draw(st.sampled_from([b"", b"", b"\0", b"x" * 100]), label="trailing")


def _member(data: st.DataObject) -> bytes:
    """One tar member, header and data, whose header may lie about the size and the type."""
    name = data.draw(MEMBER_NAMES, label="name")
    body = (b"\n".join(n.encode() for n in nf.datasets.CIFAR10_CLASSES[: data.draw(st.integers(8, 11))])
            if name.endswith(".txt") else _records(data))
    info = tarfile.TarInfo(name or "x")
    info.name = name
    info.type = data.draw(st.sampled_from([tarfile.REGTYPE] * 6 + [tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE]), label="type")
    if info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = data.draw(st.sampled_from(["/etc/passwd", "../../x", _FOLDER + "test_batch.bin"]), label="link")
    info.size = len(body) if data.draw(st.integers(0, 3), label="honest size") else data.draw(
        st.one_of(st.integers(0, 20000), st.sampled_from([2**31, 2**33 - 1, 60000 * 3073 + 1, 10**12])), label="size")
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    return header + body + bytes(-len(body) % 512)


@fuzz()
@given(data=st.data())
def test_cifar_archives_with_lying_members(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    """Archives with members whose sizes, types and names lie (absolute, '..', twice, links),
    damaged tar or gzip bytes: a consistent split or ValueError / FileNotFoundError (a member
    missing), and memory that follows the archive's real contents."""
    members = [_member(data) for _ in range(data.draw(st.integers(1, 4), label="members"))]
    tar = b"".join(members) + bytes(1024)
    if data.draw(st.integers(0, 4), label="damage the tar") == 0:
        tar = mutate_bytes(data, tar)
    gz = gzip.compress(tar)
    if data.draw(st.integers(0, 6), label="damage the gzip") == 0:
        gz = mutate_bytes(data, gz)
    path = tmp_path_factory.mktemp("cifar") / "cifar-10-binary.tar.gz"
    path.write_bytes(gz)
    try:
        with peak_allocation() as peak:
            images, labels, names = cifar10(path, "test", download=False)
    except (ValueError, FileNotFoundError) as e:
        assert type(e) in (ValueError, FileNotFoundError) and str(path) in str(e), f"{type(e).__name__}: {e}"
        event(f"refused: {type(e).__name__}")
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"cifar10 raised {type(e).__name__} (not ValueError/FileNotFoundError): {e!r:.500}")
    else:
        with tarfile.open(path) as t:  # what Python's tarfile reads in it, under the reader's name
            (member,) = [m for m in t if _safe_member_name(m.name, path) == _FOLDER + "test_batch.bin"]
            batch = t.extractfile(member).read()  # type: ignore[union-attr]
        n = len(batch) // 3073
        assert n >= 1 and images.shape == (n, 32, 32, 3) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64 and labels.max() <= 9
        np.testing.assert_array_equal(labels, np.frombuffer(batch, np.uint8)[::3073])
        assert len(names) == 10
        event("read")
    assert peak[0] < (8 << 20) + 8 * len(tar), f"peak allocation {peak[0]:,} bytes for a {len(tar)}-byte tar"


# ================================================================ image files

LIMIT = 64 * 64  # max_pixels in these tests: declared sizes beyond it are refused


def _image_bytes(data: st.DataObject) -> tuple[bytes, str]:
    fmt = data.draw(st.sampled_from(["PNG", "JPEG"]), label="format")
    modes = ["L", "RGB", "RGBA", "P", "LA", "I;16", "1"] if fmt == "PNG" else ["L", "RGB", "CMYK"]
    mode = data.draw(st.sampled_from(modes), label="mode")
    w, h = data.draw(st.integers(1, 12), label="width"), data.draw(st.integers(1, 12), label="height")
    pixels = np.frombuffer(data.draw(st.binary(min_size=w * h * 4, max_size=w * h * 4), label="pixels"), np.uint8)
    img = Image.fromarray(pixels.reshape(h, w, 4), "RGBA").convert(mode if mode != "I;16" else "I").convert(mode) if mode != "I;16" \
        else Image.fromarray(pixels[: w * h * 2].view(np.uint16).reshape(h, w).astype(np.uint16))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue(), fmt


def _huge(raw: bytes, fmt: str, w: int, h: int) -> bytes:
    """``raw`` declaring ``w`` x ``h`` pixels, the rest unchanged (a decompression bomb's header)."""
    if fmt == "PNG":
        return png_header(w, h, color_type=raw[25], bit_depth=raw[24]) + raw[33:]
    i = max(raw.find(b"\xff\xc0"), raw.find(b"\xff\xc2"))
    assert i > 0
    return raw[: i + 5] + struct.pack(">HH", min(h, 65535), min(w, 65535)) + raw[i + 9:]


def check_image(path: Path, size: tuple[int, int] | None, gray: bool, declared: tuple[int, int] | None) -> str:
    load = load_tensor_gray if gray else load_tensor_rgb
    try:
        a = load(path, size=size, max_pixels=LIMIT)
    except ImageTooLargeError as e:
        assert str(path) in str(e)
        return "refused as too large"
    except ValueError as e:
        assert type(e) is ValueError and str(path) in str(e), f"{type(e).__name__}: {e}"
        assert declared is None or declared[0] * declared[1] <= LIMIT, f"{declared} declared, not refused as too large: {e}"
        return "refused"
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"{load.__name__} raised {type(e).__name__} (not ValueError): {e!r:.500}")
    assert declared is None or declared[0] * declared[1] <= LIMIT, f"{declared} declared, and decoded"
    with Image.open(path) as img:
        w, h = img.size
    channels = 1 if gray else 3
    assert a.shape in ({(*size, channels)} if size else {(w, h, channels), (h, w, channels)}), (a.shape, w, h)
    assert a.dtype == np.float32 and a.flags.c_contiguous
    assert np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
    return "read"


@fuzz()
@given(data=st.data(), size=st.one_of(st.none(), st.tuples(st.integers(1, 9), st.integers(1, 9))), gray=st.booleans())
def test_image_files_damaged_truncated_or_huge(scratch: Path, data: st.DataObject, size, gray: bool) -> None:
    """Small PNG/JPEG files, truncated, with damaged bytes, or declaring huge dimensions;
    and random bytes. A declared size over max_pixels is refused (ImageTooLargeError) before
    anything is decoded; anything else reads as (X, Y, C) floats in [0, 1] or is refused with
    a ValueError naming the file."""
    raw, fmt = _image_bytes(data)
    declared = None
    op = data.draw(st.sampled_from(["truncate", "damage", "damage", "huge", "random", "intact"]), label="op")
    if op == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="cut")]
    elif op == "damage":
        raw = mutate_bytes(data, raw)
    elif op == "huge":
        declared = (data.draw(st.integers(1, 2**31 - 1), label="declared w"), data.draw(st.integers(1, 2**31 - 1), label="declared h"))
        if fmt == "JPEG":
            declared = (min(declared[0], 65535), min(declared[1], 65535))
        raw = _huge(raw, fmt, *declared)
    elif op == "random":
        raw = data.draw(st.binary(max_size=300), label="random")
    event(f"{op}: {check_image(_write(scratch, 'image.' + fmt.lower().replace('jpeg', 'jpg'), raw), size, gray, declared)}")


@fuzz(share=0.5)
@given(data=st.data(), size=st.one_of(st.none(), st.tuples(st.integers(1, 6), st.integers(1, 6))))
def test_image_folders_of_damaged_files(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, size) -> None:
    root = tmp_path_factory.mktemp("folder")
    count = 0
    for cls in ("a", "b"):
        (root / cls).mkdir()
        for i in range(data.draw(st.integers(1, 2), label=f"{cls} files")):
            raw, fmt = _image_bytes(data)
            if data.draw(st.integers(0, 2), label="damage"):
                raw = mutate_bytes(data, raw, edits=1)
            (root / cls / f"{i}.{fmt.lower()}").write_bytes(raw)
            count += 1
    try:
        images, labels, classes = image_folder(root, size=size, max_pixels=LIMIT)
    except ValueError as e:
        assert type(e) in (ValueError, ImageTooLargeError) and str(root) in str(e), f"{type(e).__name__}: {e}"
        event("refused")
        return
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"image_folder raised {type(e).__name__} (not ValueError): {e!r:.500}")
    assert classes == ["a", "b"] and images.shape[0] == labels.shape[0] == count
    assert images.dtype == np.float32 and images.shape[3] == 3 and (size is None or images.shape[1:3] == size)
    assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    event("read")


def test_a_model_file_with_a_huge_conv_stride_is_refused_at_once(scratch: Path) -> None:
    """Found by the metadata fuzz: the core's resolver takes hours over a stride of 2**40
    (tests/test_fuzz_spec.py's xfail); the reader refuses it before resolving."""
    import time

    for kind in ("conv", "v1"):
        tensors, meta = _parts(model(kind))
        spec = json.loads(meta["spec"])
        spec["layers"][0]["stride"] = [2**40, 1]
        meta = _sign(tensors, {**meta, "spec": json.dumps(spec)}, kind == "v1")
        path = _write(scratch, "stride.safetensors", st_save(tensors, metadata=meta))
        start = time.perf_counter()
        with pytest.raises(ModelFileError, match=r"stride \[1099511627776, 1\], more than 16777216"):
            nf.load(path)
        assert time.perf_counter() - start < 1.0
