"""neuroflow: train and inspect convolutional nets from Python, after the NeuroFlow library
of the article "Convolutional Nets". A Rust core computes on the CPU; WGSL shaders on any
GPU through wgpu-py.

    from neuroflow import Convolution, Dense, SoftmaxLogEntropy, Network, Settings, ReLU

The package is laid out by role: ``neuroflow.nn`` (layers, network, training, optimizers),
``neuroflow.engines`` (the CPU engine in Rust, the GPU engine, a NumPy reference),
``neuroflow.io`` (images, data sets, model files, NeuroFlow JSON) and ``neuroflow.apps``
(the command line, the demo, the experiments, plots). The submodules users reach for have
short names that load on first use, so ``import neuroflow`` stays fast and pulls in wgpu or
Pillow only when they are needed: ``neuroflow.gpu``, ``neuroflow.datasets``,
``neuroflow.image``, ``neuroflow.modelfile``, ``neuroflow.metrics``, ``neuroflow.plots``, …
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

from . import _core
from .io.checkpoint import checkpoint_to
from .nn import schedules
from .nn.augment import Augment
from .nn.activators import GELU, Activator, LeakyReLU, Linear, ReLU, Sigmoid, SoftPlus, Square, Tanh
from .nn.breeders import WeightBreeder
from .nn.layers import AvgPool, BatchNorm, Convolution, Dense, Dropout, GlobalAvgPool, Layer, MaxPool, Residual
from .nn.lookahead import Lookahead
from .nn.losses import AbsCubicError, Loss, SoftmaxLogEntropy, SoftmaxLogMultEntropy, SquaredError
from .nn.network import Evaluation, Network, TrainingRun
from .nn.optim import Adam, AdamW, Momentum, Muon, Nesterov, UpdateRule, Vanilla
from .nn.persist import load
from .nn.settings import FiniteDifferences, LossFuncOutput, Settings, Waypoint

__version__ = _core.__version__

# Public short names -> where the module lives.
SUBMODULES = {
    "gpu": "neuroflow.engines.gpu",
    "datasets": "neuroflow.io.datasets",
    "image": "neuroflow.io.image",
    "modelfile": "neuroflow.io.modelfile",
    "nfjson": "neuroflow.io.nfjson",
    "checkpoint": "neuroflow.io.checkpoint",
    "metrics": "neuroflow.nn.metrics",
    "plots": "neuroflow.apps.plots",
    "avatars": "neuroflow.apps.avatars",
    "cli": "neuroflow.apps.cli",
}


class _ShortNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import neuroflow.datasets`` (and ``from neuroflow.gpu.device import …``) give
    the module at its real home: one module object under both names."""

    @staticmethod
    def _real(fullname: str) -> str | None:
        head, _, rest = fullname.partition("neuroflow.")[2].partition(".")
        if not fullname.startswith("neuroflow.") or head not in SUBMODULES:
            return None
        return SUBMODULES[head] + ("." + rest if rest else "")

    def find_spec(self, fullname, path=None, target=None):
        real = self._real(fullname)
        return importlib.util.spec_from_loader(fullname, self) if real else None

    def create_module(self, spec):
        module = importlib.import_module(self._real(spec.name))
        self._own = (module.__spec__, module.__loader__)
        return module

    def exec_module(self, module):
        # the import system stamped the short name's spec on the module: give back its own
        module.__spec__, module.__loader__ = self._own


if not any(isinstance(f, _ShortNames) for f in sys.meta_path):
    sys.meta_path.insert(0, _ShortNames())


def __getattr__(name: str):
    if name in SUBMODULES:
        module = importlib.import_module(f"neuroflow.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'neuroflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(SUBMODULES))


def set_num_threads(n: int) -> None:
    """Threads of the CPU engine (default: all cores, or NEUROFLOW_NUM_THREADS)."""
    _core.set_num_threads(int(n))


def num_threads() -> int:
    return _core.num_threads()


__all__ = [
    "AbsCubicError", "Activator", "Adam", "AdamW", "Augment", "AvgPool", "BatchNorm", "Convolution", "Dense", "Dropout",
    "Evaluation", "FiniteDifferences", "GELU", "GlobalAvgPool", "Layer", "LeakyReLU", "Linear", "Lookahead", "Loss", "LossFuncOutput",
    "MaxPool", "Momentum", "Muon", "Nesterov", "Network", "ReLU", "Residual", "Settings", "Sigmoid", "SoftPlus",
    "SoftmaxLogEntropy", "SoftmaxLogMultEntropy", "Square", "SquaredError", "Tanh", "TrainingRun", "UpdateRule",
    "Vanilla", "Waypoint", "WeightBreeder", "checkpoint_to", "load", "num_threads", "schedules", "set_num_threads",
]
