"""WGSL kernels: loading the shader files, compiled pipelines, and the per-shape caches.

A kernel is one entry point of one `shaders/<op>.wgsl` file with an explicit bind-group
layout (binding 0 is always the op's uniform parameters), so bind groups can be cached and
reused across steps. Pipelines live on the shared device; parameter buffers and bind
groups live in a `Cache` owned by whoever owns the buffers they point at.

Shader sources are assembled when they load:
- `const` declarations generated from `neuroflow/ids.json` (the one table of shared names
  and ids) come first, e.g. `const ACT_RELU: u32 = 0u;`, `const UPDATE_ADAM: u32 = 3u;`.
  No shader writes an id as a number (tests/test_ids_gpu.py checks);
- a line `//!include <name>` is replaced by `shaders/<name>.wgsl` (shared functions such
  as the activators, which several kernels apply);
- a kernel's *defines* (e.g. gemm's tile sizes and operand modes) become `const`
  declarations after the ids, and `//!if NAME` … `//!else` … `//!endif` lines keep the text
  of the branch whose define is non-zero (for what a `const` cannot switch: a binding's
  type). Each set of defines is its own shader module and pipeline.
"""

from __future__ import annotations

import importlib.resources
import re
import struct
from pathlib import Path

from .device import Buffer, Gpu
from .spec import IDS

# ids.json's tables and the prefix of their WGSL constants.
ID_PREFIXES = {
    "activators": "ACT",
    "losses": "LOSS",
    "updates": "UPDATE",
    "layers": "LAYER",
    "reductions": "REDUCTION",
    "modes": "MODE",
    # no shader reads these (the GPU engine has one convolution), but every table is one
    "conv_algorithms": "ALG",
}

U, R, W = "uniform", "read", "rw"

# (shader, entry point) -> binding kinds, in binding order.
LAYOUTS = {
    # gemm binds A and B twice: as f32 and as vec4 (for aligned loads); then the epilogue's
    # extra input (the layer input whose f′ is folded in) and extra output (s beside a).
    ("gemm", "main"): (U, R, R, W, R, R, R, W),
    ("gemm", "small"): (U, R, R, W, R, R, R, W),
    ("gemm", "direct"): (U, R, R, W, R, R, R, W),
    ("gemm_splits", "main"): (U, R, W),
    ("im2col", "main"): (U, R, W),  # not used by the engine (implicit GEMM): tests, debugging
    ("col2im", "main"): (U, R, W),
    ("act", "forward"): (U, R, R, W),  # s, params (bias), a
    ("act", "backward"): (U, R, R, W),  # d, params (bias), s → ds in place
    ("act", "backward_out"): (U, R, R, W),  # d, a, ds
    ("reduce", "sum"): (U, R, W),
    ("input", "convert"): (U, R, R, W),  # raw batch (u32 words), mean and 1/std, x
    ("colsum", "main"): (U, R, W),
    ("loss", "loss_grad"): (U, R, R, W, W),
    ("loss", "loss_grad_sum"): (U, R, R, W, W, W),  # … and the reduced loss
    ("softmax", "main"): (U, R, W),
    ("update", "main"): (U, U, W, R, W, W, R),  # params, hyper, w, g, slot0, slot1, segments
    ("batchnorm", "stats"): (U, R, W, W),  # x, stats (or partials), state
    ("batchnorm", "stats_merge"): (U, R, W, W),  # partials, stats, state
    ("batchnorm", "forward"): (U, R, R, R, W),  # x, params, mean/var source, a
    ("batchnorm", "backward_sums"): (U, R, R, R, R, W, W),  # x, params, stats, d, sums (or partials), grads
    ("batchnorm", "sums_merge"): (U, R, R, R, R, W, W),  # x, params, stats, partials, sums, grads
    ("batchnorm", "backward_input"): (U, R, R, R, R, R, W),  # x, params, stats, d, sums, dx
    ("pool", "max_forward"): (U, R, W, W),  # x, a, argmax
    ("pool", "max_backward"): (U, R, R, W),  # d, argmax, dx
    ("pool", "avg_forward"): (U, R, W),
    ("pool", "avg_backward"): (U, R, W),
    ("pool", "gap_forward"): (U, R, W),
    ("pool", "gap_backward"): (U, R, W),
    ("dropout", "forward"): (U, U, R, W),  # params, hyper (step), x, a
    ("dropout", "backward"): (U, U, R, W),
    ("residual", "forward"): (U, R, R, W),  # x, inner, a
    ("residual", "backward"): (U, R, R, R, W),  # x, inner, d, g
    ("residual", "add"): (U, R, W),  # dx += g
    ("muon", "momentum"): (U, R, W, W),  # g, momentum, x
    ("muon", "sumsq"): (U, R, W),  # v, norms
    ("muon", "scale"): (U, R, W),  # norms, x
    ("muon", "axpby"): (U, R, W),  # x, y
    ("muon", "step"): (U, U, W, R, R),  # rate, w, x, norms
}

ELEMENTWISE_GROUP = 256  # invocations per workgroup of the element-wise kernels


def _shader_dirs():
    """The installed package's shaders (wheel: neuroflow/shaders/), then the repo's."""
    try:
        yield importlib.resources.files("neuroflow") / "shaders"
    except (ModuleNotFoundError, TypeError):
        pass
    yield Path(__file__).resolve().parents[4] / "shaders"


def _read(name: str) -> str:
    for folder in _shader_dirs():
        f = folder / f"{name}.wgsl"
        if f.is_file():
            return f.read_text(encoding="utf-8")
    raise FileNotFoundError(
        f"shader {name}.wgsl not found in the installed package (neuroflow/shaders/) "
        "nor in the source tree's shaders/ folder"
    )


def id_constants() -> dict[str, int]:
    """Every generated WGSL constant name and its value, from ids.json."""
    out = {}
    for table, prefix in ID_PREFIXES.items():
        for i, name in enumerate(IDS[table]):
            out[f"{prefix}_{name.upper()}"] = i
    return out


def id_prelude() -> str:
    lines = ["// Generated from neuroflow/ids.json when the shader loads: do not write ids by hand."]
    lines += [f"const {name}: u32 = {value}u;" for name, value in id_constants().items()]
    return "\n".join(lines) + "\n"


_INCLUDE = re.compile(r"^//!include\s+(\w+)\s*$", re.M)
_BRANCH = re.compile(r"^//!(if|else|endif)\b\s*(\w*)\s*$")


def _wgsl_const(name: str, value) -> str:
    if isinstance(value, bool):
        return f"const {name}: bool = {'true' if value else 'false'};"
    if isinstance(value, int) and value >= 0:
        return f"const {name}: u32 = {value}u;"
    raise ValueError(f"define {name}: expected a bool or a non-negative int, got {value!r}")


def _branches(text: str, defines: dict) -> str:
    """Keep the lines of each `//!if NAME` block whose define is non-zero (else its
    `//!else` part); blocks nest."""
    out: list[str] = []
    stack: list[tuple[bool, bool]] = []  # (keeping this branch, parent keeping)
    for line in text.split("\n"):
        m = _BRANCH.match(line.strip())
        if not m:
            if all(k for k, _ in stack):
                out.append(line)
            continue
        what, name = m.groups()
        if what == "if":
            if name not in defines:
                raise ValueError(f"//!if {name}: not among the kernel's defines {sorted(defines)}")
            stack.append((bool(defines[name]), all(k for k, _ in stack)))
        elif not stack:
            raise ValueError(f"//!{what} without //!if")
        elif what == "else":
            keep, parent = stack.pop()
            stack.append((not keep, parent))
        else:
            stack.pop()
    if stack:
        raise ValueError("//!if without //!endif")
    return "\n".join(out)


def shader_source(name: str, defines: dict | None = None) -> str:
    """The shader's text as compiled: the id constants, the defines, then the file with
    its includes and its `//!if` branches resolved."""
    seen: set[str] = set()
    defines = dict(defines or {})

    def expand(text: str) -> str:
        def one(m):
            lib = m.group(1)
            if lib in seen:
                return f"// ({lib} included above)"
            seen.add(lib)
            return expand(_read(lib))

        return _INCLUDE.sub(one, text)

    consts = "".join(_wgsl_const(k, v) + "\n" for k, v in sorted(defines.items()))
    return id_prelude() + consts + _branches(expand(_read(name)), defines)


class Kernel:
    """A compute pipeline with its explicit bind-group layout."""

    def __init__(self, gpu: Gpu, shader: str, entry: str, constants: dict | None = None, defines: dict | None = None):
        wgpu = gpu.wgpu
        self.name = f"{shader}.{entry}" + "".join(f".{k}={v}" for k, v in sorted({**(defines or {}), **(constants or {})}.items()))
        self.kinds = LAYOUTS[(shader, entry)]
        kind = {
            U: {"type": wgpu.BufferBindingType.uniform},
            R: {"type": wgpu.BufferBindingType.read_only_storage},
            W: {"type": wgpu.BufferBindingType.storage},
        }
        # Layouts are shared by kinds, so one bind group serves every kernel alike in shape.
        lkey = ("layout", self.kinds)
        if lkey not in gpu.kernels:
            gpu.kernels[lkey] = gpu.device.create_bind_group_layout(
                entries=[
                    {"binding": i, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": kind[k]}
                    for i, k in enumerate(self.kinds)
                ]
            )
        self.layout = gpu.kernels[lkey]
        module = _module(gpu, shader, defines or {})
        stage = {"module": module, "entry_point": entry}
        if constants:
            stage["constants"] = {k: float(v) for k, v in constants.items()}
        self.pipeline = gpu.device.create_compute_pipeline(
            layout=gpu.device.create_pipeline_layout(bind_group_layouts=[self.layout]),
            compute=stage,
            label=self.name,
        )


def _module(gpu: Gpu, shader: str, defines: dict):
    key = ("module", shader, tuple(sorted(defines.items())))
    if key not in gpu.kernels:
        gpu.kernels[key] = gpu.device.create_shader_module(code=shader_source(shader, defines), label=shader)
    return gpu.kernels[key]


def kernel(gpu: Gpu, shader: str, entry: str = "main", defines: dict | None = None, **constants) -> Kernel:
    """The compiled kernel, created once per device (and per set of defines)."""
    key = (shader, entry, tuple(sorted((defines or {}).items())), tuple(sorted(constants.items())))
    k = gpu.kernels.get(key)
    if k is None:
        k = gpu.kernels[key] = Kernel(gpu, shader, entry, constants, defines)
    return k


def pack(*values) -> bytes:
    """Uniform parameters: Python ints as u32, floats as f32, padded to 16 bytes."""
    fmt = "".join("I" if isinstance(v, (int, bool)) else "f" for v in values)
    data = struct.pack("<" + fmt, *values)
    return data + bytes(-len(data) % 16)


class Cache:
    """Parameter buffers (deduplicated by content) and bind groups (by the buffers they
    bind). Whoever owns the buffers owns the cache, so both go away together."""

    def __init__(self, gpu: Gpu):
        self.gpu = gpu
        self._params: dict[bytes, Buffer] = {}
        self._groups: dict[tuple, tuple] = {}
        self._scratch: dict[str, Buffer] = {}

    def params(self, *values):
        data = pack(*values)
        buf = self._params.get(data)
        if buf is None:
            buf = self._params[data] = self.gpu.uniform(data)
        return buf

    def scratch(self, name: str, nbytes: int):
        """A buffer reused by every op that needs `name` as temporary space; it only grows
        (dispatches recorded earlier keep the smaller one alive through their bind groups)."""
        buf = self._scratch.get(name)
        if buf is None or buf.size < nbytes:
            buf = self._scratch[name] = self.gpu.storage(nbytes, name)
        return buf

    def bind(self, k: Kernel, buffers) -> object:
        # Keyed by buffer identity; the entry keeps the buffers alive so ids stay unique.
        key = (id(k.layout),) + tuple(id(b) for b in buffers)
        hit = self._groups.get(key)
        if hit is None:
            if len(buffers) != len(k.kinds):
                raise ValueError(f"{k.name} takes {len(k.kinds)} bindings, got {len(buffers)}")
            group = self.gpu.device.create_bind_group(
                layout=k.layout,
                entries=[
                    {"binding": i, "resource": {"buffer": b, "offset": 0, "size": b.size}}
                    for i, b in enumerate(buffers)
                ],
            )
            hit = self._groups[key] = (group, tuple(buffers))
        return hit[0]
