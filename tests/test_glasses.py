"""The article's glasses experiment: its layout, init and settings on its 20 avatars."""

import numpy as np
import pytest
from PIL import Image

from neuroflow import Convolution, Dense, Momentum, Network, ReLU, Settings, SoftmaxLogEntropy, WeightBreeder

# The article's init is N(0, 0.1), N(0, 1), N(0, 0.1), N(0, 1), N(1e-4, 1e-4) with an
# unseeded generator. With one filter per layer a draw can leave a ReLU layer dead on
# every pixel, and then nothing learns (seeds 1, 3, 5, 7, 9, 10 of 0–11 here; see the
# README). Seed 2 is a draw whose layers are alive; everything else is the article's.
SEED = 2


def article_net(iterations=250):
    c0 = Convolution(dim_in=(400, 400, 3), padding=1, field=3, stride=1, filters=1, activator=ReLU)
    c1 = Convolution(dim_in=c0.dim_out, padding=1, field=3, stride=1, filters=1, activator=ReLU)
    c2 = Convolution(dim_in=c1.dim_out, padding=1, field=4, stride=2, filters=1, activator=ReLU)
    c3 = Convolution(dim_in=c2.dim_out, padding=1, field=3, stride=1, filters=1, activator=ReLU)
    layout = [c0, c1, c2, c3, Dense(2, ReLU), SoftmaxLogEntropy()]
    weights = WeightBreeder.normal({0: (0, 0.1), 1: (0, 1), 2: (0, 0.1), 3: (0, 1), 4: (1e-4, 1e-4)}, seed=SEED)
    settings = Settings(learning_rate=lambda i, a: 1e-3, update_rule=Momentum(0.8), batch_size=20,
                        iterations=iterations, dtype=np.float64, verbose=False)
    return Network(layout, settings, weights=weights)


@pytest.fixture(scope="module")
def avatars(avatars_dir):
    xs, ys = [], []
    for label, cls in enumerate(["glasses", "noglasses"]):
        files = sorted((avatars_dir / cls).glob("*.png"))
        assert len(files) == 10, f"expected 10 avatars in {avatars_dir / cls}"
        for f in files:
            # Tensor3D convention: [x, y, channel]
            xs.append(np.asarray(Image.open(f).convert("RGB")).transpose(1, 0, 2))
            ys.append(label)
    return np.stack(xs), np.array(ys)


@pytest.fixture(scope="module")
def trained(avatars):
    xs, ys = avatars
    net = article_net()
    first = net.loss(xs, ys)
    run = net.train(xs, ys)
    return net, first, run


def test_layout_has_the_articles_weight_count():
    assert article_net().num_weights == 80061


def test_training_lowers_the_loss(trained):
    net, first, run = trained
    assert run.final_loss < 0.01 * run.losses[0]
    assert np.isfinite(run.losses).all()


def test_classifies_all_twenty_training_images(trained, avatars):
    net, _, _ = trained
    xs, ys = avatars
    probs = net(xs)
    assert probs.shape == (20, 2)
    assert (probs.argmax(axis=1) == ys).all()
    # focus shows what c0 learned: one 400×400 map per image
    assert net.focus(0)(xs[0]).shape == (400, 400, 1)
