"""Tests for neuroflow.plots, with matplotlib and with the Pillow fallback."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuroflow import plots

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(params=["matplotlib", "pillow"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "matplotlib" and not HAVE_MPL:
        pytest.skip("matplotlib is not installed; the Pillow fallback is tested instead")
    if request.param == "pillow":
        monkeypatch.setattr(plots, "_import_matplotlib", lambda: None)  # as if matplotlib were absent
    return request.param


def _check_png(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        colours = np.asarray(im.convert("RGB")).reshape(-1, 3)
    assert 200 <= w <= 3000 and 150 <= h <= 3000
    assert len(np.unique(colours, axis=0)) > 5  # something was drawn
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary files left
    return w, h


def test_loss_curve(tmp_path: Path, backend: str, rng: np.random.Generator) -> None:
    losses = np.exp(-np.arange(150) / 40) * 2 + rng.random(150) * 0.2
    losses[60] = np.nan  # a bad step shows as a gap, not a failure
    out = plots.loss_curve_png(losses, tmp_path / "loss.png", title="test run")
    assert out == tmp_path / "loss.png"
    _check_png(out)


def test_curve_x_starts_where_asked(tmp_path: Path, backend: str, rng: np.random.Generator, monkeypatch) -> None:
    """``start`` numbers the first value (epochs from 1, a resumed run from where it began): the
    plotted x values with matplotlib; with Pillow, the axis labels differ from a start of 0."""
    values = rng.uniform(0.3, 0.9, 12)
    if backend == "matplotlib":
        figures = []
        real = plots._save_figure

        def keep(fig, canvas, path):  # the figure as drawn, to read its line back
            figures.append(fig)
            return real(fig, canvas, path)

        monkeypatch.setattr(plots, "_save_figure", keep)
        _check_png(plots.loss_curve_png(values, tmp_path / "a.png", start=37))
        x = figures[0].axes[0].lines[0].get_xdata()
        assert np.array_equal(x, 37 + np.arange(12))
        lo, hi = figures[0].axes[0].get_xlim()
        assert 30 < lo <= 37 and 48 <= hi < 55
    else:
        _check_png(plots.loss_curve_png(values, tmp_path / "a.png", start=3700))
        with Image.open(tmp_path / "a.png") as a:
            shifted = np.asarray(a.convert("RGB"))
        (tmp_path / "a.png").unlink()
        _check_png(plots.loss_curve_png(values, tmp_path / "a.png", start=0))
        with Image.open(tmp_path / "a.png") as b:
            plain = np.asarray(b.convert("RGB"))
        assert shifted.shape == plain.shape and not np.array_equal(shifted, plain)


def test_loss_curve_short_and_flat(tmp_path: Path, backend: str, rng: np.random.Generator) -> None:
    value = float(rng.uniform(0.5, 5.0))
    _check_png(plots.loss_curve_png([value], tmp_path / "one.png"))
    (tmp_path / "one.png").unlink()
    _check_png(plots.loss_curve_png([value] * 4, tmp_path / "flat.png"))
    # flat but for the last bits (a tiny net whose loss stays put): ticks must stay apart
    (tmp_path / "flat.png").unlink()
    _check_png(plots.loss_curve_png([value] * 4 + [np.nextafter(value, 9.0)], tmp_path / "almost.png"))
    ticks = plots._nice_ticks(value, value + 1e-13)
    assert len(set(ticks)) == len(ticks) >= 2 and ticks[0] <= value < value + 1e-13 <= ticks[-1]


def test_confusion_matrix(tmp_path: Path, backend: str, rng: np.random.Generator) -> None:
    k = 10
    cm = rng.integers(0, 60, (k, k)) + np.diag(rng.integers(200, 900, k))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    w, h = _check_png(plots.confusion_matrix_png(cm, names, tmp_path / "cm.png"))
    assert w >= 300 and h >= 300


def test_confusion_matrix_small_with_empty_row(tmp_path: Path, backend: str, rng: np.random.Generator) -> None:
    cm = np.array([[int(rng.integers(1, 9)), 2], [0, 0]])
    _check_png(plots.confusion_matrix_png(cm, ["yes", "no"], tmp_path / "cm.png"))


def test_pillow_fallback_is_used_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    monkeypatch.setattr(plots, "_import_matplotlib", lambda: None)
    plots.loss_curve_png(rng.random(20) + 0.1, tmp_path / "l.png")
    with Image.open(tmp_path / "l.png") as im:
        assert im.size == (640, 400)  # the fallback's fixed canvas


def test_errors_write_nothing(tmp_path: Path, rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="non-empty 1-D"):
        plots.loss_curve_png([], tmp_path / "a.png")
    with pytest.raises(ValueError, match="no finite value"):
        plots.loss_curve_png([np.nan, np.inf], tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"\.png"):
        plots.loss_curve_png(rng.random(5), tmp_path / "a.jpg")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plots.loss_curve_png(rng.random(5), tmp_path / "missing" / "a.png")
    with pytest.raises(ValueError, match=r"square \(K, K\)"):
        plots.confusion_matrix_png(rng.integers(1, 5, (2, 3)), ["a", "b"], tmp_path / "c.png")
    with pytest.raises(ValueError, match="2 names"):
        plots.confusion_matrix_png(rng.integers(1, 5, (2, 2)), ["a"], tmp_path / "c.png")
    with pytest.raises(ValueError, match="non-negative"):
        plots.confusion_matrix_png(-rng.integers(1, 5, (2, 2)), ["a", "b"], tmp_path / "c.png")
    assert list(tmp_path.iterdir()) == []
