"""The command line: the demo end to end, info, exit codes and messages, CIFAR-10 quickly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import neuroflow as nf
from conftest import data_root
from neuroflow.cli import main


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


@pytest.mark.parametrize("preset", ["fast", "neuroflow"])
def test_train_cifar10_quickly(preset, tmp_path, capsys):
    archive = data_root() / "cifar-10-binary.tar.gz"
    if not archive.is_file():
        pytest.skip(f"CIFAR-10 not found at {archive} (set NEUROFLOW_DATA to the shared datasets folder)")
    out = tmp_path / preset
    argv = ["train", "cifar10", "--data", str(archive), "--preset", preset, "--limit", "24", "--batch-size", "8",
            "--epochs", "2", "--out", str(out), "--threads", "2"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "epoch 1/2: test accuracy" in text and "epoch 2/2: test accuracy" in text
    for name in ("loss.png", "confusion.png"):
        assert valid_png(out / name)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 6 and summary["train_images"] == summary["test_images"] == 24
    assert [e["epoch"] for e in summary["epochs_done"]] == [1, 2]
    net = nf.load(out / "model.safetensors", learning_rate=0.01)
    assert net.iteration == 6 and net.dim_in == (32, 32, 3)
    assert nf.load(out / "checkpoint.safetensors", learning_rate=0.01).iteration == 6
    assert len(np.loadtxt(out / "losses.txt")) == 6
