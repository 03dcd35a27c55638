"""neuroflow: train and inspect convolutional nets from Python, after the NeuroFlow library
of the article "Convolutional Nets". A Rust core computes on the CPU; WGSL shaders on any
GPU through wgpu-py.

    from neuroflow import Convolution, Dense, SoftmaxLogEntropy, Network, Settings, ReLU
"""

from . import _core
from .activators import Activator, LeakyReLU, Linear, ReLU, Sigmoid, SoftPlus, Square, Tanh
from .checkpoint import checkpoint_to
from .layers import Convolution, Dense
from .losses import AbsCubicError, Loss, SoftmaxLogEntropy, SoftmaxLogMultEntropy, SquaredError
from .modelfile import load
from .network import Network, TrainingRun
from .settings import FiniteDifferences, LossFuncOutput, Settings, Waypoint
from .updates import Momentum, Nesterov, Vanilla
from .weights import WeightBreeder

__version__ = _core.__version__


def set_num_threads(n: int) -> None:
    """Threads of the CPU engine (default: all cores, or NEUROFLOW_NUM_THREADS)."""
    _core.set_num_threads(int(n))


def num_threads() -> int:
    return _core.num_threads()


__all__ = [
    "AbsCubicError", "Activator", "Convolution", "Dense", "FiniteDifferences", "LeakyReLU", "Linear",
    "Loss", "LossFuncOutput", "Momentum", "Nesterov", "Network", "ReLU", "Settings", "Sigmoid",
    "SoftPlus", "SoftmaxLogEntropy", "SoftmaxLogMultEntropy", "Square", "SquaredError", "Tanh",
    "TrainingRun", "Vanilla", "Waypoint", "WeightBreeder", "checkpoint_to", "load", "num_threads", "set_num_threads",
]
