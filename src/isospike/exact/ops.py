"""IEEE-754 operations on torch tensors, computed by threshold-gate circuits.

Values enter the circuits by spatial bit coding (each bit of each value on its own spike
line, one time step) and leave the same way; every result bit is produced by the gates.
All operations broadcast like torch, return the input dtype (comparisons return bool), and
support float32, bfloat16 and float16. ``backend="bitsliced"`` (default) evaluates the gates
as packed bitwise words; ``backend="neuron"`` simulates every membrane, with optional leak
and noise (see :mod:`isospike.exact.backends.neuron`).

There is one public operation per primitive of :data:`isospike.exact.primitives.PRIMITIVES`
(``add``, ``mul``, ``where``, ``to_bfloat16``, ...), made here from its declaration by
:func:`public_operation`: it validates the backend keywords once (:func:`gate_options`) and runs
:func:`apply`, which every gate evaluation goes through (:class:`~isospike.exact.arith.GateArith`
calls it directly with options validated when the arith was made).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch import Tensor

from isospike._threads import kept_threads
from isospike.exact.backends import DEFAULTS, Backend, BackendName, GateOptions, bitsliced, gate_options
from isospike.exact.backends._kernels import pack_gather
from isospike.exact.counting import OpCounts, active_counters
from isospike.exact.formats import FloatFormat, canonical_nan, format_of
from isospike.exact.functions import tree_levels
from isospike.exact.netlist import Netlist
from isospike.exact.primitives import BOOL, FLOAT, INT, INT32, PRIMITIVES, Kind, Primitive

__all__ = ["BackendName", "GateOptions", "apply", "dot", "dot_with", "gate_options", "public_operation", "run_netlist",
           "tree", "tree_with"]
__all__ += PRIMITIVES.keys()  # one operation per primitive (PUBLIC below); a name list, not unpacked, for Griffe


def _bits_of(x: Tensor, width: int) -> np.ndarray:
    """Bit patterns of a tensor as uint64 [numel] (a reinterpretation; no arithmetic)."""
    int_dtype = {8: torch.int8, 16: torch.int16, 32: torch.int32, 64: torch.int64}[width]
    flat = x.detach().contiguous().reshape(-1)
    if flat.dtype != int_dtype:
        flat = flat.view(int_dtype)
    raw = flat.cpu().numpy().view({8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}[width])
    return raw.astype(np.uint64)


def _bits_for(x: Tensor, width: int, backend: Backend) -> np.ndarray | Tensor:
    """Lane bit patterns for ``backend``: uint64 numpy (bitsliced, neuron) or int64 on x's own
    device (torch, triton). Booleans are one bit wide."""
    if not backend.tensors:
        if x.dtype == torch.bool:
            return x.reshape(-1).cpu().numpy().astype(np.uint64)
        return _bits_of(x, width)
    if x.dtype == torch.bool:
        return x.reshape(-1).to(torch.int64)
    int_dtype = {8: torch.int8, 16: torch.int16, 32: torch.int32, 64: torch.int64}[width]
    flat = x.detach().contiguous().reshape(-1)
    flat = flat if flat.dtype == int_dtype else flat.view(int_dtype)
    return flat.to(torch.int64) & ((1 << width) - 1) if width < 64 else flat


def _tensor_of(bits: np.ndarray | Tensor, dtype: torch.dtype, shape: torch.Size, width: int) -> Tensor:
    if isinstance(bits, Tensor):  # torch backend: stays on its device
        if width == 64:
            return bits.reshape(shape) if dtype == torch.int64 else bits.view(dtype).reshape(shape)
        wrapped = bits - ((bits >> (width - 1)) & 1) * (1 << width)  # two's complement of the low width bits
        ints = wrapped.to({8: torch.int8, 16: torch.int16, 32: torch.int32}[width])
        return (ints if dtype in (torch.int8, torch.int16, torch.int32) else ints.view(dtype)).reshape(shape)
    np_uint = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}[width]
    np_int = {8: np.int8, 16: np.int16, 32: np.int32, 64: np.int64}[width]
    ints = torch.from_numpy(bits.astype(np_uint).view(np_int).copy())
    if dtype in (torch.int8, torch.int16, torch.int32, torch.int64):
        return ints.reshape(shape)
    return ints.view(dtype).reshape(shape)


def _bool_of(bits: np.ndarray | Tensor, shape: torch.Size, device: torch.device) -> Tensor:
    if isinstance(bits, Tensor):
        return (bits != 0).reshape(shape)
    return torch.from_numpy(bits.astype(np.bool_)).reshape(shape).to(device)


def run_netlist(netlist: Netlist, op: str, inputs: Mapping[str, np.ndarray | Tensor], n: int,
                options: GateOptions) -> dict[str, np.ndarray] | dict[str, Tensor]:
    """Evaluate a netlist on N lanes with ``options.backend``; record activity under ``op`` in the
    active counters. ``inputs``: uint64 numpy bit patterns per input word (tensor backends: int64
    tensors, numpy arrays being converted); the outputs are numpy arrays, or int64 tensors on the
    tensor backends."""
    backend = options.backend
    counters = active_counters()
    if backend.tensors:
        tin = {k: v if isinstance(v, Tensor) else torch.from_numpy(v.view(np.int64)) for k, v in inputs.items()}
        if n == 0:
            device = next(iter(tin.values())).device if tin else torch.device("cpu")
            return {name: torch.zeros(0, dtype=torch.int64, device=device) for name in netlist.outputs}
        out, (spikes, events) = backend.evaluate(netlist, tin, bool(counters), options)
    else:
        if n == 0:
            return {name: np.zeros(0, dtype=np.uint64) for name in netlist.outputs}
        out, (spikes, events) = backend.evaluate(netlist, inputs, bool(counters), options)
    if counters:
        counts = OpCounts(1, n, netlist.n_gates * n, spikes, events)
        for counter in counters:
            counter.record(op, counts)
    return out


def _broadcast(op: str, tensors: Sequence[Tensor]) -> torch.Size:
    try:
        return torch.broadcast_shapes(*(t.shape for t in tensors))
    except RuntimeError:
        raise ValueError(f"{op}: shapes {[tuple(t.shape) for t in tensors]} cannot be broadcast together") from None


def _lane_width(kind: Kind, t: Tensor, fmt: FloatFormat | None) -> tuple[Tensor, int]:
    """An operand as the circuit reads it and its bits per lane: floats in their format, int32
    in 32 bits, booleans in one, other integers widened losslessly to int32 (int64: 64 bits)."""
    if kind is FLOAT:
        return t, cast(FloatFormat, fmt).width
    if kind is BOOL:
        return t, 1
    if kind is INT32 or t.dtype == torch.int32:
        return t, 32
    if kind is INT and t.dtype == torch.int64:
        return t, 64
    return t.to(torch.int32), 32


def apply(p: Primitive, operands: Sequence[Any], params: Mapping[str, Any], options: GateOptions,
          api: str | None = None) -> Tensor:
    """The primitive ``p`` on ``operands`` (broadcast together) by its gate circuit, with
    validated ``options`` (``api``: the operation named in errors, default ``isp.exact.<name>``)."""
    p.check(operands)
    args = p.circuit_args(operands, params)
    fmt = args[0] if args and isinstance(args[0], FloatFormat) else None
    first = next((t for spec, t in zip(p.operands, operands) if spec.kind is FLOAT), operands[0])
    device = first.device
    options = options.on(device, api or f"isp.exact.{p.name}")
    shape = _broadcast(p.name, operands)
    netlist = p.netlist(args)
    if netlist is None:  # wiring (a conversion to the operand's own format); a NaN still leaves canonical
        return canonical_nan(first.clone())
    n = math.prod(shape)
    inputs = {}
    for name, spec, t in zip(netlist.input_widths, p.operands, operands):
        t, width = _lane_width(spec.kind, t, fmt)
        inputs[name] = _bits_for(t.expand(shape), width, options.backend)
    out = run_netlist(netlist, p.counted(args), inputs, n, options)["y"]
    dtype = p.result_dtype(args)
    if dtype == torch.bool:
        return _bool_of(out, shape, device)
    width = {torch.int32: 32, torch.int64: 64}[dtype] if dtype in (torch.int32, torch.int64) else format_of(dtype).width
    return _tensor_of(out, dtype, shape, width).to(device)


class GateOperation(Protocol):
    """A public gate operation: ``op(*operands, *params, backend="bitsliced", **options) -> Tensor``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor: ...


_OPTIONS_DOC = """
backend: "bitsliced" (default: numba on CPU, Triton or torch elsewhere), "torch", "triton" or
    "neuron" (membrane simulation).
leak, noise, noise_model, generator: membrane leak beta in (0, 1], noise sigma and model
    ("synapse", "input", "threshold"), random generator; neuron backend only.
Raises TypeError for unsupported or mixed dtypes, ValueError for shapes that do not broadcast
and for unknown backends or options."""


def _operands_doc(p: Primitive) -> str:
    floats = [o.name for o in p.operands if o.kind is FLOAT]
    lines = [f"{', '.join(floats)}: float32, bfloat16 or float16 tensor{'s of one dtype' if len(floats) > 1 else ''}"
             ] if floats else []
    lines += [f"{o.name}: {o.kind.describe}" for o in p.operands if o.kind is not FLOAT]
    lines += [f"{name}: default {default}" for name, default in p.params]
    together = " (broadcast together)" if p.arity > 1 else ""
    return f"\n\nOperands{together}: " + "; ".join(lines) + "."


def public_operation(p: Primitive) -> Callable[..., Tensor]:
    """The public function of primitive ``p``: ``name(*operands, *params, backend="bitsliced",
    **options)``, options validated once per call, then :func:`apply`."""
    api = f"isp.exact.{p.name}"
    P = inspect.Parameter
    sig = inspect.Signature(
        [P(o.name, P.POSITIONAL_OR_KEYWORD, annotation="Tensor") for o in p.operands]
        + [P(name, P.POSITIONAL_OR_KEYWORD, default=default) for name, default in p.params]
        + [P("backend", P.POSITIONAL_OR_KEYWORD, default=DEFAULTS["backend"], annotation="str"),
           P("options", P.VAR_KEYWORD)],
        return_annotation="Tensor")
    takes = f"{p.arity} tensor{'s' if p.arity > 1 else ''} ({', '.join(o.name for o in p.operands)})"

    def operation(*args: Any, **kwargs: Any) -> Tensor:
        try:
            bound = sig.bind(*args, **kwargs).arguments
        except TypeError as exc:
            raise TypeError(f"{api}(): {exc}") from None
        backend = bound.pop("backend", DEFAULTS["backend"])
        if isinstance(backend, Tensor):  # one tensor too many
            raise TypeError(f"{api} takes {takes}, got {p.arity + 1}")
        options = gate_options(api, {"backend": backend, **bound.pop("options", {})})
        operands = [bound[o.name] for o in p.operands]
        params = {name: bound.get(name, default) for name, default in p.params}
        return apply(p, operands, params, options, api)

    operation.__name__ = operation.__qualname__ = p.name
    operation.__module__ = __name__
    operation.__doc__ = p.doc + _operands_doc(p) + _OPTIONS_DOC
    operation.__signature__ = sig  # type: ignore[attr-defined]
    return operation


PUBLIC: dict[str, GateOperation] = {name: public_operation(p) for name, p in PRIMITIVES.items()}
globals().update(PUBLIC)  # add, sub, mul, ..., where, to_bfloat16, from_int, to_int, logical_and, ...


# ------------------------------------------------------------------ packed reductions
def pack_rows(x: Tensor, shape: torch.Size, width: int, out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
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
    with kept_threads(max(1, wl // 64)):
        pack_gather(src.view({8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}[width]),
                    rows.astype(np.int64), width, out)
    return out, wl


def run_words(netlist: Netlist, op: str, words: np.ndarray, mask: np.ndarray, lanes: int) -> np.ndarray:
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
    return tree_words_of(_float_netlist(op, fmt), op, fmt.width, words, k, wl, L)


def tree_words_of(netlist: Netlist, op: str, width: int, words: np.ndarray, k: int, wl: int, L: int) -> np.ndarray:
    """:func:`_tree_words` for any two-input ``netlist`` on ``width``-line values (counted as ``op``)."""
    block_mask = bitsliced.lane_mask(L) if L else np.zeros(wl, np.uint64)
    while k > 1:
        half = k // 2
        blocks = words.reshape(width, k, wl)
        pair = np.empty((2 * width, half, wl), dtype=np.uint64)  # left operands' lines, then right's
        pair[:width] = blocks[:, 0:2 * half:2, :]
        pair[width:] = blocks[:, 1:2 * half:2, :]
        out = run_words(netlist, op, pair.reshape(2 * width, half * wl), np.tile(block_mask, half), half * L)
        if k % 2:
            out = np.concatenate([out.reshape(width, half, wl), blocks[:, k - 1:k, :]], axis=1).reshape(width, -1)
        words, k = out, half + k % 2
    return words


def _float_netlist(op: str, fmt: FloatFormat) -> Netlist:
    return cast(Netlist, PRIMITIVES[op].netlist((fmt,)))


def _unpack_rows(words: np.ndarray, fmt: FloatFormat, L: int, shape: torch.Size, device: torch.device) -> Tensor:
    return _tensor_of(bitsliced.unpack(words, L), fmt.dtype, shape, fmt.width).to(device)


def tree(op: str, x: Tensor, **kw: Any) -> Tensor:
    """Reduce the last dimension of ``x`` by the pairwise tree of ``op`` ("add", "maximum",
    "minimum"): element 2i with 2i+1, an odd last element carried up; the same order and bits as
    repeated :func:`add` calls (``isospike.exact.functions.tree_reduce``), evaluated with the
    values kept in packed spike lines between the tree's levels (bit-sliced backend)."""
    return tree_with(op, x, gate_options(f"isp.exact.tree_{op}", kw))


def tree_with(op: str, x: Tensor, options: GateOptions) -> Tensor:
    """:func:`tree` with validated options."""
    if op not in ("add", "maximum", "minimum"):
        raise ValueError(f"tree: op must be 'add', 'maximum' or 'minimum', got {op!r}")
    if x.shape[-1] == 0:
        raise ValueError("cannot reduce an empty dimension")
    options = options.on(x.device, f"isp.exact.tree_{op}")
    if options.backend.name != "bitsliced":  # one netlist run per level on the other backends
        return tree_levels(cast(Any, _Primitives(options)), op, x)
    fmt = format_of(x.dtype)
    k, lead = x.shape[-1], x.shape[:-1]
    L = math.prod(lead)
    words, wl = pack_rows(x, x.shape, fmt.width)
    return _unpack_rows(_tree_words(op, fmt, words, k, wl, L), fmt, L, lead, x.device)


class _Primitives:
    """``name(*operands)`` runs the primitive ``name`` with fixed options (what the pairwise tree of
    :func:`isospike.exact.functions.tree_levels` calls at each level)."""

    def __init__(self, options: GateOptions) -> None:
        self.options = options

    def __getattr__(self, name: str) -> Callable[..., Tensor]:
        primitive = PRIMITIVES[name]
        return lambda *operands: apply(primitive, operands, {}, self.options)


def dot(a: Tensor, b: Tensor, **kw: Any) -> Tensor:
    """Sum over the last dimension of a * b (broadcasting): every product by the multiplier
    circuit, then the pairwise add tree of :func:`tree`; the same bits as ``mul`` then the
    tree, with the products kept packed (bit-sliced backend)."""
    return dot_with(a, b, gate_options("isp.exact.dot", kw))


def dot_with(a: Tensor, b: Tensor, options: GateOptions) -> Tensor:
    """:func:`dot` with validated options."""
    shape = torch.broadcast_shapes(a.shape, b.shape)
    if len(shape) == 0 or shape[-1] == 0:
        raise ValueError(f"dot needs a last dimension with elements, got shape {tuple(shape)}")
    if a.dtype != b.dtype:
        raise TypeError(f"dot: operands must share one dtype, got {a.dtype} and {b.dtype}")
    options = options.on(a.device, "isp.exact.dot")
    if options.backend.name != "bitsliced":
        return tree_with("add", apply(PRIMITIVES["mul"], (a, b), {}, options), options)
    fmt = format_of(a.dtype)
    k, lead = shape[-1], shape[:-1]
    L = math.prod(lead)
    wl = (L + 63) // 64
    operands = np.empty((2 * fmt.width, k * wl), dtype=np.uint64)  # a's spike lines, then b's
    pack_rows(a, shape, fmt.width, operands[:fmt.width])
    pack_rows(b, shape, fmt.width, operands[fmt.width:])
    block_mask = bitsliced.lane_mask(L) if L else np.zeros(wl, np.uint64)
    products = run_words(_float_netlist("mul", fmt), "mul", operands, np.tile(block_mask, k), k * L)
    return _unpack_rows(_tree_words("add", fmt, products, k, wl, L), fmt, L, lead, a.device)
