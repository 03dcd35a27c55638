"""The command line: the demo end to end, info, exit codes and messages, CIFAR-10 quickly."""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import neuroflow as nf
from conftest import data_root
from neuroflow.apps.cifar import SPEED_WIDTHS
from neuroflow.cli import main
from neuroflow.io.datasets import cifar10


def valid_png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.verify()
    return True


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--iterations", "3", "--attempts", "1", "--seed", "8"]) == 0
    text = capsys.readouterr().out
    assert "Layout" in text and "training accuracy" in text and "held-out accuracy on 100 new avatars" in text
    assert "changed: 3 iterations instead of the article's 250" in text
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert "focus.png" in pngs and "loss.png" in pngs
    for stage in ("before", "after"):
        for layer in range(4):
            assert f"focus/{stage}/c{layer}-sample0-glasses.png" in pngs
            assert f"focus/{stage}/c{layer}-sample1-noglasses.png" in pngs
    assert all(valid_png(out / p) for p in pngs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 3 and summary["init_seed"] == 8 and 0 <= summary["held_out_accuracy"] <= 1
    net = nf.load(out / "glasses.safetensors")
    assert net.iteration == 3 and net.dim_in == (64, 64, 3) and net.num_weights == 27 + 9 + 16 + 9 + 2 * 32 * 32
    x = np.random.default_rng().uniform(0, 1, (2, 64, 64, 3))
    assert net(x).shape == (2, 2)


def test_demo_reads_an_image_folder(tmp_path, capsys):
    from neuroflow.avatars import save_avatar_folders

    data = save_avatar_folders(tmp_path / "faces", n_pairs=3, size=(32, 32), seed=int.from_bytes(os.urandom(2), "little"))
    assert main(["demo", "--data", str(data), "--out", str(tmp_path / "o"), "--iterations", "2", "--attempts", "1"]) == 0
    assert "6 images from" in capsys.readouterr().out
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["images"] == 6 and "held_out_accuracy" not in summary


@pytest.mark.parametrize("argv, message", [
    (["demo", "--iterations", "0"], "argument --iterations: expected a positive whole number, got 0"),
    (["demo", "--seed", "x"], "argument --seed: expected a whole number ≥ 0, got 'x'"),
    (["demo", "--backend", "tpu"], "argument --backend: invalid choice: 'tpu'"),
    (["train", "cifar10", "--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
    (["train", "cifar10", "--translate", "-2"], "argument --translate:"),
    (["train", "cifar10", "--flip", "sometimes"], "argument --flip: invalid choice: 'sometimes'"),
    (["train", "mnist"], "invalid choice: 'mnist'"),
    (["fly"], "invalid choice: 'fly'"),
    ([], "the following arguments are required"),
])
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_data_exits_1_with_a_message(tmp_path, capsys):
    assert main(["demo", "--data", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("neuroflow: error: --data: folder not found:") and "Traceback" not in err
    (tmp_path / "half" / "glasses").mkdir(parents=True)
    assert main(["demo", "--data", str(tmp_path / "half")]) == 1
    assert "has no noglasses/ folder" in capsys.readouterr().err
    assert main(["train", "cifar10", "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "CIFAR-10 not found" in err and "--data PATH" in err and "Traceback" not in err


def test_presets_come_from_one_table(tmp_path, capsys):
    """The command line's --preset choices are the PRESETS table's keys; --width is refused by
    name for the presets without the speed net's widths, before any work."""
    from neuroflow.apps.cifar import PRESETS
    from neuroflow.apps.cli import PRESET_NAMES

    assert sorted(PRESET_NAMES) == sorted(PRESETS)
    assert sorted(n for n, p in PRESETS.items() if p.has_widths) == ["speed", "speed-sgd"]
    out = tmp_path / "o"
    assert main(["train", "cifar10", "--preset", "dense", "--width", "2", "--data", str(tmp_path), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "--width: only the presets of the speed net have widths (speed, speed-sgd), not dense" in err and not out.exists()
    # one past the last width is refused by name, with the widths there are, before the data is looked for
    assert main(["train", "cifar10", "--width", str(len(SPEED_WIDTHS)), "--data", str(tmp_path / "none"),
                 "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"--width: expected an index 0..{len(SPEED_WIDTHS) - 1} of the speed net's widths" in err
    assert str(SPEED_WIDTHS[-1]) in err and "not found" not in err and not out.exists()


def test_module_entry_point_info_and_exit_codes():
    # the neuroflow these tests import: the installed one, or a source tree on PYTHONPATH
    here = str(Path(nf.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    info = subprocess.run([sys.executable, "-m", "neuroflow", "info"], capture_output=True, text=True, env=env, timeout=60)
    assert info.returncode == 0, info.stderr
    assert f"neuroflow {nf.__version__}" in info.stdout and "CPU engine threads:" in info.stdout
    assert "GPU adapter" in info.stdout  # adapters found, or why there are none
    bad = subprocess.run([sys.executable, "-m", "neuroflow", "demo", "--iterations", "-3"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "expected a positive whole number" in bad.stderr


@pytest.mark.parametrize("preset", ["fast", "neuroflow", "speed", "speed-sgd", "dense"])
def test_train_cifar10_quickly(preset, tmp_path, capsys, monkeypatch):
    archive = data_root() / "cifar-10-binary.tar.gz"
    if not archive.is_file():
        pytest.skip(f"CIFAR-10 not found at {archive} (set NEUROFLOW_DATA to the shared datasets folder)")
    out = tmp_path / preset
    argv = ["train", "cifar10", "--data", str(archive), "--preset", preset, "--limit", "24", "--batch-size", "8",
            "--epochs", "2", "--out", str(out), "--threads", "2"]
    from neuroflow.apps import plots

    starts, curve = {}, plots.loss_curve_png

    def recording(values, path, *args, **kw):  # the curve as drawn, with the number its x axis starts at
        starts[Path(path).name] = kw.get("start")
        return curve(values, path, *args, **kw)

    monkeypatch.setattr(plots, "loss_curve_png", recording)
    assert main(argv) == 0
    assert starts == {"loss.png": 1, "accuracy.png": 1}, "iterations and epochs are numbered from 1 on the curves"
    text = capsys.readouterr().out
    assert "epoch 1/2: test accuracy" in text and "epoch 2/2: test accuracy" in text
    for name in ("loss.png", "confusion.png", "accuracy.png", "predictions.png"):
        assert valid_png(out / name)
    assert (out / "focus.png").exists() == (preset != "dense") and (preset == "dense" or valid_png(out / "focus.png"))
    losses = np.loadtxt(out / "losses.txt")
    assert np.isfinite(losses).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 6 and summary["train_images"] == summary["test_images"] == 24
    assert [e["epoch"] for e in summary["epochs_done"]] == [1, 2]
    assert summary["widths"] == ([32, 64, 128] if preset.startswith("speed") else None)  # the default, named
    net = nf.load(out / "model.safetensors", learning_rate=0.01)
    assert net.iteration == 6 and net.dim_in == (32, 32, 3)
    # the article's experiments say how well the net learned its training images
    if preset in ("neuroflow", "dense"):
        xs, ys, _ = cifar10(archive, "train")
        want = float(np.mean(net(xs[:24]).argmax(axis=1) == ys[:24]))
        assert summary["train_accuracy"] == want and f"(training accuracy {want:.2%})" in text
    else:
        assert summary["train_accuracy"] is None and "training accuracy" not in text
    assert nf.load(out / "checkpoint.safetensors", learning_rate=0.01).iteration == 6
    assert len(np.loadtxt(out / "losses.txt")) == 6


def test_a_validation_set_is_held_out_and_stops_early(tmp_path, capsys):
    """--validation N trains on the other images and reports the held-out ones after every
    epoch; --patience K stops once their accuracy has not improved for K epochs. Bad
    combinations are refused by name before any training."""
    archive = data_root() / "cifar-10-binary.tar.gz"
    if not archive.is_file():
        pytest.skip(f"CIFAR-10 not found at {archive} (set NEUROFLOW_DATA to the shared datasets folder)")
    base = ["train", "cifar10", "--data", str(archive), "--preset", "fast", "--limit", "24", "--batch-size", "8",
            "--threads", "2"]
    out = tmp_path / "v"
    assert main([*base, "--validation", "8", "--epochs", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_images"] == 16 and summary["validation_images"] == 8 and summary["iterations"] == 6
    assert [h["epoch"] for h in summary["validation"]] == [1, 2, 3]
    assert all(0 <= h["accuracy"] <= 1 and np.isfinite(h["loss"]) for h in summary["validation"])
    assert all(f"epoch {e}: validation loss" in text for e in (1, 2, 3))
    # the accuracy of 8 images can rise at most 8 times, so patience 1 must stop a 20-epoch run by epoch 10
    out = tmp_path / "p"
    assert main([*base, "--validation", "8", "--patience", "1", "--epochs", "20", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    history = summary["validation"]
    assert summary["stopped_by"] == "early_stop" and len(history) <= 10 and summary["iterations"] == 2 * len(history)
    accs = [h["accuracy"] for h in history]
    assert accs[-1] <= max(accs[:-1]) and all(a < b for a, b in zip(accs[:-2], accs[1:-1])), accs
    assert f"stopped early after epoch {len(history)}" in text
    for argv, message in (
        ([*base, "--patience", "2"], "--patience: early stopping watches a validation set; give --validation N too"),
        ([*base, "--validation", "8", "--time-budget", "30"], "--validation: not with --time-budget"),
        ([*base, "--validation", "24"], "--validation 24: leaves no training image of the 24 loaded"),
    ):
        assert main([*argv, "--out", str(tmp_path / "bad")]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
        assert not (tmp_path / "bad" / "summary.json").exists()


def test_augmentation_flags_reach_the_training(tmp_path, capsys):
    """--flip/--translate/--cutout replace parts of the preset's augmentation (any preset);
    the trained model file carries what was used."""
    from neuroflow.apps.cifar import SPEED_AUGMENT, augment_of
    from neuroflow.nn.augment import Augment

    def args(**kw):
        return argparse.Namespace(**{"flip": None, "translate": None, "cutout": None, **kw})

    assert augment_of(args(), "neuroflow") is None  # no flag: the preset decides
    assert augment_of(args(flip="random"), "neuroflow") == Augment(flip="random")
    assert augment_of(args(flip="none"), "speed") == Augment(translate=SPEED_AUGMENT.translate, flip="none")
    assert augment_of(args(translate=0, cutout=8), "speed") == Augment(flip=SPEED_AUGMENT.flip, cutout=8)
    archive = data_root() / "cifar-10-binary.tar.gz"
    if not archive.is_file():
        pytest.skip(f"CIFAR-10 not found at {archive} (set NEUROFLOW_DATA to the shared datasets folder)")
    out = tmp_path / "aug"
    argv = ["train", "cifar10", "--data", str(archive), "--preset", "fast", "--limit", "16", "--batch-size", "8",
            "--epochs", "1", "--out", str(out), "--threads", "2", "--flip", "random", "--translate", "3", "--cutout", "4"]
    assert main(argv) == 0
    capsys.readouterr()
    assert nf.load(out / "model.safetensors").settings.augment == Augment(translate=3, flip="random", cutout=4)


@pytest.mark.parametrize("preset", ["speed", "speed-sgd"])
def test_the_speed_recipe_trains_on_the_gpu(preset, tmp_path, capsys):
    """--backend gpu runs the speed recipes (frozen whitening conv, BatchNorm, GELU, pooling,
    label smoothing, Nesterov with decay or Muon with normalised filters, the preset's TTA)
    to the CPU's numbers: a tiny run on whatever adapter there is."""
    from gpu_parity import require_gpu
    from neuroflow.apps.cifar import PRESETS

    require_gpu()
    archive = data_root() / "cifar-10-binary.tar.gz"
    if not archive.is_file():
        pytest.skip(f"CIFAR-10 not found at {archive} (set NEUROFLOW_DATA to the shared datasets folder)")
    nets = {}
    for backend in ("gpu", "cpu"):
        out = tmp_path / backend
        assert main(["train", "cifar10", "--data", str(archive), "--preset", preset, "--width", "0", "--limit", "16",
                     "--batch-size", "8", "--epochs", "1", "--backend", backend, "--out", str(out)]) == 0
        assert f"with {PRESETS[preset].tta} TTA" in capsys.readouterr().out
        summary = json.loads((out / "summary.json").read_text())
        assert summary["iterations"] == 2 and np.isfinite(summary["test_loss"]) and backend in summary["backend"]
        assert summary["widths"] == [16, 32, 64]
        nets[backend] = nf.load(out / "model.safetensors", learning_rate=0.01)
    assert len(nets["gpu"].weights) == len(nets["cpu"].weights)
    for i, (g, c) in enumerate(zip(nets["gpu"].weights, nets["cpu"].weights)):
        err = np.abs(g.astype(np.float64) - c).max() / np.abs(c).max()
        assert err < 1e-3, f"weights[{i}] {g.shape}: GPU and CPU differ by {err:.2g} of the largest value"


@pytest.mark.parametrize("preset", ["speed", "speed-sgd"])
def test_a_time_budget_is_honoured(preset, tmp_path):
    """--time-budget counts from the process start: the whole command (start-up, data, the
    measured warm-up, training and the final evaluation) ends within it; speed's batches are
    timed on steps of PROBE_BATCH images and scaled."""
    archive = data_root() / "cifar-10-binary.tar.gz"
    if not archive.is_file():
        pytest.skip(f"CIFAR-10 not found at {archive} (set NEUROFLOW_DATA to the shared datasets folder)")
    out = tmp_path / "budget"
    budget = 25
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "neuroflow", "train", "cifar10", "--data", str(archive), "--preset", preset,
                        "--limit", "600", "--time-budget", str(budget), "--out", str(out), "--threads", "2"],
                       capture_output=True, text=True, env=ENV, timeout=120)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert took <= budget + 1.0, f"the command took {took:.1f} s for a budget of {budget} s"
    assert summary["seconds"] <= budget and summary["iterations"] >= 1 and summary["time_budget"] == budget
    assert tuple(summary["widths"]) in SPEED_WIDTHS, "the summary names the width the budget chose"
    # speed: the largest of its batches (at most the 600 images) that leaves 150 steps, else 250
    assert summary["batch_size"] in {"speed": (250, 500, 600), "speed-sgd": (64,)}[preset]
    assert "fitted to 25 s" in r.stdout
    assert " of 25 s" in r.stdout, "a progress line after each segment of a budgeted run"


# ---------------------------------------------------------------- bad input and hostile surroundings

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(nf.__file__).resolve().parent.parent),
                                                     os.environ.get("PYTHONPATH", "")])}


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("neuroflow")]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("neuroflow: error: "), err
    return lines[0]


def _fake_cifar(path: Path, rng: np.random.Generator, n: int = 4) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            rec = rng.integers(0, 256, (n, 3073), dtype=np.uint8)
            rec[:, 0] = rng.integers(0, 10, n)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = rec.size
            tar.addfile(info, io.BytesIO(rec.tobytes()))
    return path


@pytest.mark.parametrize("command", [["demo"], ["train", "cifar10"]])
def test_out_must_be_a_folder(tmp_path, capsys, command):
    f = tmp_path / "results.txt"
    f.write_text("precious")
    assert main([*command, "--out", str(f), "--iterations" if command == ["demo"] else "--limit", "1"]) == 1
    line = _one_line_error(capsys.readouterr().err)
    assert f"--out: {f} is a file, not a folder" in line
    assert main([*command, "--out", str(f / "sub")]) == 1
    assert f"{f} is a file, not a folder" in _one_line_error(capsys.readouterr().err)
    assert f.read_text() == "precious"


def test_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "o"
    assert main(["demo", "--out", str(out), "--iterations", "1", "--attempts", "1"]) == 1
    line = _one_line_error(capsys.readouterr().err)
    assert "No space left on device (free some space, or write elsewhere with --out)" in line
    assert f"{out}{os.sep}" in line  # names the file it could not write
    assert not [p for p in out.rglob("*") if p.is_file()]  # nothing half-written


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE and SIGXFSZ as on Linux")
def test_a_file_size_limit_is_one_line(tmp_path):
    # A real write failure, not a mock: files may not grow past 4 KB (EFBIG, like a full disk).
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); "
            "from neuroflow.cli import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "demo", "--out", str(tmp_path / "o"), "--iterations", "1",
                        "--attempts", "1"], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "File too large (a file size limit: see ulimit -f)" in _one_line_error(r.stderr)


# the bare environment (as `env -i`): --help's whole text stays buffered until argparse's
# SystemExit, and the flush at exit had printed "Exception ignored … BrokenPipeError" (exit 120)
@pytest.mark.parametrize("argv, bare", [(["info"], False), (["--help"], False), (["--help"], True),
                                        (["demo", "--iterations", "1", "--attempts", "1"], False)])
def test_a_closed_pipe_ends_quietly(tmp_path, argv, bare):
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ENV["PYTHONPATH"]} if bare else ENV
    if argv[0] == "demo":
        argv = [*argv, "--out", str(tmp_path / "o")]
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first line is written
    try:
        p = subprocess.run([sys.executable, "-m", "neuroflow", *argv], stdout=w, stderr=subprocess.PIPE, text=True,
                           env=env, timeout=300)
    finally:
        os.close(w)
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr and "Exception ignored" not in p.stderr, p.stderr
    assert p.returncode in ((0, 141) if argv == ["--help"] else (141,))


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell pipeline")
def test_info_piped_into_head():
    p = subprocess.run(f"'{sys.executable}' -m neuroflow info | head -1", shell=True, capture_output=True, text=True,
                       env=ENV, timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("neuroflow ") and p.stdout.count("\n") == 1
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr


def test_a_closed_stdout_in_process(monkeypatch, capsys):
    class Gone:
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Gone())
    assert main(["info"]) == 141


def test_threads_are_bounded(capsys, monkeypatch):
    from neuroflow.apps import cifar

    def must_not_run(args):
        raise AssertionError(f"ran with --threads {args.threads}")  # rather than hang in the test

    monkeypatch.setattr(cifar, "run_cifar10", must_not_run)
    with pytest.raises(SystemExit) as e:
        main(["train", "cifar10", "--threads", "100000000"])  # would spawn 10^8 threads: minutes
    assert e.value.code == 2
    assert "argument --threads: expected a whole number from 1 to 1024, got 100000000" in capsys.readouterr().err


def test_bad_input_never_gives_a_traceback(tmp_path, capsys, rng):
    from hostile import png_chunk, png_header

    archive = _fake_cifar(tmp_path / "cifar-10-binary.tar.gz", rng)
    (tmp_path / "garbage.safetensors").write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    (tmp_path / "folder.safetensors").mkdir()
    (tmp_path / "not.tar.gz").write_bytes(b"\x1f\x8b" + rng.integers(0, 256, 100, dtype=np.uint8).tobytes())
    for cls in ("glasses", "noglasses"):
        (tmp_path / "faces" / cls).mkdir(parents=True)
        (tmp_path / "bombs" / cls).mkdir(parents=True)
        (tmp_path / "faces" / cls / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        (tmp_path / "bombs" / cls / "a.png").write_bytes(png_header(9000, 9000) + png_chunk(b"IDAT", b"x") + png_chunk(b"IEND", b""))
    train = ["train", "cifar10", "--limit", "2", "--batch-size", "2", "--out", str(tmp_path / "t")]
    cases = [
        (["demo", "--data", str(archive)], "--data: folder not found"),
        (["demo", "--data", str(tmp_path / "faces")], "cannot read image"),
        (["demo", "--data", str(tmp_path / "bombs")], "9000x9000 = 81,000,000 pixels, more than the limit"),
        ([*train, "--data", str(tmp_path / "not.tar.gz")], "as a .tar.gz archive"),
        ([*train, "--data", str(archive), "--resume", str(tmp_path / "garbage.safetensors")], "garbage.safetensors"),
        ([*train, "--data", str(archive), "--resume", str(tmp_path / "folder.safetensors")], "folder.safetensors"),
        ([*train, "--data", str(archive), "--resume", str(tmp_path / "none.safetensors")], "none.safetensors"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        assert message in _one_line_error(capsys.readouterr().err), argv


def test_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch):
    from neuroflow.apps import glasses

    def greedy(**kwargs):
        raise MemoryError()

    monkeypatch.setattr(glasses, "run_demo", greedy)
    assert main(["demo", "--out", str(tmp_path / "o")]) == 1
    assert "out of memory" in _one_line_error(capsys.readouterr().err)


def test_tta_flag_chooses_the_final_views(tmp_path, capsys):
    """--tta picks the final evaluation's test-time views (and --no-tta none); the summary's
    accuracy is the saved model's on those views; conflicting flags are refused first."""
    from neuroflow.apps.cifar import PRESETS, VIEWS, tta_of
    from neuroflow.io.datasets import cifar10

    def args(**kw):
        return argparse.Namespace(**{"tta": None, "no_tta": False, **kw})

    assert tta_of(args(), PRESETS["speed"]) == "flip_translate" and tta_of(args(), PRESETS["fast"]) is None
    assert tta_of(args(tta="flip_translate"), PRESETS["fast"]) == "flip_translate"
    assert tta_of(args(tta="none"), PRESETS["speed"]) is None and tta_of(args(no_tta=True), PRESETS["speed"]) is None
    assert VIEWS == {None: 1, "flip": 2, "flip_translate": 6}
    assert main(["train", "cifar10", "--data", str(tmp_path / "absent"), "--no-tta", "--tta", "flip",
                 "--out", str(tmp_path / "x")]) != 0
    assert "--no-tta and --tta flip: give one of them" in capsys.readouterr().err
    assert not (tmp_path / "x").exists(), "refused before any work"
    archive = data_root() / "cifar-10-binary.tar.gz"
    if not archive.is_file():
        pytest.skip(f"CIFAR-10 not found at {archive} (set NEUROFLOW_DATA to the shared datasets folder)")
    out = tmp_path / "tta"
    assert main(["train", "cifar10", "--data", str(archive), "--preset", "fast", "--limit", "16", "--batch-size", "8",
                 "--epochs", "1", "--out", str(out), "--threads", "2", "--tta", "flip_translate"]) == 0
    assert "with flip_translate TTA" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    tx, ty, _ = cifar10(archive, "test")
    net = nf.load(out / "model.safetensors")
    assert summary["tta"] == "flip_translate" and summary["test_accuracy_without_tta"] is None
    assert summary["test_accuracy"] == net.evaluate(tx[:16], ty[:16], tta="flip_translate").accuracy


def test_time_budget_width_choice():
    """The width whose epochs are nearest TARGET_EPOCHS on a log scale, the cheaper on a tie
    (the epochs each width tried fits, cheapest first)."""
    from neuroflow.apps.cifar import SPEED_WIDTHS, TARGET_EPOCHS, choose_width

    w = SPEED_WIDTHS
    assert TARGET_EPOCHS == 10
    assert choose_width({w[0]: 40.0, w[1]: 16.0, w[2]: 10.5, w[3]: 6.8}) == w[2]  # 600 s here
    assert choose_width({w[0]: 60.0, w[1]: 30.0, w[2]: 19.0, w[3]: 13.0, w[4]: 8.5}) == w[4]  # 8.5 is nearer than 13
    assert choose_width({w[0]: 30.0, w[1]: 12.4, w[2]: 6.7}) == w[1]  # 12.4 is nearer than 6.7
    assert choose_width({w[0]: 20.0, w[1]: 5.0}) == w[0]  # ×2 either way: the cheaper
    assert choose_width({w[0]: 3.0}) == w[0] and choose_width({w[0]: 5.0, w[1]: 2.0}) == w[0]
    assert choose_width({w[0]: 0.0, w[1]: -1.0}) == w[0], "nothing fits: the cheapest (the plan then refuses the budget)"
    assert choose_width({None: 1.0}) is None  # presets without widths


def test_time_budget_batch_choice():
    """The speed recipe's budget takes the largest batch that leaves MIN_STEPS steps, else the
    smallest."""
    from neuroflow.apps.cifar import MIN_STEPS, PRESETS, choose_batch

    batches = PRESETS["speed"].budget_batches
    assert batches == (2000, 1000, 500, 250) and MIN_STEPS == 150
    images = {60: 110_000, 600: 650_000, 1: 1000}  # what a budget trains here, roughly
    steps = {s: (lambda b, n=n: n // b) for s, n in images.items()}
    assert choose_batch(steps[600], batches) == 2000  # 325 steps
    assert choose_batch(steps[60], batches) == 500  # 55 of 2000, 110 of 1000, 220 of 500
    assert choose_batch(steps[1], batches) == 250  # none leaves 150: the smallest
    assert choose_batch(lambda b: MIN_STEPS if b == 1000 else 0, batches) == 1000  # the bound counts


def test_a_budget_times_its_pick_at_the_batch_and_chooses_the_views(monkeypatch):
    """The budget screens the widths on steps of PROBE_BATCH scaled to the batch; when it
    takes a larger batch it times the pick at that batch and corrects every width by the
    same ratio before choosing again; the speed preset's six test views become flips where
    the four more would cost over EXTRA_VIEWS_SHARE of the budget. Step times here follow
    a + b·batch per width, made from 2026-12-03's 600 s run (scaled steps of 2000 were
    10–20 % too slow), so no clock decides the test."""
    from neuroflow.apps import cifar

    w = cifar.SPEED_WIDTHS
    screened = dict(zip(w, (0.804, 1.436, 2.394, 3.633, 5.589)))  # steps of 512 scaled to 2000, as logged
    true = dict(zip(w, (0.70, 1.25, 1.95, 3.15, 4.90)))  # steps of 2000
    calls = []

    def step_seconds(preset, args, data, batch, kw, augment, timed):
        widths = kw["widths"]
        k = (true[widths] - screened[widths] * 512 / 2000) / (2000 - 512)
        calls.append((widths, batch))
        return true[widths] + k * (batch - 2000)

    monkeypatch.setattr(cifar, "_step_seconds", step_seconds)
    data = cifar.Data(np.empty((50_000, 1)), np.empty(50_000), np.empty((10_000, 1)), np.empty(10_000), [])

    def plan(budget, **kw):
        calls.clear()
        args = argparse.Namespace(**{"time_budget": budget, "width": None, "batch_size": None, "tta": None, "no_tta": False,
                                     "flip": None, "translate": None, "cutout": None, "preset": "speed", "seed": 0,
                                     "backend": "cpu", **kw})
        return cifar._plan(args, cifar.PRESETS["speed"], data, time.monotonic(), 2000)

    p = plan(600)  # screened: 29, 16 and 9.5 epochs (then stop: wider ones fit fewer still)
    assert [c for c in calls if c[1] == 512] == [(w[0], 512), (w[1], 512), (w[2], 512)]
    assert p["batch"] == 2000 and p["timed_at"] == (w[2], 2000) and calls[-1] == (w[2], 2000)
    assert p["kw"] == {"widths": w[2]} and p["step_seconds"] == pytest.approx(1.95)
    assert p["measured"][w[1]] == pytest.approx(1.436 * 1.95 / 2.394, abs=1e-4), "every width corrected by the pick's ratio"
    assert 11 <= p["epochs"] <= 12 and p["tta"] == "flip_translate"
    assert plan(600, tta="flip")["tta"] == "flip", "a given --tta stands"
    assert plan(600, no_tta=True)["tta"] is None
    assert plan(600, batch_size=2000)["timed_at"] == (w[2], 2000), "a given batch is timed too"
    p = plan(60)
    assert p["batch"] == 500 and p["timed_at"] is None and all(b == 512 for _, b in calls), "500 ≤ PROBE_BATCH: no timing at 500"
    assert p["kw"] == {"widths": w[0]} and p["tta"] == "flip", "6 s more of evaluation in 60 s: flips only"
    # where the scaled steps put (32, 64, 128) nearest 10 epochs and the timed ones (48, 96, 192)
    screened.update(zip(w, (0.98, 2.15, 2.9, 4.4, 6.5)))
    true.update(zip(w, (0.75, 1.65, 2.23, 3.4, 5.0)))
    p = plan(600)
    assert p["timed_at"] == (w[1], 2000) and p["kw"] == {"widths": w[2]}, "corrected, one width wider"


def test_a_budget_refits_the_one_cycle_schedule_whole():
    """The pace re-fit stretches the schedule to the new step count and keeps the preset's
    start, peak, end and warm-up fraction (it had reset the warm-up to 0.2)."""
    from neuroflow.apps.cifar import refit_schedule
    from neuroflow.nn import schedules

    for warmup in (0.23, 0.2, 0.0):
        lr = schedules.triangular(1.5, 400, warmup=warmup, start=0.3, end=0.105)
        for steps in (123, 400, 1000):
            got = refit_schedule(lr, steps)
            want = schedules.triangular(1.5, steps, warmup=warmup, start=0.3, end=0.105)
            assert got.points == want.points, (warmup, steps, got.points)
    constant = schedules.constant(0.1)
    assert refit_schedule(constant, 50) is constant
