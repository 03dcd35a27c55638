"""Model files: round trips, damaged and mismatched files, no code from files, NeuroFlow's JSON."""

import hashlib
import json
import pickle

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save as st_save

import neuroflow as nf
from neuroflow import (
    Convolution, Dense, LeakyReLU, Linear, Momentum, Network, ReLU, Settings, SoftmaxLogEntropy,
    SoftmaxLogMultEntropy, SquaredError, Tanh, Vanilla, WeightBreeder,
)
from neuroflow.modelfile import (
    ModelFileError, neuroflow_matrices, read, read_neuroflow_json, set_neuroflow_weights, write_neuroflow_json,
)


def small(dtype=np.float64, rule=Momentum(0.8), lr=0.01, **kw):
    c0 = Convolution((9, 7, 3), padding=1, field=3, stride=1, filters=3, activator=ReLU.biased(0.05), name="first")
    c1 = Convolution(c0.dim_out, padding=(1, 0), field=(3, 3), stride=(2, 1), filters=2, activator=LeakyReLU(0.1))
    layout = [c0, c1, Dense(5, Tanh), Dense(4, Linear.biased(-0.2)), SoftmaxLogEntropy()]
    s = Settings(verbose=False, iterations=6, batch_size=4, learning_rate=lr, update_rule=rule, dtype=dtype, seed=11, **kw)
    return Network(layout, s, weights=WeightBreeder.normal(0, 0.3, seed=2))


def data(rng, n=10):
    return rng.uniform(0, 1, (n, 9, 7, 3)), rng.integers(0, 4, n)


def same(a, b):
    return len(a) == len(b) and all(p.dtype == q.dtype and np.array_equal(p, q) for p, q in zip(a, b))


def rewrite(path, out, tensors=None, meta=None, sign=False):
    """Write `path`'s tensors and metadata, changed as given, to `out` (a hand-made file).
    `sign`: recompute every checksum, as someone crafting a file would, so that the checks
    behind the checksums are what must refuse it."""
    with safe_open(str(path), framework="np") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}
        m = dict(f.metadata())
    t.update(tensors or {})
    t = {k: v for k, v in t.items() if v is not None}
    m.update(meta or {})
    if sign:
        sums = {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() for k, v in t.items()}
        rest = {k: v for k, v in m.items() if k != "checksums"}
        sums["metadata"] = hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        m["checksums"] = json.dumps(sums)
    out.write_bytes(st_save(t, metadata=m))
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_gives_identical_outputs_and_training(dtype, rng, tmp_path):
    x, y = data(rng)
    net = small(dtype)
    net.train(x, y)
    path = net.save(tmp_path / "net.safetensors")
    back = nf.load(path)
    assert back.spec_json == net.spec_json
    assert [type(a) for a in back.layout] == [type(b) for b in net.layout]
    assert [l.label for l in back.layout[:-1]] == ["first", "Convolution", "Dense", "Dense"]
    assert back.iteration == 6 and back._alpha == net._alpha
    assert same(back.weights, net.weights) and same(back.optimizer_state, net.optimizer_state)
    assert back.weights[0].dtype == dtype
    np.testing.assert_array_equal(back(x), net(x))
    s, t = back.settings, net.settings
    assert (s.batch_size, s.iterations, s.update_rule, s.dtype, s.reduction, s.shuffle, s.seed) == (
        t.batch_size, t.iterations, t.update_rule, t.dtype, t.reduction, t.shuffle, t.seed)
    assert s.learning_rate(1, 1.0) == 0.01
    # continued training is the same on both
    net.train(x, y)
    back.train(x, y)
    assert same(back.weights, net.weights) and same(back.optimizer_state, net.optimizer_state)
    assert back.iteration == net.iteration == 12


def test_vanilla_mean_and_other_losses_round_trip(rng, tmp_path):
    x = rng.uniform(0, 1, (6, 5))
    net = Network([Dense(3, Tanh, dim_in=5), Dense(2, ReLU), SoftmaxLogMultEntropy(2)],
                  Settings(verbose=False, update_rule=Vanilla(), reduction="mean", iterations=2, batch_size=3, seed=1))
    net.train(x, np.tile([1.0, 1.0], (6, 1)))
    back = nf.load(net.save(tmp_path / "v.safetensors"))
    assert back.optimizer_state == [] and back.loss_function == SoftmaxLogMultEntropy(2)
    assert back.layout[0].dim_in == 5 and back.settings.reduction == "mean"
    np.testing.assert_array_equal(back(x), net(x))
    sq = Network([Dense(2, Linear, dim_in=5), SquaredError()], Settings(verbose=False))
    assert isinstance(nf.load(sq.save(tmp_path / "sq.safetensors")).loss_function, SquaredError)


def test_a_schedule_is_not_stored_and_must_be_given_again(rng, tmp_path):
    x, y = data(rng)

    def halving(i, alpha):
        return 0.02 / i

    net = small(lr=halving)
    net.train(x, y)
    path = net.save(tmp_path / "s.safetensors")
    assert read(path).settings["learning_rate"] == {"code": "test_a_schedule_is_not_stored_and_must_be_given_again.<locals>.halving"}
    back = nf.load(path)
    np.testing.assert_array_equal(back(x), net(x))  # inference needs no schedule
    with pytest.raises(ValueError, match="learning-rate function .*halving.*learning_rate=schedule"):
        back.train(x, y)
    again = nf.load(path, learning_rate=halving)
    again.train(x, y)
    net.train(x, y)
    assert same(again.weights, net.weights)


def test_settings_on_load_must_fit_the_weights(tmp_path):
    path = small().save(tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="settings.dtype: the model file was saved with"):
        nf.load(path, settings=Settings(dtype=np.float32))
    with pytest.raises(ValueError, match="settings.update_rule"):
        nf.load(path, settings=Settings(update_rule=Vanilla()))
    net = nf.load(path, settings=Settings(update_rule=Momentum(0.8), batch_size=2, verbose=False))
    assert net.settings.batch_size == 2


def test_writes_are_atomic(tmp_path):
    net = small()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        net.save(tmp_path / "missing" / "m.safetensors")
    path = net.save(tmp_path / "m.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left behind
    assert read(path).iteration == 0


def test_truncated_corrupted_and_foreign_files_are_refused(tmp_path):
    path = small().save(tmp_path / "m.safetensors")
    raw = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[:-7])
    with pytest.raises(ModelFileError, match="cut.safetensors: not a readable safetensors file, truncated or corrupted"):
        nf.load(cut)
    cut.write_bytes(raw[:5])
    with pytest.raises(ModelFileError, match="truncated or corrupted"):
        nf.load(cut)
    flipped = bytearray(raw)
    flipped[-3] ^= 0x40  # a bit in the last tensor's data
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(ModelFileError, match="does not match its checksum: the file is corrupted"):
        nf.load(bad)
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a model")
    with pytest.raises(ModelFileError, match="notes.txt"):
        nf.load(text)
    with pytest.raises(FileNotFoundError, match="model file not found"):
        nf.load(tmp_path / "nothing.safetensors")
    other = tmp_path / "other.safetensors"
    other.write_bytes(st_save({"w": np.zeros(3)}, metadata={"format": "pt"}))
    with pytest.raises(ModelFileError, match="not a neuroflow model file"):
        nf.load(other)


def test_versions_and_mismatched_tensors_are_refused(tmp_path):
    path = small().save(tmp_path / "m.safetensors")
    with pytest.raises(ModelFileError, match=r"format version 3 is newer than the versions this neuroflow reads \(1, 2\); upgrade"):
        nf.load(rewrite(path, tmp_path / "v.safetensors", meta={"format_version": "3"}))
    with pytest.raises(ModelFileError, match="unknown format version 'one'"):
        nf.load(rewrite(path, tmp_path / "v.safetensors", meta={"format_version": "one"}))
    # edited metadata, checksums left alone
    spec = json.loads(_meta(path)["spec"])
    spec["seed"] = 12
    with pytest.raises(ModelFileError, match="the metadata does not match its checksum"):
        nf.load(rewrite(path, tmp_path / "e.safetensors", meta={"spec": json.dumps(spec)}))
    training = json.loads(_meta(path)["training"])
    training["iteration"] = 10**6
    with pytest.raises(ModelFileError, match="the metadata does not match its checksum"):
        nf.load(rewrite(path, tmp_path / "e.safetensors", meta={"training": json.dumps(training)}))
    # a tensor missing, the file re-signed: only the layout check can notice
    f = rewrite(path, tmp_path / "m1.safetensors", tensors={"optim.c1.weight.momentum": None}, sign=True)
    with pytest.raises(ModelFileError, match=r"missing \['optim.c1.weight.momentum'\]"):
        nf.load(f)
    # a tensor of the wrong shape
    f = rewrite(path, tmp_path / "m2.safetensors", tensors={"param.first.weight": np.zeros((3, 3, 3, 4))}, sign=True)
    with pytest.raises(ModelFileError, match=r"tensor 'param.first.weight' has shape \(3, 3, 3, 4\), the layout needs \(3, 3, 3, 3\)"):
        nf.load(f)
    # a spec whose shapes are not its layout's, and a layout that cannot be
    spec = json.loads(_meta(path)["spec"])
    spec["layers"][0]["filters"] = 4
    with pytest.raises(ModelFileError, match="layout: the stored shapes are not those of the stored layout"):
        nf.load(rewrite(path, tmp_path / "m3.safetensors", meta={"spec": json.dumps(spec)}, sign=True))
    spec = json.loads(_meta(path)["spec"])
    spec["layers"][1]["stride"] = [3, 1]
    with pytest.raises(ModelFileError, match=r"layout: layout\[1\] \(c1\) with dim_in \(9, 7, 3\): on X, 9 \+ 2·1 − 3 = 8 is not divisible"):
        nf.load(rewrite(path, tmp_path / "m4.safetensors", meta={"spec": json.dumps(spec)}, sign=True))


def test_hostile_metadata_gets_a_clear_error(tmp_path):
    path = small().save(tmp_path / "m.safetensors")
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ModelFileError, match="metadata 'training': arrays and objects nested more than 64 deep"):
        nf.load(rewrite(path, tmp_path / "d.safetensors", meta={"training": deep}, sign=True))
    training = json.loads(_meta(path)["training"])
    big = json.dumps(training).replace('"iteration": 0', '"iteration": ' + "9" * 5000)
    assert big != json.dumps(training)
    with pytest.raises(ModelFileError, match="metadata 'training': a number of 5,?000 characters"):
        nf.load(rewrite(path, tmp_path / "n.safetensors", meta={"training": big}, sign=True))
    training["step"] = -3
    with pytest.raises(ModelFileError, match="training: step: expected an int ≥ 0, got -3"):
        nf.load(rewrite(path, tmp_path / "s.safetensors", meta={"training": json.dumps(training)}, sign=True))


def _meta(path):
    with safe_open(str(path), framework="np") as f:
        return dict(f.metadata())


class _Trap:
    """Unpickling this would create a file: proof that nothing in a model file is run."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_nothing_in_a_file_is_executed(tmp_path):
    path = small().save(tmp_path / "m.safetensors")
    target = tmp_path / "pwned"
    payload = pickle.dumps(_Trap(target), protocol=0).decode("latin-1")
    with pytest.raises(ModelFileError, match="metadata 'spec': not valid JSON"):
        nf.load(rewrite(path, tmp_path / "p.safetensors", meta={"spec": payload}, sign=True))
    with pytest.raises(ModelFileError, match="metadata 'settings': not valid JSON"):
        nf.load(rewrite(path, tmp_path / "p.safetensors", meta={"settings": payload}, sign=True))
    # names that would be code elsewhere are just unknown names here
    spec = json.loads(_meta(path)["spec"])
    spec["layers"][0]["activator"]["name"] = "__import__('os').system('touch pwned')"
    with pytest.raises(ModelFileError, match="layout: spec: not a valid network spec: unknown variant"):
        nf.load(rewrite(path, tmp_path / "p.safetensors", meta={"spec": json.dumps(spec)}, sign=True))
    spec = json.loads(_meta(path)["spec"])
    spec["update"] = {"name": "builtins.eval"}
    with pytest.raises(ModelFileError, match="layout: spec: not a valid network spec: unknown variant `builtins.eval`"):
        nf.load(rewrite(path, tmp_path / "p.safetensors", meta={"spec": json.dumps(spec)}, sign=True))
    settings = json.loads(_meta(path)["settings"])
    settings["learning_rate"] = {"schedule": {"kind": "os.system", "points": [[0, 1]]}}
    with pytest.raises(ValueError, match="schedule: unknown kind 'os.system'"):
        nf.load(rewrite(path, tmp_path / "p.safetensors", meta={"settings": json.dumps(settings)}, sign=True))
    assert not target.exists() and not (tmp_path / "pwned").exists()


def test_version_1_files_are_read(rng, tmp_path):
    """A model file as neuroflow 0.1 wrote it (format version 1, before named parameters):
    the same layout and numbers, parameters named as today."""
    x, y = data(rng)
    net = small()
    net.train(x, y)
    w, m = net.weights, net.optimizer_state
    conv = lambda d: {"kind": "conv", "dim_in": d[0], "padding": d[1], "field": [3, 3], "stride": d[2], "filters": d[3]}
    acts = [{"name": "relu", "alpha": 0.0, "bias": 0.05}, {"name": "leaky_relu", "alpha": 0.1, "bias": 0.0},
            {"name": "tanh", "alpha": 0.0, "bias": 0.0}, {"name": "linear", "alpha": 0.0, "bias": -0.2}]
    layers = [conv(([9, 7, 3], [1, 1], [1, 1], 3)), conv(([9, 7, 3], [1, 0], [2, 1], 2)),
              {"kind": "dense", "dim_in": 50, "neurons": 5}, {"kind": "dense", "dim_in": 5, "neurons": 4}]
    spec = {"dtype": "f64", "layers": [{**l, "activator": a} for l, a in zip(layers, acts)],
            "loss": {"name": "softmax_log_entropy", "n": 1.0}, "update": {"name": "momentum", "mu": 0.8}, "reduction": "sum"}
    layout = {"layers": [{**l, "name": n, "activator": a} for l, a, n in zip(layers, acts, ["first", "Convolution", "Dense", "Dense"])],
              "loss": spec["loss"]}
    for d in layout["layers"][2:]:
        d["dim_in"] = None
    settings = {"learning_rate": 0.01, "learning_rate_schedule": None, "update_rule": spec["update"], "batch_size": 4,
                "iterations": 6, "precision": 1e-5, "verbose": False, "pretty_print": False, "approximation": None,
                "reduction": "sum", "dtype": "f64", "shuffle": True, "seed": 11}
    tensors = {f"weights.{i}": a for i, a in enumerate(w)} | {f"state.{i}": a for i, a in enumerate(m)}
    meta = {"format": "neuroflow.model", "format_version": "1", "neuroflow_version": "0.1.0", "spec": json.dumps(spec),
            "layout": json.dumps(layout), "settings": json.dumps(settings),
            "training": json.dumps({"iteration": 6, "alpha": 0.01, "run": None}),
            "checksums": json.dumps({k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in tensors.items()})}
    old = tmp_path / "v1.safetensors"
    old.write_bytes(st_save(tensors, metadata=meta))
    back = nf.load(old)
    assert list(back.parameters) == ["first.weight", "c1.weight", "d2.weight", "d3.weight"]
    assert same(back.weights, w) and same(back.optimizer_state, m) and back.iteration == 6
    np.testing.assert_array_equal(back(x), net(x))
    net.train(x, y)
    back.train(x, y)
    assert same(back.weights, net.weights)


def test_neuroflow_json_round_trip_and_layout(rng, tmp_path):
    net = small(np.float32)
    path = write_neuroflow_json(net, tmp_path / "weights.json")
    docs = json.loads(path.read_text())
    assert [(d["rows"], d["cols"], d["precision"]) for d in docs] == [(3, 27, "single"), (2, 27, "single"), (50, 5, "single"), (5, 4, "single")]
    matrices = read_neuroflow_json(path)
    assert all(m.dtype == np.float32 for m in matrices)
    assert same(matrices, neuroflow_matrices(net))
    fresh = small(np.float32)
    fresh.weights = [np.zeros_like(w) for w in fresh.weights]
    set_neuroflow_weights(fresh, matrices)
    assert same(fresh.weights, net.weights)
    # data is column-major: element (r, c) at c·rows + r
    assert docs[0]["data"][5 * 3 + 1] == float(matrices[0][1, 5])


def test_neuroflow_matrices_compute_what_neuroflow_computes(rng):
    """NeuroFlow multiplies its conv matrix with im2col columns ordered (z, kx, ky), and its
    first Dense reads the last conv output channel-major: check both against the engine."""
    c0 = Convolution((6, 5, 2), padding=1, field=(3, 2), stride=1, filters=3, activator=Linear)
    layout = [c0, Dense(4, Linear), SquaredError()]
    net = Network(layout, Settings(verbose=False), weights=WeightBreeder.normal(0, 1, seed=int(rng.integers(1 << 30))))
    x = rng.uniform(-1, 1, (6, 5, 2))
    conv_m, dense_m = neuroflow_matrices(net)
    X, Y, Z = c0.dim_out
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    ours = net.focus(0)(x)
    for ox in range(X):
        for oy in range(Y):
            col = np.array([padded[ox + kx, oy + ky, z] for z in range(2) for kx in range(3) for ky in range(2)])
            np.testing.assert_allclose(conv_m @ col, ours[ox, oy], rtol=1e-12, atol=1e-12)
    channel_major = np.concatenate([ours[:, :, z].ravel() for z in range(Z)])  # z·X·Y + x·Y + y
    np.testing.assert_allclose(channel_major @ dense_m, net(x), rtol=1e-12, atol=1e-12)


def test_bad_neuroflow_json_is_refused(tmp_path):
    net = small()
    p = tmp_path / "w.json"
    p.write_text(json.dumps([{"rows": 2, "cols": 2, "precision": "double", "data": [1, 2, 3]}]))
    with pytest.raises(ValueError, match="matrix 0: data must hold rows·cols = 4 numbers, got 3"):
        read_neuroflow_json(p)
    p.write_text(json.dumps([{"rows": 1, "cols": 1, "precision": "quad", "data": [1]}]))
    with pytest.raises(ValueError, match="precision must be 'double' or 'single'"):
        read_neuroflow_json(p)
    p.write_text("[{]")
    with pytest.raises(ValueError, match="not a NeuroFlow JSON weight file"):
        read_neuroflow_json(p)
    with pytest.raises(ValueError, match="the network has 4 weight layers, got 1 matrices"):
        set_neuroflow_weights(net, [np.zeros((3, 27))])
    m = neuroflow_matrices(net)
    m[2] = m[2].T
    with pytest.raises(ValueError, match=r"matrices\[2\]: d2: \(inputs\) × \(neurons\) needs 50 × 5, got 5 × 50"):
        set_neuroflow_weights(net, m)
    biased = Network([Dense(3, Tanh, dim_in=4, bias=True), SquaredError()], Settings(verbose=False))
    with pytest.raises(ValueError, match=r"NeuroFlow JSON: layout\[0\] \(d0\) has a learnable bias, which NeuroFlow does not have"):
        write_neuroflow_json(biased, tmp_path / "b.json")
    pooled = Network([Convolution((4, 4, 1), 0, 1, 1, 1, ReLU), nf.MaxPool(2), Dense(2, Linear), SquaredError()], Settings(verbose=False))
    with pytest.raises(ValueError, match=r"NeuroFlow JSON: layout\[1\] \(mp1\) is a maxpool layer, which NeuroFlow does not have"):
        neuroflow_matrices(pooled)
