"""IEEE-754 operations on torch tensors, computed by threshold-gate circuits.

Values enter the circuits by spatial bit coding (each bit of each value on its own spike
line, one time step) and leave the same way; every result bit is produced by the gates.
All operations broadcast like torch, return the input dtype (comparisons return bool), and
support float32, bfloat16 and float16. ``backend="bitsliced"`` (default) evaluates the gates
as packed bitwise words; ``backend="neuron"`` simulates every membrane, with optional leak
and noise (see :mod:`isospike.exact.backends.neuron`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Literal, cast

import numpy as np
import torch
from torch import Tensor

from isospike._threads import kept_threads
from isospike.exact.backends import bitsliced, neuron
from isospike.exact.backends._kernels import pack_gather
from isospike.exact.circuits_registry import COMPARISONS, FLOAT_OPS, conversion_netlist, float_op_netlist, mixed_op_netlist
from isospike.exact.counting import OpCounts, active_counters
from isospike.exact.formats import BFLOAT16, FLOAT16, FLOAT32, FloatFormat, canonical_nan, format_of
from isospike.exact.netlist import Netlist

Backend = Literal["bitsliced", "torch", "triton", "neuron"]
TENSOR_BACKENDS = ("torch", "triton")  # lane bit patterns stay int64 tensors on their device
_INT_DTYPES = {torch.int8: 8, torch.int16: 16, torch.int32: 32, torch.uint8: 8, torch.int64: 64}


def _bits_of(x: Tensor, width: int) -> np.ndarray:
    """Bit patterns of a tensor as uint64 [numel] (a reinterpretation; no arithmetic)."""
    int_dtype = {8: torch.int8, 16: torch.int16, 32: torch.int32, 64: torch.int64}[width]
    flat = x.detach().contiguous().reshape(-1)
    if flat.dtype != int_dtype:
        flat = flat.view(int_dtype)
    raw = flat.cpu().numpy().view({8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}[width])
    return raw.astype(np.uint64)


def _bits_for(x: Tensor, width: int, backend: str) -> np.ndarray | Tensor:
    """Lane bit patterns for ``backend``: uint64 numpy (bitsliced, neuron) or int64 on x's own
    device (torch)."""
    if backend not in TENSOR_BACKENDS:
        return _bits_of(x, width)
    if x.dtype == torch.bool:
        return x.reshape(-1).to(torch.int64)
    int_dtype = {8: torch.int8, 16: torch.int16, 32: torch.int32, 64: torch.int64}[width]
    flat = x.detach().contiguous().reshape(-1)
    flat = flat if flat.dtype == int_dtype else flat.view(int_dtype)
    return flat.to(torch.int64) & ((1 << width) - 1) if width < 64 else flat


def _tensor_of(bits: np.ndarray | Tensor, dtype: torch.dtype, shape: torch.Size, width: int) -> Tensor:
    if isinstance(bits, Tensor):  # torch backend: stays on its device
        wrapped = bits - ((bits >> (width - 1)) & 1) * (1 << width)  # two's complement of the low width bits
        ints = wrapped.to({8: torch.int8, 16: torch.int16, 32: torch.int32}[width])
        return (ints if dtype in (torch.int8, torch.int16, torch.int32) else ints.view(dtype)).reshape(shape)
    np_uint = {8: np.uint8, 16: np.uint16, 32: np.uint32}[width]
    np_int = {8: np.int8, 16: np.int16, 32: np.int32}[width]
    ints = torch.from_numpy(bits.astype(np_uint).view(np_int).copy())
    if dtype in (torch.int8, torch.int16, torch.int32):
        return ints.reshape(shape)
    return ints.view(dtype).reshape(shape)


OPTIONS = {"backend": "bitsliced", "leak": 1.0, "noise": 0.0, "noise_model": "synapse", "generator": None}


def check_options(api: str, options: dict) -> dict:
    """Validate the backend keywords of a gate operation and return them with defaults filled.
    ``api`` names the operation called (e.g. ``"isp.exact.mul"``) in every error."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"{api}() got unexpected keyword argument(s) {', '.join(unknown)}; "
                        f"accepted: {', '.join(OPTIONS)}")
    opts = OPTIONS | options
    backend, leak, noise = opts["backend"], opts["leak"], opts["noise"]
    if backend not in ("bitsliced", "torch", "triton", "neuron"):
        raise ValueError(f"{api}: backend must be 'bitsliced', 'torch', 'triton' or 'neuron', got {backend!r}")
    if isinstance(leak, bool) or not isinstance(leak, numbers.Real) or not 0.0 < float(leak) <= 1.0:
        raise ValueError(f"{api}: leak (beta) must be a number in (0, 1], got {leak!r}")
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not math.isfinite(noise) or float(noise) < 0:
        raise ValueError(f"{api}: noise (sigma) must be a finite number >= 0, got {noise!r}")
    opts["leak"], opts["noise"] = float(leak), float(noise)
    if opts["noise_model"] not in neuron.NOISE_MODELS:
        raise ValueError(f"{api}: noise_model must be one of {neuron.NOISE_MODELS}, got {opts['noise_model']!r}")
    if opts["generator"] is not None and not isinstance(opts["generator"], torch.Generator):
        raise TypeError(f"{api}: generator must be a torch.Generator or None, got {type(opts['generator']).__name__}")
    if backend != "neuron" and (noise != 0.0 or leak != 1.0):
        raise ValueError(f"{api}: leak and noise act only in the membrane simulation: pass backend='neuron'")
    if backend != "neuron" and (opts["noise_model"] != OPTIONS["noise_model"] or opts["generator"] is not None):
        raise ValueError(f"{api}: noise_model and generator act only in the membrane simulation: pass "
                         "backend='neuron' (with noise > 0)")
    return opts


def on_device(api: str, opts: dict, *tensors: Tensor) -> dict:
    """Resolve the backend for where the operands live: ``"bitsliced"`` (the default) on a CPU
    tensor is the numba kernel; on any other device it is the fused Triton kernel where Triton
    can run there (CUDA), else the plain-torch evaluation, so values never leave their device.
    An explicit ``"triton"`` that cannot run raises. Returns ``opts`` with the backend replaced."""
    from isospike.exact.backends import triton_bitsliced

    device = next((t.device for t in tensors if isinstance(t, Tensor)), torch.device("cpu"))
    backend = opts["backend"]
    if backend == "bitsliced" and device.type != "cpu":
        backend = "triton" if triton_bitsliced.available(device) else "torch"
    elif backend == "triton" and not triton_bitsliced.available(device):
        raise ValueError(f"{api}: backend='triton' needs Triton and a CUDA tensor (or TRITON_INTERPRET=1 for its CPU "
                         f"interpreter); got a {device.type} tensor{'' if triton_bitsliced._triton() else ' and no Triton'}: "
                         "use backend='bitsliced' (chooses for the device) or 'torch'")
    return opts if backend == opts["backend"] else {**opts, "backend": backend}


def run_netlist(netlist: Netlist, op: str, inputs: Mapping[str, np.ndarray | Tensor], n: int,
                backend: Backend = "bitsliced", leak: float = 1.0, noise: float = 0.0,
                noise_model: neuron.NoiseModel = "synapse",
                generator: torch.Generator | None = None) -> dict[str, np.ndarray] | dict[str, Tensor]:
    """Evaluate a netlist on N lanes with the chosen backend; record activity in active counters.
    ``inputs``: uint64 numpy bit patterns per input word (``backend="torch"``: int64 tensors, numpy
    arrays being converted); the outputs are numpy arrays, or int64 tensors with ``backend="torch"``."""
    counters = active_counters()
    if backend in TENSOR_BACKENDS:
        from isospike.exact.backends import torch_bitsliced, triton_bitsliced

        tin = {k: v if isinstance(v, Tensor) else torch.from_numpy(v.view(np.int64)) for k, v in inputs.items()}
        if n == 0:
            device = next(iter(tin.values())).device if tin else torch.device("cpu")
            return {name: torch.zeros(0, dtype=torch.int64, device=device) for name in netlist.outputs}
        engine = triton_bitsliced if backend == "triton" else torch_bitsliced
        tout, (spikes, events) = engine.evaluate(netlist, tin, count=bool(counters))
        if counters:
            counts = OpCounts(1, n, netlist.n_gates * n, spikes, events)
            for counter in counters:
                counter.record(op, counts)
        return tout
    np_inputs = cast(dict[str, np.ndarray], inputs)  # the numpy backends get numpy bit patterns (see _bits_for)
    if n == 0:
        return {name: np.zeros(0, dtype=np.uint64) for name in netlist.outputs}
    if backend == "bitsliced":
        out, (spikes, events) = bitsliced.evaluate(netlist, np_inputs, count=bool(counters))
    else:
        out, (spikes, events) = neuron.evaluate(netlist, np_inputs, leak=leak, noise=noise,
                                                noise_model=noise_model, generator=generator)
    if counters:
        counts = OpCounts(1, n, netlist.n_gates * n, spikes, events)
        for counter in counters:
            counter.record(op, counts)
    return out


def _float_op(op: str, *operands: Tensor, **kw) -> Tensor:
    opts = check_options(f"isp.exact.{op}", kw)
    arity = FLOAT_OPS[op][0]
    if len(operands) != arity:
        raise TypeError(f"{op} takes {arity} tensors, got {len(operands)}")
    for i, t in enumerate(operands):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: operand {i} must be a torch.Tensor, got {type(t).__name__}")
    dtypes = {t.dtype for t in operands}
    if len(dtypes) != 1:
        raise TypeError(f"{op}: operands must share one dtype, got {sorted(map(str, dtypes))}; cast them first")
    fmt = format_of(operands[0].dtype)
    opts = on_device(f"isp.exact.{op}", opts, *operands)
    shape = _broadcast((op, *operands))
    n = int(np.prod(shape)) if len(shape) else 1
    netlist = float_op_netlist(op, fmt.name)
    names = list(netlist.input_widths)
    inputs = {name: _bits_for(t.expand(shape), fmt.width, opts["backend"]) for name, t in zip(names, operands)}
    out = run_netlist(netlist, op, inputs, n, **opts)["y"]
    if op in COMPARISONS:
        return _bool_of(out, shape, operands[0].device)
    return _tensor_of(out, fmt.dtype, shape, fmt.width).to(operands[0].device)


def _bool_of(bits: np.ndarray | Tensor, shape: torch.Size, device: torch.device) -> Tensor:
    if isinstance(bits, Tensor):
        return (bits != 0).reshape(shape)
    return torch.from_numpy(bits.astype(np.bool_)).reshape(shape).to(device)


def _doc(text: str):
    def wrap(fn):
        fn.__doc__ = text + """

    Args: tensors of one dtype (float32, bfloat16 or float16), broadcastable.
        backend: "bitsliced" (default, exact and fast) or "neuron" (membrane simulation).
        leak, noise, noise_model, generator: membrane leak beta in (0, 1], noise sigma and
            model ("synapse", "input", "threshold"), random generator; neuron backend only.
    Raises TypeError for unsupported or mixed dtypes, ValueError for shapes that do not broadcast.
    """
        return fn
    return wrap


@_doc("a + b, IEEE round to nearest even.")
def add(a: Tensor, b: Tensor, **kw) -> Tensor:
    return _float_op("add", a, b, **kw)


@_doc("a - b, IEEE round to nearest even.")
def sub(a: Tensor, b: Tensor, **kw) -> Tensor:
    return _float_op("sub", a, b, **kw)


@_doc("a * b, IEEE round to nearest even.")
def mul(a: Tensor, b: Tensor, **kw) -> Tensor:
    return _float_op("mul", a, b, **kw)


@_doc("a / b, IEEE round to nearest even (x/0 = inf, 0/0 = NaN).")
def div(a: Tensor, b: Tensor, **kw) -> Tensor:
    return _float_op("div", a, b, **kw)


@_doc("sqrt(a), correctly rounded; sqrt(-0) = -0, sqrt(x < 0) = NaN.")
def sqrt(a: Tensor, **kw) -> Tensor:
    return _float_op("sqrt", a, **kw)


@_doc("a * b + c with a single rounding (fused multiply-add).")
def fma(a: Tensor, b: Tensor, c: Tensor, **kw) -> Tensor:
    return _float_op("fma", a, b, c, **kw)


@_doc("-a (flips the sign line; NaN payloads kept, as IEEE negate).")
def neg(a: Tensor, **kw) -> Tensor:
    return _float_op("neg", a, **kw)


@_doc("|a| (clears the sign line).")
def abs(a: Tensor, **kw) -> Tensor:  # noqa: A001 - mirrors torch.abs
    return _float_op("abs", a, **kw)


@_doc("IEEE 754-2019 minimum: NaN if either is NaN, -0 < +0 (torch.minimum elsewhere).")
def minimum(a: Tensor, b: Tensor, **kw) -> Tensor:
    return _float_op("minimum", a, b, **kw)


@_doc("IEEE 754-2019 maximum: NaN if either is NaN, -0 < +0 (torch.maximum elsewhere).")
def maximum(a: Tensor, b: Tensor, **kw) -> Tensor:
    return _float_op("maximum", a, b, **kw)


@_doc("a == b as a bool tensor (NaN is unequal to everything; +0 == -0).")
def eq(a: Tensor, b: Tensor, **kw) -> Tensor:
    return _float_op("eq", a, b, **kw)


@_doc("a < b as a bool tensor (false when either is NaN).")
def lt(a: Tensor, b: Tensor, **kw) -> Tensor:
    return _float_op("lt", a, b, **kw)


@_doc("a <= b as a bool tensor (false when either is NaN).")
def le(a: Tensor, b: Tensor, **kw) -> Tensor:
    return _float_op("le", a, b, **kw)


def _convert(x: Tensor, dst: FloatFormat, backend: Backend, kw) -> Tensor:
    opts = on_device(f"isp.exact.to_{dst.name}", check_options(f"isp.exact.to_{dst.name}", {"backend": backend, **kw}), x)
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    src = format_of(x.dtype)
    if src == dst:  # wiring; a NaN still leaves as the canonical quiet NaN, as from every circuit
        return canonical_nan(x.clone())
    netlist = conversion_netlist("float", src.name, dst.name)
    out = run_netlist(netlist, f"{src.name}_to_{dst.name}", {"a": _bits_for(x, src.width, opts["backend"])}, x.numel(),
                      **opts)["y"]
    return _tensor_of(out, dst.dtype, x.shape, dst.width).to(x.device)


def to_float32(x: Tensor, backend: Backend = "bitsliced", **kw) -> Tensor:
    """Convert a float16/bfloat16/float32 tensor to float32 (exact)."""
    return _convert(x, FLOAT32, backend, kw)


def to_bfloat16(x: Tensor, backend: Backend = "bitsliced", **kw) -> Tensor:
    """Convert to bfloat16, round to nearest even."""
    return _convert(x, BFLOAT16, backend, kw)


def to_float16(x: Tensor, backend: Backend = "bitsliced", **kw) -> Tensor:
    """Convert to float16, round to nearest even (overflow to inf, subnormals kept)."""
    return _convert(x, FLOAT16, backend, kw)


def from_int(x: Tensor, dtype: torch.dtype = torch.float32, backend: Backend = "bitsliced", **kw) -> Tensor:
    """Integer tensor (int8/int16/int32/int64/uint8) -> ``dtype``, round to nearest even."""
    opts = on_device("isp.exact.from_int", check_options("isp.exact.from_int", {"backend": backend, **kw}), x)
    if not isinstance(x, Tensor) or x.dtype not in _INT_DTYPES:
        raise TypeError(f"from_int expects an int8/int16/int32/int64/uint8 tensor, got {getattr(x, 'dtype', type(x))}")
    dst = format_of(dtype)
    width = 64 if x.dtype == torch.int64 else 32
    xi = x if x.dtype in (torch.int32, torch.int64) else x.to(torch.int32)  # lossless widening
    netlist = conversion_netlist("from_int", str(width), dst.name)
    out = run_netlist(netlist, f"int{width}_to_{dst.name}", {"a": _bits_for(xi, width, opts["backend"])}, x.numel(),
                      **opts)["y"]
    return _tensor_of(out, dst.dtype, x.shape, dst.width).to(x.device)


def to_int(x: Tensor, backend: Backend = "bitsliced", **kw) -> Tensor:
    """Float tensor -> int32, rounding toward zero; NaN, infinities and out-of-range values give
    -2^31 (x86's "integer indefinite", which is what numpy and torch give on x86)."""
    opts = on_device("isp.exact.to_int", check_options("isp.exact.to_int", {"backend": backend, **kw}), x)
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    src = format_of(x.dtype)
    netlist = conversion_netlist("to_int", src.name, "32")
    out = run_netlist(netlist, f"{src.name}_to_int32", {"a": _bits_for(x, src.width, opts["backend"])}, x.numel(),
                      **opts)["y"]
    return _tensor_of(out, torch.int32, x.shape, 32).to(x.device)


def ldexp(x: Tensor, k: Tensor, backend: Backend = "bitsliced", **kw) -> Tensor:
    """``x * 2^k`` rounded once (IEEE scaleB): x float32/bfloat16/float16, k an int32 tensor
    (broadcast). Overflow gives inf, underflow subnormals or zero."""
    opts = check_options("isp.exact.ldexp", {"backend": backend, **kw})
    if not isinstance(x, Tensor) or not isinstance(k, Tensor):
        raise TypeError("ldexp expects two tensors")
    opts = on_device("isp.exact.ldexp", opts, x, k)
    fmt = format_of(x.dtype)
    if k.dtype != torch.int32:
        raise TypeError(f"ldexp: k must be an int32 tensor, got {k.dtype}")
    shape = _broadcast(("ldexp", x, k))
    n = int(np.prod(shape)) if len(shape) else 1
    b = opts["backend"]
    inputs = {"a": _bits_for(x.expand(shape), fmt.width, b), "k": _bits_for(k.expand(shape), 32, b)}
    out = run_netlist(mixed_op_netlist("ldexp", fmt.name), "ldexp", inputs, n, **opts)["y"]
    return _tensor_of(out, fmt.dtype, shape, fmt.width).to(x.device)


def where(cond: Tensor, a: Tensor, b: Tensor, backend: Backend = "bitsliced", **kw) -> Tensor:
    """``cond ? a : b`` computed by multiplexer neurons (a and b: one float dtype; cond: bool)."""
    opts = check_options("isp.exact.where", {"backend": backend, **kw})
    if not all(isinstance(t, Tensor) for t in (cond, a, b)):
        raise TypeError("where expects three tensors")
    if cond.dtype != torch.bool:
        raise TypeError(f"where: cond must be a bool tensor, got {cond.dtype}")
    if a.dtype != b.dtype:
        raise TypeError(f"where: a and b must share one dtype, got {a.dtype} and {b.dtype}")
    opts = on_device("isp.exact.where", opts, a, b, cond)
    fmt = format_of(a.dtype)
    shape = _broadcast(("where", cond, a, b))
    n = int(np.prod(shape)) if len(shape) else 1
    bk = opts["backend"]
    cond_bits = _bits_for(cond.expand(shape), 1, bk) if bk in TENSOR_BACKENDS else \
        cond.expand(shape).reshape(-1).cpu().numpy().astype(np.uint64)
    inputs = {"cond": cond_bits, "a": _bits_for(a.expand(shape), fmt.width, bk), "b": _bits_for(b.expand(shape), fmt.width, bk)}
    out = run_netlist(mixed_op_netlist("where", fmt.name), "where", inputs, n, **opts)["y"]
    return _tensor_of(out, fmt.dtype, shape, fmt.width).to(a.device)


def _broadcast(args: tuple) -> torch.Size:
    op, *tensors = args
    try:
        return torch.broadcast_shapes(*(t.shape for t in tensors))
    except RuntimeError:
        raise ValueError(f"{op}: shapes {[tuple(t.shape) for t in tensors]} cannot be broadcast together") from None


_LOGIC: dict[str, Netlist] = {}


def _logic_netlist(op: str) -> Netlist:
    if op not in _LOGIC:
        from isospike.exact.netlist import Circuit

        c = Circuit(f"logical_{op}")
        a = c.input("a", 1)[0]
        if op == "not":
            y = c.not_(a)
        else:
            b = c.input("b", 1)[0]
            y = {"and": c.and_, "or": c.or_}[op](a, b)
        c.output("y", y)
        _LOGIC[op] = c.build()
    return _LOGIC[op]


def _logical(op: str, *xs: Tensor, **kw) -> Tensor:
    opts = check_options(f"isp.exact.logical_{op}", kw)
    for x in xs:
        if not isinstance(x, Tensor) or x.dtype != torch.bool:
            raise TypeError(f"logical_{op} expects bool tensors")
    opts = on_device(f"isp.exact.logical_{op}", opts, *xs)
    shape = _broadcast((f"logical_{op}", *xs))
    n = int(np.prod(shape)) if len(shape) else 1
    if opts["backend"] in TENSOR_BACKENDS:
        inputs = {name: _bits_for(x.expand(shape), 1, "torch") for name, x in zip("ab", xs)}
    else:
        inputs = {name: x.expand(shape).reshape(-1).cpu().numpy().astype(np.uint64) for name, x in zip("ab", xs)}
    out = run_netlist(_logic_netlist(op), f"logical_{op}", inputs, n, **opts)["y"]
    return _bool_of(out, shape, xs[0].device)


def logical_and(a: Tensor, b: Tensor, **kw) -> Tensor:
    """a AND b on bool tensors: one AND neuron per element."""
    return _logical("and", a, b, **kw)


def logical_or(a: Tensor, b: Tensor, **kw) -> Tensor:
    """a OR b on bool tensors: one OR neuron per element."""
    return _logical("or", a, b, **kw)


def logical_not(a: Tensor, **kw) -> Tensor:
    """NOT a on a bool tensor: one NOT neuron per element."""
    return _logical("not", a, **kw)


# ------------------------------------------------------------------ packed reductions
def _pack_rows(x: Tensor, shape: torch.Size, width: int, out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The operand ``x`` of a reduction over the last dimension of ``shape`` (``x`` broadcasts to
    it) as words [width, k * Wl]: column i (one reduced element) of every lane packed into its
    own Wl = ceil(L / 64) words, L = lanes (the leading dimensions), so columns pair word for
    word. Broadcast dimensions are gathered by index, never materialized."""
    k = shape[-1]
    lead = shape[:-1]
    L = math.prod(lead)
    own = x.reshape(-1, x.shape[-1]) if x.dim() else x.reshape(1, 1)
    rows = torch.arange(own.shape[0]).reshape(x.shape[:-1]).expand(lead).reshape(-1).numpy()
    int_dtype = {8: torch.int8, 16: torch.int16, 32: torch.int32, 64: torch.int64}[width]
    src = own.detach().contiguous().view(int_dtype).cpu().numpy()
    if own.shape[-1] != k:  # a last dimension of size 1 broadcast over k
        src = np.ascontiguousarray(np.broadcast_to(src, (src.shape[0], k)))
    wl = (L + 63) // 64
    if out is None:
        out = np.empty((width, k * wl), dtype=np.uint64)
    with kept_threads():
        pack_gather(src.view({8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}[width]),
                    rows.astype(np.int64), width, out)
    return out, wl


def _run_words(netlist: Netlist, op: str, words: np.ndarray, mask: np.ndarray, lanes: int) -> np.ndarray:
    counters = active_counters()
    out, (spikes, events) = bitsliced.evaluate_words(netlist, words, mask, count=bool(counters))
    if counters:
        counts = OpCounts(1, lanes, netlist.n_gates * lanes, spikes, events)
        for counter in counters:
            counter.record(op, counts)
    return out


def _tree_words(op: str, fmt: FloatFormat, words: np.ndarray, k: int, wl: int, L: int) -> np.ndarray:
    """Pairwise tree over the k row blocks of ``words`` (row 2i with 2i+1, an odd last row moves
    up unchanged), staying packed. Returns one block [width, wl]."""
    netlist = float_op_netlist(op, fmt.name)
    width = fmt.width
    block_mask = bitsliced.lane_mask(L) if L else np.zeros(wl, np.uint64)
    while k > 1:
        half = k // 2
        blocks = words.reshape(width, k, wl)
        pair = np.empty((2 * width, half, wl), dtype=np.uint64)  # left operands' lines, then right's
        pair[:width] = blocks[:, 0:2 * half:2, :]
        pair[width:] = blocks[:, 1:2 * half:2, :]
        out = _run_words(netlist, op, pair.reshape(2 * width, half * wl), np.tile(block_mask, half), half * L)
        if k % 2:
            out = np.concatenate([out.reshape(width, half, wl), blocks[:, k - 1:k, :]], axis=1).reshape(width, -1)
        words, k = out, half + k % 2
    return words


def _unpack_rows(words: np.ndarray, fmt: FloatFormat, L: int, shape: torch.Size, device: torch.device) -> Tensor:
    return _tensor_of(bitsliced.unpack(words, L), fmt.dtype, shape, fmt.width).to(device)


def tree(op: str, x: Tensor, **kw) -> Tensor:
    """Reduce the last dimension of ``x`` by the pairwise tree of ``op`` ("add", "maximum",
    "minimum"): element 2i with 2i+1, an odd last element carried up; the same order and bits as
    repeated :func:`add` calls (``isospike.exact.functions.tree_reduce``), evaluated with the
    values kept in packed spike lines between the tree's levels (bit-sliced backend)."""
    opts = check_options(f"isp.exact.tree_{op}", kw)
    if op not in ("add", "maximum", "minimum"):
        raise ValueError(f"tree: op must be 'add', 'maximum' or 'minimum', got {op!r}")
    if x.shape[-1] == 0:
        raise ValueError("cannot reduce an empty dimension")
    opts = on_device(f"isp.exact.tree_{op}", opts, x)
    if opts["backend"] != "bitsliced":  # one netlist run per level on the other backends
        from isospike.exact.arith import GateArith
        from isospike.exact.functions import tree_levels

        return tree_levels(GateArith(**opts), op, x)
    fmt = format_of(x.dtype)
    k, lead = x.shape[-1], x.shape[:-1]
    L = math.prod(lead)
    words, wl = _pack_rows(x, x.shape, fmt.width)
    return _unpack_rows(_tree_words(op, fmt, words, k, wl, L), fmt, L, lead, x.device)


def dot(a: Tensor, b: Tensor, **kw) -> Tensor:
    """Sum over the last dimension of a * b (broadcasting): every product by the multiplier
    circuit, then the pairwise add tree of :func:`tree`; the same bits as ``mul`` then the
    tree, with the products kept packed (bit-sliced backend)."""
    opts = check_options("isp.exact.dot", kw)
    shape = torch.broadcast_shapes(a.shape, b.shape)
    if len(shape) == 0 or shape[-1] == 0:
        raise ValueError(f"dot needs a last dimension with elements, got shape {tuple(shape)}")
    if a.dtype != b.dtype:
        raise TypeError(f"dot: operands must share one dtype, got {a.dtype} and {b.dtype}")
    opts = on_device("isp.exact.dot", opts, a, b)
    if opts["backend"] != "bitsliced":
        return tree("add", mul(a, b, **opts), **opts)
    fmt = format_of(a.dtype)
    k, lead = shape[-1], shape[:-1]
    L = math.prod(lead)
    wl = (L + 63) // 64
    operands = np.empty((2 * fmt.width, k * wl), dtype=np.uint64)  # a's spike lines, then b's
    _pack_rows(a, shape, fmt.width, operands[:fmt.width])
    _pack_rows(b, shape, fmt.width, operands[fmt.width:])
    block_mask = bitsliced.lane_mask(L) if L else np.zeros(wl, np.uint64)
    products = _run_words(float_op_netlist("mul", fmt.name), "mul", operands, np.tile(block_mask, k), k * L)
    return _unpack_rows(_tree_words("add", fmt, products, k, wl, L), fmt, L, lead, a.device)
