"""GpuEngine: the engine contract of docs/engine.md on any GPU wgpu can drive, float32.

Weights, optimizer state and gradients live in GPU buffers for the engine's lifetime.
A call uploads its batch once, records all its work (every chunk's forward and backward,
then the updates) into one command encoder, submits once, and reads back only what it
returns: the loss of a training step, or the arrays asked for.
"""

from __future__ import annotations

import math

import numpy as np

from . import ops
from .device import get_gpu
from .finite_differences import central_differences
from .spec import Conv, parse
from .workspace import Workspace, chunk_capacity


def _floats(a, name: str) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype != np.float32:
        raise TypeError(f"{name}: expected a numpy array of f32")
    return np.ascontiguousarray(a)


class GpuEngine:
    """Same constructor, methods and numbers as `neuroflow._core.Engine`, on the GPU.

    `max_chunk` caps the samples processed at once (tests use it to exercise chunking);
    by default it is as large as the device's binding limit and a memory budget allow.
    """

    def __init__(self, spec_json: str, *, max_chunk: int | None = None):
        self._spec_json = spec_json
        self._s = parse(spec_json)
        self._gpu = gpu = get_gpu()
        self._chunk = chunk_capacity(gpu, self._s, max_chunk)
        for i, shape in enumerate(self.weight_shapes()):
            if 4 * math.prod(shape) > gpu.max_binding:
                raise ValueError(f"layer {i}: weights {shape} exceed this GPU's storage binding limit")
        sizes = [4 * math.prod(s) for s in self.weight_shapes()]
        # New wgpu buffers are zero-filled: weights and state start at 0 as the contract says.
        self._w = [gpu.storage(n, f"w{i}") for i, n in enumerate(sizes)]
        self._g = [gpu.storage(n, f"g{i}") for i, n in enumerate(sizes)]
        self._m = [gpu.storage(n, f"m{i}") for i, n in enumerate(sizes)] if self._stateful else []
        self._lr = gpu.device.create_buffer(size=16, usage=gpu.wgpu.BufferUsage.UNIFORM | gpu.wgpu.BufferUsage.COPY_DST)
        self._lr_value = None
        self._ws: Workspace | None = None

    # ---- description ----

    @property
    def spec(self) -> str:
        return self._spec_json

    @property
    def _stateful(self) -> bool:
        return self._s.update != "vanilla"

    def weight_shapes(self) -> list:
        return [list(layer.weight_shape) for layer in self._s.layers]

    def num_weights(self) -> int:
        return sum(math.prod(s) for s in self.weight_shapes())

    # ---- weights and state (read straight from the GPU: never stale) ----

    def _read_all(self, bufs) -> list:
        return [self._gpu.read(b, math.prod(s)).reshape(s) for b, s in zip(bufs, self.weight_shapes())]

    def _write_all(self, bufs, arrays, name: str) -> None:
        shapes = self.weight_shapes() if bufs else []
        try:
            arrays = list(arrays)
        except TypeError:
            raise TypeError(f"{name}: expected a list of arrays") from None
        if len(arrays) != len(shapes):
            raise ValueError(f"{name}: expected {len(shapes)} arrays, got {len(arrays)}")
        checked = []
        for i, (a, shape) in enumerate(zip(arrays, shapes)):
            a = _floats(a, f"{name}[{i}]")
            if list(a.shape) != shape:
                raise ValueError(f"{name}[{i}]: expected shape {shape}, got {list(a.shape)}")
            if not np.isfinite(a).all():
                raise ValueError(f"{name}[{i}]: contains NaN or infinity")
            checked.append(a)
        for b, a in zip(bufs, checked):
            self._gpu.write(b, a)

    def get_weights(self) -> list:
        return self._read_all(self._w)

    def set_weights(self, weights) -> None:
        self._write_all(self._w, weights, "weights")

    def get_state(self) -> list:
        return self._read_all(self._m)

    def set_state(self, state) -> None:
        self._write_all(self._m, state, "state")

    # ---- batches ----

    def _batch(self, x, t=None):
        """Check and convert a batch; returns (n, x as f32, t or None)."""
        if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.uint8):
            raise TypeError("x: expected a numpy array of f32 or uint8")
        if not x.flags.c_contiguous:
            raise ValueError("x: the array must be C-contiguous")
        d = self._s.layers[0].in_size
        if x.size == 0 or x.size % d:
            raise ValueError(f"x: expected a non-empty batch of samples of {d} values, got {x.size} values")
        n = x.size // d
        if x.dtype == np.uint8:  # as the CPU engine: f32(b) · f32(1/255)
            x = x.astype(np.float32) * np.float32(1.0 / 255.0)
        if t is not None:
            t = _floats(t, "targets")
            k = self._s.layers[-1].out_size
            if t.size != n * k:
                raise ValueError(f"targets: expected {n} rows of {k} values, got {t.size} values")
        return n, x.reshape(-1), None if t is None else t.reshape(-1)

    def _workspace(self, n: int) -> Workspace:
        cap = min(n, self._chunk)
        if self._ws is None or self._ws.cap < cap:
            self._ws = Workspace(self._gpu, self._s, cap)
        return self._ws

    def _chunks(self, ws: Workspace, n: int):
        return [(c, min(ws.cap, n - c)) for c in range(0, n, ws.cap)]

    def _upload(self, ws: Workspace, n: int, x, t) -> None:
        """One upload per batch: into the chunk buffers, or a whole-batch buffer that
        each chunk copies its slice from."""
        gpu = self._gpu
        if n <= ws.cap:
            gpu.write(ws["x"], x)
            if t is not None:
                gpu.write(ws["t"], t)
        else:
            gpu.write(ws.batch("x", x.nbytes), x)
            if t is not None:
                gpu.write(ws.batch("t", t.nbytes), t)

    def _load_chunk(self, rec, ws: Workspace, n: int, c: int, rows: int, targets: bool) -> None:
        if n <= ws.cap:
            return
        d, k = self._s.layers[0].in_size, self._s.layers[-1].out_size
        rec.copy(ws.batch("x", 0), 4 * c * d, ws["x"], 0, 4 * rows * d)
        if targets:
            rec.copy(ws.batch("t", 0), 4 * c * k, ws["t"], 0, 4 * rows * k)

    # ---- recording ----

    def _forward(self, rec, ws: Workspace, rows: int, upto: int) -> None:
        inp = ws["x"]
        for i, layer in enumerate(self._s.layers[: upto + 1]):
            s, a = ws[f"s{i}"], ws[f"a{i}"]
            if isinstance(layer, Conv):
                col = inp
                if not layer.pointwise:
                    ops.im2col(rec, layer, rows, inp, ws["col"])
                    col = ws["col"]
                ops.gemm(rec, col, self._w[i], s, rows * layer.positions, layer.filters, layer.k)
            else:
                ops.gemm(rec, inp, self._w[i], s, rows, layer.o, layer.d)
            ops.act_forward(rec, layer.act, rows * layer.out_size, s, a)
            inp = a

    def _loss(self, rec, ws: Workspace, rows: int) -> None:
        last = len(self._s.layers) - 1
        k = self._s.layers[-1].out_size
        ops.loss_grad(rec, self._s.loss, self._s.mult, rows, k, ws[f"a{last}"], ws["t"], ws["losses"], ws[f"d{last}"])

    def _backward(self, rec, ws: Workspace, rows: int, scale: float, accumulate: bool) -> None:
        """From ∂L/∂y in the last delta buffer to weight gradients; the reduction's scale
        enters as the gemm's alpha, and later chunks add to the earlier ones' sums."""
        beta = 1.0 if accumulate else 0.0
        for i in reversed(range(len(self._s.layers))):
            layer = self._s.layers[i]
            s, d = ws[f"s{i}"], ws[f"d{i}"]
            ops.act_backward(rec, layer.act, rows * layer.out_size, s, d)
            inp = ws[f"a{i - 1}"] if i else ws["x"]
            if isinstance(layer, Conv):
                m, kd, f = rows * layer.positions, layer.k, layer.filters
                col = inp
                if not layer.pointwise:
                    ops.im2col(rec, layer, rows, inp, ws["col"])
                    col = ws["col"]
                ops.gemm(rec, col, d, self._g[i], kd, f, m, trans_a=True, alpha=scale, beta=beta)
                if i:
                    if layer.pointwise:
                        ops.gemm(rec, d, self._w[i], ws[f"d{i - 1}"], m, kd, f, trans_b=True)
                    else:  # dcol reuses the im2col buffer: its columns were consumed above
                        ops.gemm(rec, d, self._w[i], ws["col"], m, kd, f, trans_b=True)
                        ops.col2im(rec, layer, rows, ws["col"], ws[f"d{i - 1}"])
            else:
                ops.gemm(rec, inp, d, self._g[i], layer.d, layer.o, rows, trans_a=True, alpha=scale, beta=beta)
                if i:
                    ops.gemm(rec, d, self._w[i], ws[f"d{i - 1}"], rows, layer.d, layer.o, trans_b=True)

    def _losses_out(self, rec, ws: Workspace, n: int, c: int, rows: int):
        """Where the per-sample losses of the whole batch end up."""
        if n <= ws.cap:
            return ws["losses"]
        whole = ws.batch("losses", 4 * n)
        rec.copy(ws["losses"], 0, whole, 4 * c, 4 * rows)
        return whole

    def _backprop(self, rec, ws: Workspace, n: int) -> object:
        """Every chunk's forward, loss and backward; returns the per-sample loss buffer."""
        scale = 1.0 / n if self._s.mean else 1.0
        last = len(self._s.layers) - 1
        losses = None
        for c, rows in self._chunks(ws, n):
            self._load_chunk(rec, ws, n, c, rows, True)
            self._forward(rec, ws, rows, last)
            self._loss(rec, ws, rows)
            self._backward(rec, ws, rows, scale, accumulate=c > 0)
            losses = self._losses_out(rec, ws, n, c, rows)
        return losses

    def _run(self, ws: Workspace, key: tuple, build):
        """Record a call's steps once per workspace and key (which includes the batch
        size), then replay them: later calls resolve no pipeline, bind group or buffer.
        Returns what `build` returned (the buffer holding the result)."""
        prog = ws.programs.get(key)
        if prog is None:
            rec = ops.Recorder(self._gpu, ws.cache)
            result = build(rec)
            prog = ws.programs[key] = (rec.steps, result)
        ops.run(self._gpu, prog[0])
        return prog[1]

    # ---- the engine's methods ----

    def _outputs(self, x, upto: int, probabilities: bool = False) -> np.ndarray:
        n, x, _ = self._batch(x)
        ws = self._workspace(n)
        self._upload(ws, n, x, None)
        layer = self._s.layers[upto]
        width = layer.out_size

        def build(rec):
            result = None
            for c, rows in self._chunks(ws, n):
                self._load_chunk(rec, ws, n, c, rows, False)
                self._forward(rec, ws, rows, upto)
                result = ws[f"a{upto}"]
                if probabilities:  # the delta buffer is free outside training
                    ops.softmax(rec, rows, width, result, ws[f"d{upto}"])
                    result = ws[f"d{upto}"]
                if n > ws.cap:
                    whole = ws.batch("y", 4 * n * width)
                    rec.copy(result, 0, whole, 4 * c * width, 4 * rows * width)
                    result = whole
            return result

        result = self._run(ws, ("outputs", n, upto, probabilities), build)
        return self._gpu.read(result, n * width).reshape((n,) + tuple(layer.out_shape))

    def forward(self, x) -> np.ndarray:
        return self._outputs(x, len(self._s.layers) - 1)

    def predict(self, x) -> np.ndarray:
        return self._outputs(x, len(self._s.layers) - 1, probabilities=self._s.softmax)

    def focus(self, x, layer: int) -> np.ndarray:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise TypeError(f"layer: expected an integer, got {layer!r}")
        if not 0 <= layer < len(self._s.layers):
            raise ValueError(
                f"layer: index {layer} is out of range (the network has {len(self._s.layers)} layers with weights)"
            )
        return self._outputs(x, int(layer))

    def loss(self, x, t) -> float:
        n, x, t = self._batch(x, t)
        ws = self._workspace(n)
        self._upload(ws, n, x, t)

        def build(rec):
            losses = None
            for c, rows in self._chunks(ws, n):
                self._load_chunk(rec, ws, n, c, rows, True)
                self._forward(rec, ws, rows, len(self._s.layers) - 1)
                self._loss(rec, ws, rows)
                losses = self._losses_out(rec, ws, n, c, rows)
            ops.reduce_sum(rec, n, 1.0 / n if self._s.mean else 1.0, losses, ws["out"])
            return ws["out"]

        return float(self._gpu.read(self._run(ws, ("loss", n), build), 1)[0])

    def gradients(self, x, t) -> list:
        n, x, t = self._batch(x, t)
        ws = self._workspace(n)
        self._upload(ws, n, x, t)
        self._run(ws, ("gradients", n), lambda rec: self._backprop(rec, ws, n))
        return self._read_all(self._g)

    def _updates(self, rec) -> None:
        s = self._s
        for i, w in enumerate(self._w):
            m = self._m[i] if self._stateful else None
            ops.update(rec, s.update, s.mu, math.prod(s.layers[i].weight_shape), self._lr, w, self._g[i], m)

    def train_step(self, x, t, lr, fd_delta=None) -> float:
        """One step; returns the batch's mean per-sample loss before the update. With
        `fd_delta` the gradients come from central finite differences (as the CPU engine)."""
        lr = float(lr)
        if not math.isfinite(lr):
            raise ValueError(f"learning_rate: must be finite, got {lr}")
        n, x, t = self._batch(x, t)
        ws = self._workspace(n)
        if lr != self._lr_value:  # a 4-byte write: nothing is recreated when lr changes
            self._gpu.write(self._lr, np.array([lr, 0, 0, 0], dtype=np.float32))
            self._lr_value = lr
        if fd_delta is not None:
            loss, grads = central_differences(self, ws, n, x, t, float(fd_delta))
            for b, g in zip(self._g, grads):
                self._gpu.write(b, g)
            self._run(ws, ("update",), self._updates)
            return loss * (n if self._s.mean else 1.0) / n
        self._upload(ws, n, x, t)

        def build(rec):
            losses = self._backprop(rec, ws, n)
            self._updates(rec)
            ops.reduce_sum(rec, n, 1.0 / n, losses, ws["out"])
            return ws["out"]

        return float(self._gpu.read(self._run(ws, ("train", n), build), 1)[0])

    # ---- finite differences (NeuroFlow's Approximation: checking and tiny nets) ----

    def fd_gradients(self, x, t, delta) -> list:
        """Gradients of the reduced loss by central differences with step `delta`."""
        n, x, t = self._batch(x, t)
        return central_differences(self, self._workspace(n), n, x, t, float(delta))[1]

    # ---- for tests ----

    def _poison(self, n: int, value: float = float("nan")) -> None:
        """Fill every buffer a call on `n` samples writes (workspace, gradients) with
        `value`, so an element a kernel forgets to write shows up in the result."""
        self._workspace(n).poison(value)
        for g in self._g:
            self._gpu.fill(g, value)
