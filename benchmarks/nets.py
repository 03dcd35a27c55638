"""The benchmark nets, each built the same way in neuroflow and in PyTorch: NeuroFlow
semantics (no biases, ReLU, SoftmaxLogEntropy = summed cross-entropy on the last layer's
activated output, Momentum 0.9)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import neuroflow as nf
from neuroflow.apps.cifar import speed_layout

# (filters, field, stride, padding) per conv layer
GLASSES = [(1, 3, 1, 1), (1, 3, 1, 1), (1, 4, 2, 1), (1, 3, 1, 1)]
SMALL_CIFAR = [(32, 3, 1, 1), (32, 3, 1, 1), (64, 4, 2, 1), (64, 3, 1, 1), (128, 4, 2, 1), (128, 3, 1, 1), (128, 4, 2, 1)]
NEUROFLOW_CIFAR = [(128, 3, 1, 1), (128, 3, 1, 1), (128, 4, 2, 1), (128, 3, 1, 1), (128, 3, 1, 1), (128, 4, 2, 1),
                   (128, 3, 1, 1), (128, 1, 1, 0), (10, 1, 1, 0)]


@dataclass(frozen=True)
class Net:
    name: str
    dim_in: tuple  # (X, Y, Z)
    convs: list
    dense: list  # [(neurons, "relu" | "linear")]
    batch: int
    train: bool = True
    speed: tuple = ()  # the CIFAR speed recipe's net with these widths (convs and dense unused)

    @property
    def classes(self) -> int:
        return self.dense[-1][0]


NETS = [
    Net("glasses 400x400x3 train b20", (400, 400, 3), GLASSES, [(2, "relu")], 20),
    Net("small-cifar train b128", (32, 32, 3), SMALL_CIFAR, [(256, "relu"), (10, "linear")], 128),
    Net("small-cifar eval b256", (32, 32, 3), SMALL_CIFAR, [(256, "relu"), (10, "linear")], 256, train=False),
    Net("neuroflow-cifar train b128", (32, 32, 3), NEUROFLOW_CIFAR, [(10, "relu")], 128),
    # biases, BatchNorm, GELU, max-pooling, label smoothing, Nesterov with weight decay
    Net("speed-cifar train b64", (32, 32, 3), [], [(10, "linear")], 64, speed=(32, 64, 128)),
    # the same net at the batch `--preset speed` takes in a 60 s budget since it trains with
    # Muon (2000 from 600 s); Nesterov on both sides here, Muon's own cost apart
    Net("speed-cifar train b500", (32, 32, 3), [], [(10, "linear")], 500, speed=(32, 64, 128)),
]


def neuroflow_net(spec: Net, lr: float) -> nf.Network:
    if spec.speed:
        settings = nf.Settings(learning_rate=lr, update_rule=nf.Nesterov(0.9, weight_decay=5e-4), batch_size=spec.batch,
                               verbose=False, dtype=np.float32, reduction="mean")
        return nf.Network(speed_layout(spec.speed), settings, input_norm=((0.49, 0.48, 0.45), (0.25, 0.24, 0.26)))
    layout, dim = [], spec.dim_in
    for f, k, s, p in spec.convs:
        c = nf.Convolution(dim, padding=p, field=k, stride=s, filters=f, activator=nf.ReLU)
        layout.append(c)
        dim = c.dim_out
    for n, act in spec.dense:
        layout.append(nf.Dense(n, nf.ReLU if act == "relu" else nf.Linear))
    layout.append(nf.SoftmaxLogEntropy())
    settings = nf.Settings(learning_rate=lr, update_rule=nf.Momentum(0.9), batch_size=spec.batch, verbose=False,
                           dtype=np.float32, shuffle=False)
    return nf.Network(layout, settings, weights=nf.WeightBreeder.he(seed=0))


def torch_speed(widths):
    """The speed recipe's net (speed_layout) in PyTorch, NCHW."""
    from torch import nn

    white = nn.Conv2d(3, 24, 2, bias=False)
    white.weight.requires_grad_(False)  # frozen, as neuroflow's lr_mult=0
    layers, z = [white, nn.GELU()], 24
    for c in widths:
        bn0, bn1 = nn.BatchNorm2d(c, momentum=0.4), nn.BatchNorm2d(c, momentum=0.4)
        for bn in (bn0, bn1):
            bn.weight.requires_grad_(False)  # neuroflow's scale=False
        layers += [nn.Conv2d(z, c, 3, padding=1, bias=False), nn.MaxPool2d(2), bn0, nn.GELU(),
                   nn.Conv2d(c, c, 3, padding=1, bias=False), bn1, nn.GELU()]
        z = c
    return nn.Sequential(*layers, nn.MaxPool2d(3), nn.Flatten(), nn.Linear(z, 10, bias=False))


def torch_net(spec: Net, channels_last: bool):
    import torch
    from torch import nn

    if spec.speed:
        model = torch_speed(spec.speed)
        return model.to(memory_format=torch.channels_last) if channels_last else model

    layers, z, (x, y) = [], spec.dim_in[2], spec.dim_in[:2]
    for f, k, s, p in spec.convs:
        layers += [nn.Conv2d(z, f, k, s, p, bias=False), nn.ReLU()]
        z, x, y = f, (x + 2 * p - k) // s + 1, (y + 2 * p - k) // s + 1
    layers.append(nn.Flatten())
    d = z * x * y
    for n, act in spec.dense:
        layers.append(nn.Linear(d, n, bias=False))
        if act == "relu":
            layers.append(nn.ReLU())
        d = n
    model = nn.Sequential(*layers)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
