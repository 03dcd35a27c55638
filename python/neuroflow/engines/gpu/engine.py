"""GpuEngine: the engine contract of docs/engine.md on any GPU wgpu can drive, float32.

Parameters, their gradients, the optimizer's slots and the layers' state (running
statistics) live in four flat GPU buffers for the engine's lifetime, each tensor at its
own 16-byte aligned offset. A call uploads its batch once, as given (uint8 stays uint8:
the GPU converts and normalises it), records all its work (every chunk's forward and
backward, then one update dispatch over every tensor) the first time it is made with that
batch size and input type, replays that recording on later calls, submits once, and reads
back only what it returns: the loss of a training step (through a buffer mapped for
reading, kept for the engine's lifetime), or the arrays asked for. While the GPU runs a
step, the next step's command buffer is encoded, so a training loop's host work overlaps
the GPU's. The learning rate, the step and Adam's bias corrections are one 16-byte uniform
written before the call.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import ops
from .device import CapacityError, get_gpu
from .finite_differences import central_differences
from .layers import Ctx, backward_chain, forward_chain
from .layers.dense import Affine, from_output
from .spec import ALIGN, MODES, SLOTS, Net, parse, resolve
from .workspace import Workspace, chunk_capacity, whole_batch_check


def _float_array(a, what: str) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
        raise TypeError(f"{what}: expected a numpy array of floats")
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: contains NaN or infinity")
    return np.ascontiguousarray(a, dtype=np.float32)


class GpuEngine:
    """The engine contract (neuroflow.engines.protocol.Engine) on the GPU, in float32.

    `max_chunk` caps the samples processed at once where a call allows chunks (tests use it
    to exercise chunking); by default it is as large as the device's binding limit and a
    memory budget allow.
    """

    def __init__(self, spec_json: str, *, max_chunk: int | None = None):
        spec_json = resolve(spec_json)
        self._spec_json = spec_json
        self._net: Net = parse(spec_json)
        self._gpu = gpu = get_gpu()
        net = self._net
        # The loss applies the last layer's f′ when it follows from the output (dense.py).
        last = net.last
        self._loss_fold = None
        if isinstance(last, Affine) and not last.act.linear and from_output(last.act):
            last.d_folded = True
            self._loss_fold = last.act
        self._chunk = chunk_capacity(gpu, net, max_chunk)
        floats = max(ALIGN, net.param_floats)
        if 4 * floats > gpu.max_binding:
            raise CapacityError(
                f"the parameters take {4 * net.param_floats} bytes, above this GPU's storage binding "
                f"limit of {gpu.max_binding} bytes ({gpu.info['name']})"
            )
        # New wgpu buffers are zero-filled: parameters and optimizer slots start at 0.
        self._w = gpu.storage(4 * floats, "params")
        self._g = gpu.storage(4 * floats, "grads")
        self._slots = [gpu.storage(4 * floats, f"slot-{s}") for s in SLOTS[net.update]]
        spare = [gpu.storage(16, "unused-slot") for _ in range(2 - len(self._slots))]
        self._slot_bufs = (self._slots + spare)[:2]
        self._s = gpu.storage(4 * max(ALIGN, net.state_floats), "state")
        self.set_state([np.full(t.shape, t.init, np.float32) for t in net.state])
        seg = np.zeros((max(1, len(net.params)), 4), np.uint32)
        # Muon's filters (offset, K, F, lr_mult, wd_mult): their own kernels (ops.muon);
        # the update kernel, which does every other tensor, sees them as frozen
        self._muon = [(t.offset, t.size // t.shape[3], t.shape[3], t.lr_mult, t.wd_mult) for t in net.params
                      if net.update == "muon" and len(t.shape) == 4 and t.lr_mult != 0]
        for i, t in enumerate(net.params):
            lr_mult = 0.0 if any(t.offset == mt[0] for mt in self._muon) else t.lr_mult
            seg[i] = (t.offset, t.size, np.float32(lr_mult).view(np.uint32), np.float32(t.wd_mult).view(np.uint32))
        self._segments = gpu.storage(seg.nbytes, "segments")
        gpu.write(self._segments, seg)
        u = gpu.wgpu.BufferUsage
        self._rate = gpu.device.create_buffer(size=16, usage=u.UNIFORM | u.COPY_DST, label="rate")
        self._rate_bytes: bytes | None = None
        self._lr = 0.0
        self._step = 0
        self._ws: Workspace | None = None
        self._readback = gpu.readback(16)
        self._ahead: tuple[tuple, Any] | None = None  # (program, its command buffer encoded ahead for the next call)
        self._kind = (False, False)  # the call's input: (uint8, normalised on the GPU)
        # mean[C] then f32(1/std)[C] of the input normalisation (the CPU engine's f32 values)
        c = net.input[-1]
        stats = np.zeros(2 * c, np.float32)
        if net.input_norm is not None:
            mean, std = net.input_norm
            stats[:c] = np.asarray(mean, np.float32)
            stats[c:] = (1.0 / np.asarray(std, np.float64)).astype(np.float32)
        self._norm_stats = gpu.storage(stats.nbytes, "input-norm")
        gpu.write(self._norm_stats, stats)

    # ---- description ----

    @property
    def spec(self) -> str:
        return self._spec_json

    def param_info(self) -> list:
        return [(t.name, tuple(t.shape)) for t in self._net.params]

    def state_info(self) -> list:
        return [(t.name, tuple(t.shape)) for t in self._net.state]

    def optimizer_slots(self) -> list:
        return list(SLOTS[self._net.update])

    # ---- tensors (read straight from the GPU: never stale) ----

    def _read_flat(self, buf, tensors) -> list:
        if not tensors:
            return []
        end = max(t.offset + t.size for t in tensors)
        flat = self._gpu.read(buf, end)
        return [flat[t.offset : t.offset + t.size].reshape(t.shape).copy() for t in tensors]

    def _write_flat(self, bufs, tensors, arrays, what: str) -> None:
        """arrays: for each tensor in turn, one array per buffer of `bufs`."""
        try:
            arrays = list(arrays)
        except TypeError:
            raise TypeError(f"{what}: expected a list of arrays") from None
        k = len(bufs)
        if len(arrays) != k * len(tensors):
            raise ValueError(f"{what}: expected {k * len(tensors)} arrays, got {len(arrays)}")
        if not tensors:
            return
        end = max(t.offset + t.size for t in tensors)
        flats = [np.zeros(end, np.float32) for _ in bufs]
        for i, a in enumerate(arrays):
            t = tensors[i // k]
            a = _float_array(a, f"{what}[{i}]")
            if tuple(a.shape) != tuple(t.shape):
                raise ValueError(f"{what}[{i}] ({t.name}): expected shape {list(t.shape)}, got {list(a.shape)}")
            flats[i % k][t.offset : t.offset + t.size] = a.reshape(-1)
        for b, f in zip(bufs, flats):
            self._gpu.write(b, f)

    def get_params(self) -> list:
        return self._read_flat(self._w, self._net.params)

    def set_params(self, params) -> None:
        self._write_flat([self._w], self._net.params, params, "params")

    def get_state(self) -> list:
        return self._read_flat(self._s, self._net.state)

    def set_state(self, state) -> None:
        self._write_flat([self._s], self._net.state, state, "state")

    def get_optimizer_state(self) -> list:
        per_slot = [self._read_flat(b, self._net.params) for b in self._slots]
        return [per_slot[j][i] for i in range(len(self._net.params)) for j in range(len(self._slots))]

    def set_optimizer_state(self, state) -> None:
        self._write_flat(self._slots, self._net.params, state, "optimizer state")

    def get_step(self) -> int:
        return self._step

    def set_step(self, step) -> None:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step: expected a non-negative integer, got {step!r}")
        self._step = int(step)

    # ---- batches ----

    def _batch(self, x, t=None):
        """Check a batch; returns (n, x flat as given (f32 or uint8), t flat or None). The
        GPU converts uint8 and applies the input normalisation (_load_chunk)."""
        if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.uint8):
            raise TypeError("x: expected a numpy array of f32 or uint8")
        if not x.flags.c_contiguous:
            raise ValueError("x: the array must be C-contiguous")
        if x.ndim < 2 or x.shape[0] == 0 or tuple(x.shape[1:]) != tuple(self._net.input):
            raise ValueError(f"x: expected a non-empty batch (N, {', '.join(map(str, self._net.input))}), got shape {x.shape}")
        n = x.shape[0]
        if t is not None:
            if not isinstance(t, np.ndarray) or t.dtype != np.float32:
                raise TypeError("t: expected a numpy array of f32")
            k = self._net.last.out_size
            if t.shape != (n, k):
                raise ValueError(f"t: expected shape ({n}, {k}), got {t.shape}")
            if not t.flags.c_contiguous:
                raise ValueError("t: the array must be C-contiguous")
            t = t.reshape(-1)
        return n, x.reshape(-1), t

    @staticmethod
    def _mode(mode) -> bool:
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        return mode == "train"

    def _workspace(self, n: int, train: bool) -> Workspace:
        """A workspace for n samples: chunks of at most the chunk capacity, or the whole
        batch when a train-mode pass couples its samples (batch statistics)."""
        whole = train and self._net.batch_coupled
        cap = n if whole else min(n, self._chunk)
        if whole and n > self._chunk:
            whole_batch_check(self._gpu, self._net, n, "batchnorm uses the statistics of the whole batch in train mode")
        if self._ws is None or self._ws.cap < cap:
            self._ws = Workspace(self._gpu, self._net, cap)
        return self._ws

    def _chunks(self, ws: Workspace, n: int) -> list:
        return [(c, min(ws.cap, n - c)) for c in range(0, n, ws.cap)]

    def _upload(self, ws: Workspace, n: int, x, t) -> None:
        """One upload per batch, of the batch as given. Plain float32 goes into the chunk
        buffer, or a whole-batch buffer that each chunk copies its slice from; uint8 (4 bytes
        a word, padded) or float32 to be normalised goes into a whole-batch buffer that each
        chunk converts its slice from on the GPU. Sets the call's input kind (part of the
        recorded program's key)."""
        gpu = self._gpu
        uint8 = x.dtype == np.uint8
        self._kind = (uint8, self._net.input_norm is not None)
        if uint8 or self._kind[1]:
            raw = x.view(np.uint8)
            if raw.size % 4:
                raw = np.concatenate([raw, np.zeros(4 - raw.size % 4, np.uint8)])
            gpu.write(ws.batch("xin", raw.nbytes), raw)
        elif n <= ws.cap:
            gpu.write(ws["x"], x)
        else:
            gpu.write(ws.batch("x", x.nbytes), x)
        if t is not None:
            gpu.write(ws["t"] if n <= ws.cap else ws.batch("t", t.nbytes), t)

    def _load_chunk(self, rec, ws: Workspace, n: int, c: int, rows: int, targets: bool) -> None:
        """The chunk's input in ws["x"] (converted on the GPU, or copied from the whole
        batch) and its targets in ws["t"]."""
        d, k = self._net.in_size, self._net.last.out_size
        uint8, norm = self._kind
        if uint8 or norm:
            ops.convert_input(rec, rows * d, c * d, self._net.input[-1], uint8, norm, ws.batch("xin", 0),
                              self._norm_stats, ws["x"])
        elif n > ws.cap:
            rec.copy(ws.batch("x", 0), 4 * c * d, ws["x"], 0, 4 * rows * d)
        if targets and n > ws.cap:
            rec.copy(ws.batch("t", 0), 4 * c * k, ws["t"], 0, 4 * rows * k)

    def _write_rate(self, lr: float | None = None) -> None:
        """The per-call uniform: lr, the step (dropout masks), Adam's 1 − β1ᵗ and 1 − β2ᵗ
        for t = step + 1 (the update being made), computed in f64."""
        if lr is not None:
            self._lr = lr
        h, t = self._net.hyper, self._step + 1
        data = (np.array([self._lr], np.float32).tobytes() + np.array([self._step % 2**32], np.uint32).tobytes()
                + np.array([1.0 - h["beta1"] ** t, 1.0 - h["beta2"] ** t], np.float32).tobytes())
        if data != self._rate_bytes:  # 16 bytes; nothing is re-recorded when they change
            self._gpu.queue.write_buffer(self._rate, 0, data)
            self._rate_bytes = data

    # ---- recording ----

    def _ctx(self, rec, ws: Workspace, rows: int, base: int, train: bool, **kw) -> Ctx:
        return Ctx(rec=rec, ws=ws, params=self._w, grads=self._g, state=self._s, rate=self._rate,
                   seed=self._net.seed, rows=rows, base=base, train=train, **kw)

    def _loss_pass(self, rec, ws: Workspace, n: int, rows: int, y, total: float | None) -> bool:
        """The chunk's per-sample losses and ∂L/∂y; with `total` (the reduction's scale) and
        the batch in one small enough chunk, also the reduced loss into ws["out"] in the
        same pass. Returns whether it did that."""
        net = self._net
        fused = total is not None and n <= ws.cap and rows * net.last.out_size <= ops.LOSS_SUM_MAX
        ops.loss_grad(rec, net.loss_id, net.mult, rows, net.last.out_size, y, ws["t"], ws["losses"],
                      ws[f"d{net.last.uid}"], net.smoothing, fold=self._loss_fold,
                      out=ws["out"] if fused else None, scale=total if fused and total is not None else 1.0)
        return fused

    def _losses_out(self, rec, ws: Workspace, n: int, c: int, rows: int):
        """Where the per-sample losses of the whole batch end up."""
        if n <= ws.cap:
            return ws["losses"]
        whole = ws.batch("losses", 4 * n)
        rec.copy(ws["losses"], 0, whole, 4 * c, 4 * rows)
        return whole

    def _record_losses(self, rec, ws: Workspace, n: int, train: bool, update_state: bool = False,
                       total: float | None = None):
        """Every chunk's forward and loss; returns the buffer of the n per-sample losses.
        With `total`, ws["out"] also receives total · Σ losses."""
        losses, fused = None, False
        for c, rows in self._chunks(ws, n):
            self._load_chunk(rec, ws, n, c, rows, True)
            ctx = self._ctx(rec, ws, rows, c, train, update_state=update_state)
            y, _ = forward_chain(ctx, self._net.layers, ws["x"])
            fused = self._loss_pass(rec, ws, n, rows, y, total)
            losses = self._losses_out(rec, ws, n, c, rows)
        if total is not None and not fused:
            ops.reduce_sum(rec, n, total, losses, ws["out"])
        return losses

    def _backprop(self, rec, ws: Workspace, n: int, update_state: bool, total: float | None = None,
                  batch: int | None = None, offset: int = 0):
        """Every chunk's train-mode forward, loss and backward, parameter gradients summed
        over the chunks; returns the per-sample loss buffer (and with `total`, as above).
        A data-parallel shard: the loss reduced over `batch` samples, dropout positions from
        `offset`."""
        net = self._net
        scale = 1.0 / (batch or n) if net.mean else 1.0
        losses, fused = None, False
        for c, rows in self._chunks(ws, n):
            self._load_chunk(rec, ws, n, c, rows, True)
            ctx = self._ctx(rec, ws, rows, offset + c, True, update_state=update_state, scale=scale, accumulate=c > 0)
            y, _ = forward_chain(ctx, net.layers, ws["x"])
            fused = self._loss_pass(rec, ws, n, rows, y, total)
            backward_chain(ctx, net.layers, ws["x"], net.last.buf(ctx, "d"), None)
            losses = self._losses_out(rec, ws, n, c, rows)
        if total is not None and not fused:
            ops.reduce_sum(rec, n, total, losses, ws["out"])
        return losses

    def _update(self, rec) -> None:
        net = self._net
        if not net.params:
            return
        if self._muon:
            ops.muon(rec, self._muon, net.hyper, self._rate, self._w, self._g, self._slot_bufs[0])
        ops.update(rec, net.update, net.hyper, len(net.params), max(t.size for t in net.params), self._rate,
                   self._w, self._g, self._slot_bufs[0], self._slot_bufs[1], self._segments)

    def _run(self, ws: Workspace, key: tuple, build, scalar: bool = False):
        """Record a call's steps once per workspace and key (with the batch size and the
        input kind), then replay them: later calls resolve no pipeline, bind group or
        buffer. Returns what `build` returned (the buffer holding the result); with
        `scalar`, the result's first float, copied to the mapped read-back buffer — and
        while the GPU works towards it, the same program is encoded again for the next
        call (a training loop repeats its step), which then only submits it."""
        gpu = self._gpu
        key = key + self._kind
        prog = ws.programs.get(key)
        if prog is None:
            rec = ops.Recorder(gpu, ws.cache)
            result = build(rec)
            if scalar:
                rec.copy(result, 0, self._readback, 0, 4)
            prog = ws.programs[key] = (rec.steps, result, rec.notes)
        ahead, self._ahead = self._ahead, None
        command = ahead[1] if ahead is not None and ahead[0] is prog else ops.encode(gpu, prog[0])
        gpu.queue.submit([command])
        if not scalar:
            return prog[1]
        self._ahead = (prog, ops.encode(gpu, prog[0]))
        return float(gpu.read_mapped(self._readback, 1)[0])

    # ---- the engine's methods ----

    def _outputs(self, x, uid: int, train: bool, probabilities: bool = False) -> np.ndarray:
        n, x, _ = self._batch(x)
        ws = self._workspace(n, train)
        self._upload(ws, n, x, None)
        self._write_rate()
        layer = self._net.walk[uid]
        width = layer.out_size

        def build(rec):
            result = None
            for c, rows in self._chunks(ws, n):
                self._load_chunk(rec, ws, n, c, rows, False)
                ctx = self._ctx(rec, ws, rows, c, train)
                result, _ = forward_chain(ctx, self._net.layers, ws["x"], stop=uid)
                if probabilities:  # the last layer's delta buffer is free outside training
                    prob = layer.buf(ctx, "d")
                    ops.softmax(rec, rows, width, result, prob)
                    result = prob
                if n > ws.cap:
                    whole = ws.batch("y", 4 * n * width)
                    rec.copy(result, 0, whole, 4 * c * width, 4 * rows * width)
                    result = whole
            return result

        result = self._run(ws, ("outputs", n, uid, train, probabilities), build)
        return self._gpu.read(result, n * width).reshape((n,) + tuple(layer.dim_out))

    def forward(self, x, layer=None, mode="eval") -> np.ndarray:
        train = self._mode(mode)
        walk = self._net.walk
        if layer is None:
            layer = self._net.last.uid
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise TypeError(f"layer: expected an integer uid, got {layer!r}")
        if not 0 <= layer < len(walk):
            raise ValueError(f"layer: uid {layer} is out of range (the network has {len(walk)} layers)")
        return self._outputs(x, int(layer), train)

    def predict(self, x) -> np.ndarray:
        return self._outputs(x, self._net.last.uid, False, probabilities=self._net.softmax)

    def loss(self, x, t, mode="eval") -> float:
        train = self._mode(mode)
        n, x, t = self._batch(x, t)
        ws = self._workspace(n, train)
        self._upload(ws, n, x, t)
        self._write_rate()

        def build(rec):
            self._record_losses(rec, ws, n, train, total=1.0 / n if self._net.mean else 1.0)
            return ws["out"]

        return self._run(ws, ("loss", n, train), build, scalar=True)

    def gradients(self, x, t) -> list:
        n, x, t = self._batch(x, t)
        ws = self._workspace(n, True)
        self._upload(ws, n, x, t)
        self._write_rate()
        self._run(ws, ("gradients", n), lambda rec: self._backprop(rec, ws, n, update_state=False))
        return self._read_flat(self._g, self._net.params)

    def train_step(self, x, t, lr, fd_delta=None) -> float:
        """One step; returns the batch's mean per-sample loss before the update. With
        `fd_delta` the gradients come from central finite differences (as the CPU engine)."""
        lr = float(lr)
        if not math.isfinite(lr):
            raise ValueError(f"learning_rate: must be finite, got {lr}")
        n, x, t = self._batch(x, t)
        ws = self._workspace(n, True)
        self._write_rate(lr)
        if fd_delta is not None:
            _, grads = central_differences(self, ws, n, x, t, float(fd_delta))
            self._write_flat([self._g], self._net.params, grads, "gradients")
            self._upload(ws, n, x, t)

            def build_fd(rec):  # the loss and the running statistics at the weights before the update
                self._record_losses(rec, ws, n, True, update_state=True, total=1.0 / n)
                self._update(rec)
                return ws["out"]

            loss = self._run(ws, ("train_fd", n), build_fd, scalar=True)
        else:
            self._upload(ws, n, x, t)

            def build(rec):
                self._backprop(rec, ws, n, update_state=True, total=1.0 / n)
                self._update(rec)
                return ws["out"]

            loss = self._run(ws, ("train", n), build, scalar=True)
        self._step += 1
        return loss

    # ---- data-parallel steps (docs/engine.md) ----

    def _flat_grads(self, grads, writable: bool) -> np.ndarray:
        total = sum(t.size for t in self._net.params)
        if not isinstance(grads, np.ndarray) or grads.dtype != np.float32:
            raise TypeError("grads: expected a numpy array of f32")
        if grads.ndim != 1 or grads.size != total or not grads.flags.c_contiguous or (writable and not grads.flags.writeable):
            raise ValueError(f"grads: expected a {'writable ' if writable else ''}C-contiguous 1-D array of {total} values "
                             f"(every parameter in order), got shape {grads.shape}")
        return grads

    def backward(self, x, t, grads, batch=None, offset=0, sync=None) -> float:
        """Train-mode forward and backward of a shard at `offset` of a global batch of
        `batch` samples: flat gradients into `grads`, running statistics moved; returns the
        sum of the shard's per-sample losses."""
        if sync is not None:
            raise ValueError("sync: synchronised BatchNorm is not available on the GPU engine; train with per-process "
                             "batch statistics (the default) or on the CPU engine")
        n, x, t = self._batch(x, t)
        out = self._flat_grads(grads, True)
        for v, what in ((batch, "batch"), (offset, "offset")):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
                raise ValueError(f"{what}: expected a non-negative integer, got {v!r}")
        if (batch is None and offset) or (batch is not None and (batch < 1 or offset + n > batch)):
            raise ValueError(f"batch: a shard of {n} samples at offset {offset} does not fit in a global batch of {batch}")
        batch, offset = (None if batch is None else int(batch)), int(offset)
        ws = self._workspace(n, True)
        self._upload(ws, n, x, t)
        self._write_rate()

        def build(rec):
            losses = self._backprop(rec, ws, n, True, batch=batch, offset=offset)
            ops.reduce_sum(rec, n, 1.0, losses, ws["out"])
            return ws["out"]

        loss = float(self._gpu.read(self._run(ws, ("backward", n, batch, offset), build), 1)[0])
        parts = self._read_flat(self._g, self._net.params)
        # a training pass computes no gradient for a frozen parameter (lr_mult 0): zero
        parts = [np.zeros_like(p) if t.lr_mult == 0 else p for p, t in zip(parts, self._net.params)]
        if parts:
            out[:] = np.concatenate([p.reshape(-1) for p in parts])
        return loss

    def apply_update(self, grads, lr) -> None:
        """One update with the flat reduced gradients `grads` (as `backward` writes them)."""
        lr = float(lr)
        if not math.isfinite(lr):
            raise ValueError(f"learning_rate: must be finite, got {lr}")
        g = self._flat_grads(grads, False)
        if not np.isfinite(g).all():
            raise ValueError("grads: contains NaN or infinity (the step's loss or gradients were not finite; no update made)")
        parts, at = [], 0
        for p in self._net.params:
            parts.append(g[at : at + p.size].reshape(p.shape))
            at += p.size
        self._write_flat([self._g], self._net.params, parts, "grads")
        self._write_rate(lr)
        ws = self._ws if self._ws is not None else self._workspace(1, False)

        def build(rec):
            self._update(rec)
            return None

        self._run(ws, ("update",), build)
        self._step += 1

    def fd_gradients(self, x, t, delta) -> list:
        """Gradients of the reduced train-mode loss by central differences with step `delta`."""
        n, x, t = self._batch(x, t)
        ws = self._workspace(n, True)
        self._write_rate()
        return central_differences(self, ws, n, x, t, float(delta))[1]

    # ---- for tests and benchmarks ----

    def _program(self, key: tuple) -> list:
        """The recorded steps of a call, e.g. ("train", n) (for float32 input; `_run` adds
        the input kind to the key, (uint8, normalised))."""
        return self._programs()[self._full_key(key)][0]

    def _notes(self, key: tuple) -> list:
        """What ops.Recorder noted for each step of a recorded call: (kernel, bytes, groups)."""
        return self._programs()[self._full_key(key)][2]

    def _programs(self) -> dict[tuple, tuple]:
        assert self._ws is not None, "no call has been recorded yet"
        return self._ws.programs

    def _full_key(self, key: tuple) -> tuple:
        if key in self._programs():
            return key
        return key + (False, self._net.input_norm is not None)

    def _poison(self, n: int, value: float = float("nan"), train: bool = True) -> None:
        """Fill every buffer a call on `n` samples writes (workspace, gradients) with
        `value`, so an element a kernel forgets to write shows up in the result."""
        self._workspace(n, train).poison(value)
        self._gpu.fill(self._g, value)
