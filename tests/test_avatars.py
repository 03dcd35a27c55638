"""Tests for neuroflow.avatars: synthetic glasses / no-glasses faces."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from neuroflow import avatars, datasets


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray, list[str]]:
    seed = int.from_bytes(os.urandom(4), "little") >> 2
    print(f"make_avatars seed {seed}")  # shown on failure, so a bad draw can be replayed
    return avatars.make_avatars(n_pairs=12, size=(64, 48), seed=seed)


def test_shapes_range_and_labels(sample: tuple[np.ndarray, np.ndarray, list[str]]) -> None:
    images, labels, names = sample
    assert images.shape == (24, 64, 48, 3) and images.dtype == np.float32  # (N, X, Y, 3)
    assert images.flags["C_CONTIGUOUS"]
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert names == ["glasses", "noglasses"]
    np.testing.assert_array_equal(labels, [0, 1] * 12)
    assert labels.dtype == np.int64
    # faces really vary: no two pairs look alike
    flat = images[::2].reshape(12, -1)
    dist = np.abs(flat[:, None] - flat[None]).mean(axis=2)
    assert dist[~np.eye(12, dtype=bool)].min() > 0.02


def test_deterministic_by_seed(rng: np.random.Generator) -> None:
    seed = int(rng.integers(1 << 30))
    a = avatars.make_avatars(3, (40, 40), seed)[0]
    b = avatars.make_avatars(3, (40, 40), seed)[0]
    c = avatars.make_avatars(3, (40, 40), seed + 1)[0]
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.01


def test_pairs_differ_only_where_the_glasses_are(rng: np.random.Generator) -> None:
    for _ in range(15):
        with_g, without_g, (x0, y0, x1, y1) = avatars.draw_avatar_pair(rng, (80, 72))
        assert with_g.shape == without_g.shape == (80, 72, 3)
        diff = np.abs(with_g - without_g).max(axis=2)
        outside = diff.copy()
        outside[x0:x1, y0:y1] = 0
        assert outside.max() < 1e-6, "pixels outside the eye box changed"
        assert diff[x0:x1, y0:y1].mean() > 0.01, "the glasses left no mark"
        assert (y1 - y0) < 0.6 * 72  # a band around the eyes, not the whole face


def test_glasses_darken_the_eye_band(rng: np.random.Generator) -> None:
    # Frames are always darker than the skin, so within a pair the eye box always darkens
    # (only a little for thin frames on dark skin, much more on average).
    gains = []
    for _ in range(30):
        with_g, without_g, (x0, y0, x1, y1) = avatars.draw_avatar_pair(rng, (64, 64))
        gains.append(without_g[x0:x1, y0:y1].mean() - with_g[x0:x1, y0:y1].mean())
    assert min(gains) > 0.0
    assert np.mean(gains) > 0.01


def test_simple_unpaired_check_tells_classes_apart(sample: tuple[np.ndarray, np.ndarray, list[str]]) -> None:
    # Darkness of a fixed band where eyes usually are, over all images of each class:
    # a learnable signal, but with overlap between classes (not a trivial task).
    images, labels, _ = sample
    band = 1 - images[:, :, int(0.25 * 48) : int(0.55 * 48)].mean(axis=(1, 2, 3))
    assert band[labels == 0].mean() > band[labels == 1].mean()


def test_folders_round_trip_through_image_folder(tmp_path: Path, rng: np.random.Generator) -> None:
    seed = int(rng.integers(1 << 30))
    root = avatars.save_avatar_folders(tmp_path / "av", n_pairs=4, size=(32, 24), seed=seed)
    assert sorted(p.name for p in (root / "glasses").iterdir()) == [f"avatar{i:02d}.png" for i in range(4)]
    images, labels, names = datasets.image_folder(root)
    original, orig_labels, _ = avatars.make_avatars(4, (32, 24), seed)
    assert names == ["glasses", "noglasses"] and images.shape == (8, 32, 24, 3)
    order = np.concatenate([np.flatnonzero(orig_labels == 0), np.flatnonzero(orig_labels == 1)])
    np.testing.assert_array_equal(labels, orig_labels[order])
    np.testing.assert_allclose(images, original[order], atol=0.5 / 255 + 1e-6)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_pairs"):
        avatars.make_avatars(0)
    with pytest.raises(ValueError, match="size"):
        avatars.make_avatars(1, size=(8, 100))
    with pytest.raises(ValueError, match="seed"):
        avatars.make_avatars(1, seed=-1)
    with pytest.raises(ValueError, match="size"):
        avatars.save_avatar_folders(tmp_path / "x", size=(5, 5))
    assert not (tmp_path / "x").exists()
