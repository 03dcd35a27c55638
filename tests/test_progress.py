"""Training progress: a tqdm bar with loss and images/s, or printed lines without it."""

import sys

from neuroflow import Dense, Linear, Network, Settings, SoftmaxLogEntropy, Tanh


def train(rng, iterations=30):
    net = Network([Dense(6, Tanh, dim_in=3), Dense(2, Linear), SoftmaxLogEntropy()], Settings(iterations=iterations, batch_size=4))
    net.train(rng.uniform(0, 1, (12, 3)), rng.integers(0, 2, 12))


def test_a_bar_when_asked_for(rng, capsys, monkeypatch):
    monkeypatch.setenv("NEUROFLOW_PROGRESS", "bar")
    train(rng)
    out, err = capsys.readouterr()
    assert "training: 100%" in err and "30/30" in err and "images/s" in err and "loss " in err
    assert "Layout" in out and "Iteration 30 (30/30)" in out and out.count("Iteration") == 1  # the last line only


def test_lines_without_tqdm_or_a_terminal(rng, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if it were not installed
    monkeypatch.setenv("NEUROFLOW_PROGRESS", "bar")
    train(rng, 100)
    out, err = capsys.readouterr()
    assert err == "" and "Iteration 1 (1/100)" in out and "Iteration 100 (100/100)" in out
    monkeypatch.delitem(sys.modules, "tqdm")
    monkeypatch.setenv("NEUROFLOW_PROGRESS", "auto")  # pytest's output is no terminal
    train(rng, 100)
    out, err = capsys.readouterr()
    assert err == "" and out.count("Iteration") > 10
