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


def rewrite(path, out, tensors=None, meta=None):
    """Write `path`'s tensors and metadata, changed as given, to `out` (a hand-made file)."""
    with safe_open(str(path), framework="np") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}
        m = dict(f.metadata())
    t.update(tensors or {})
    t = {k: v for k, v in t.items() if v is not None}
    m.update(meta or {})
    out.write_bytes(st_save(t, metadata=m))
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_gives_identical_outputs_and_training(dtype, rng, tmp_path):
    x, y = data(rng)
    net = small(dtype)
    net.train(x, y)
    path = net.save(tmp_path / "net.safetensors")
    back = nf.load(path)
    assert repr(back) == repr(net) and back.spec_json == net.spec_json
    assert [l.name for l in back.layout[:-1]] == ["first", "Convolution", "Dense", "Dense"]
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
    assert read(path).schedule_name == "test_a_schedule_is_not_stored_and_must_be_given_again.<locals>.halving"
    back = nf.load(path)
    np.testing.assert_array_equal(back(x), net(x))  # inference needs no schedule
    with pytest.raises(ValueError, match="learning-rate schedule .*halving.*learning_rate=schedule"):
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
    with pytest.raises(ModelFileError, match="format version 2 is newer than the version this neuroflow reads .1.; upgrade"):
        nf.load(rewrite(path, tmp_path / "v.safetensors", meta={"format_version": "2"}))
    with pytest.raises(ModelFileError, match="unknown format version 'one'"):
        nf.load(rewrite(path, tmp_path / "v.safetensors", meta={"format_version": "one"}))
    # a tensor missing (and its checksum too, so only the layout check can notice)
    sums = json.loads(_meta(path)["checksums"])
    del sums["state.1"]
    f = rewrite(path, tmp_path / "m1.safetensors", tensors={"state.1": None}, meta={"checksums": json.dumps(sums)})
    with pytest.raises(ModelFileError, match=r"missing \['state.1'\]"):
        nf.load(f)
    # a tensor of the wrong shape, with a checksum that fits it
    wrong = np.zeros((3, 3, 3, 4))
    sums = json.loads(_meta(path)["checksums"])
    sums["weights.0"] = hashlib.sha256(wrong.tobytes()).hexdigest()
    f = rewrite(path, tmp_path / "m2.safetensors", tensors={"weights.0": wrong}, meta={"checksums": json.dumps(sums)})
    with pytest.raises(ModelFileError, match=r"tensor 'weights.0' has shape \(3, 3, 3, 4\), the layout needs \(3, 3, 3, 3\)"):
        nf.load(f)
    layout = json.loads(_meta(path)["layout"])
    layout["layers"][0]["filters"] = 4
    with pytest.raises(ModelFileError, match=r"layout: layout\[1\]: Convolution expects dim_in \(9, 7, 3\)"):
        nf.load(rewrite(path, tmp_path / "m3.safetensors", meta={"layout": json.dumps(layout)}))
    # layout and engine spec that disagree
    layout = json.loads(_meta(path)["layout"])
    layout["layers"][0]["activator"]["bias"] = 0.5
    with pytest.raises(ModelFileError, match="engine spec's 'layers'"):
        nf.load(rewrite(path, tmp_path / "m3.safetensors", meta={"layout": json.dumps(layout)}))


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
    with pytest.raises(ModelFileError, match="metadata 'layout' is not valid JSON"):
        nf.load(rewrite(path, tmp_path / "p.safetensors", meta={"layout": payload}))
    with pytest.raises(ModelFileError, match="metadata 'settings' is not valid JSON"):
        nf.load(rewrite(path, tmp_path / "p.safetensors", meta={"settings": payload}))
    # names that would be code elsewhere are just unknown names here
    layout = json.loads(_meta(path)["layout"])
    layout["layers"][0]["activator"]["name"] = "__import__('os').system('touch pwned')"
    with pytest.raises(ModelFileError, match="layout: activator: unknown name"):
        nf.load(rewrite(path, tmp_path / "p.safetensors", meta={"layout": json.dumps(layout)}))
    settings = json.loads(_meta(path)["settings"])
    settings["update_rule"] = {"name": "builtins.eval"}
    with pytest.raises(ModelFileError, match="settings: update_rule: unknown name 'builtins.eval'"):
        nf.load(rewrite(path, tmp_path / "p.safetensors", meta={"settings": json.dumps(settings)}))
    assert not target.exists() and not (tmp_path / "pwned").exists()


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
    with pytest.raises(ValueError, match=r"matrices\[2\]: Dense: \(inputs\) × \(neurons\) needs 50 × 5, got 5 × 50"):
        set_neuroflow_weights(net, m)
