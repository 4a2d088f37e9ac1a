"""Each floating-point ATen operation a captured forward may perform, computed by the pinned
algorithms of :mod:`isospike.exact.functions` on an arith (gate circuits or the float32
reference).

A handler takes the capture context and the operation's own arguments and returns what the
operation returns (same shapes, dtypes and tuple structure). It returns :data:`NATIVE` when the
operation turns out not to compute on floats (an integer ``add``, a ``sum`` of booleans), and
raises :class:`Refused` for arguments it has no pinned algorithm for (the dispatcher names the
operation and the module path).

Fused and decomposed: matrix products (``mm``, ``bmm``, ``addmm``, ``mv``, ``dot``), convolutions,
pooling, softmax, layer and batch norm are kept whole, each with the documented order of
:mod:`isospike.exact.functions` (products, then a pairwise tree over the reduced dimension,
then the bias). Attention is run through torch's math decomposition (the network forces
``SDPBackend.MATH``), so its matrix products and ``_safe_softmax`` come here one by one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from isospike.exact import functions as fn
from isospike.exact.primitives import BOOL, FLOAT, PRIMITIVES, Arith, AtenForm, Primitive

aten = torch.ops.aten
F32 = torch.float32


class Refused(Exception):
    """Raised by a handler for arguments that have no pinned algorithm; the message says why
    and what to do."""


NATIVE = object()  # a handler's answer: "not a float computation, run the operation as it is"

HANDLERS: dict[Any, Callable[..., Any]] = {}


def handles(*ops: Any) -> Callable:
    """Register a handler for ATen overloads or whole overload packets."""
    def register(handler: Callable) -> Callable:
        for op in ops:
            HANDLERS[op] = handler
        return handler
    return register


def handler_for(func: Any) -> Callable | None:
    return HANDLERS.get(func) or HANDLERS.get(func.overloadpacket)


# ------------------------------------------------------------------------------ operands
def _result_dtype(*vals: Any, int_to_float: bool = False) -> torch.dtype:
    from torch._prims_common import ELEMENTWISE_TYPE_PROMOTION_KIND as Kind
    from torch._prims_common import elementwise_dtypes

    kind = Kind.INT_TO_FLOAT if int_to_float else Kind.DEFAULT
    return elementwise_dtypes(*[v for v in vals if v is not None], type_promotion_kind=kind)[1]


def _check_float32(dtype: torch.dtype) -> None:
    if dtype != F32:
        raise Refused(f"it computes in {dtype}; the pinned circuits and their reference compute float32: cast the "
                      "model and its inputs with .float()")


def as_float32(ctx: Any, v: Tensor) -> Tensor:
    """A tensor operand as float32: float32 as it is; a 0-dim tensor of another float dtype (a
    Python constant torch wrapped) rounded once, as a constant; booleans exactly; integers by the
    int -> float conversion circuit."""
    if v.dtype == F32:
        return v
    if v.is_floating_point():
        if v.dim() == 0:
            return v.to(F32)
        _check_float32(v.dtype)
    if v.dtype == torch.bool:
        return v.to(F32)
    if v.is_complex():
        raise Refused("complex tensors have no circuits")
    return ctx.A.from_int(v, F32)


def floats(ctx: Any, *vals: Any, int_to_float: bool = False) -> list[Tensor] | None:
    """The operands of an elementwise operation as float32 tensors broadcast to one shape, or
    None when the operation's result is not floating (it runs natively). Python numbers become
    float32 constants (rounded once: constants are wiring, not arithmetic)."""
    dtype = _result_dtype(*vals, int_to_float=int_to_float)
    if not dtype.is_floating_point:
        return None
    _check_float32(dtype)
    tensors = [v for v in vals if isinstance(v, Tensor)]
    shape = torch.broadcast_shapes(*(t.shape for t in tensors)) if tensors else torch.Size()
    device = tensors[0].device if tensors else torch.device("cpu")
    out = []
    for v in vals:
        if isinstance(v, Tensor):
            t = as_float32(ctx, v)
        elif isinstance(v, (bool, int, float)):
            t = torch.tensor(float(v), dtype=F32, device=device)
        else:
            raise Refused(f"an operand of type {type(v).__name__} has no circuit")
        out.append(t.expand(shape))
    return out


def _float_input(ctx: Any, x: Tensor) -> Tensor | None:
    """``x`` for a unary operation: None for integer/boolean tensors (native), float32 checked."""
    if not x.is_floating_point():
        return None
    _check_float32(x.dtype)
    return x


def _const(x: Tensor, value: float) -> Tensor:
    return fn.const(x, value)


# ------------------------------------------------------------------------------ primitives
def _primitive_handler(p: Primitive, form: AtenForm) -> Callable:
    """The handler of the ATen operations of ``form``, derived from the primitive's declaration:
    a unary float operation computes float tensors (integer ones run natively); otherwise the
    float operands are promoted as torch promotes them (Python numbers become float32
    constants; integers divide as floats where the primitive says so), boolean operands are the
    conditions, and all are broadcast to one shape. ``alpha`` (add, sub, rsub) scales the second
    operand; ``rounding_mode`` (div) is refused on floats."""
    kinds = [spec.kind for spec in p.operands]
    if FLOAT not in kinds or any(kind not in (FLOAT, BOOL) for kind in kinds):
        raise TypeError(f"primitive {p.name}: handlers are derived for float operands (and boolean conditions); "
                        "write the handler of its ATen operations in isospike/exact/capture/handlers.py instead")

    def compute(A: Arith, operands: list[Tensor]) -> Tensor:
        r = getattr(A, p.name)(*operands)
        return A.logical_not(r) if form.negate else r

    if kinds == [FLOAT]:
        def unary(ctx: Any, x: Tensor) -> Any:
            if _float_input(ctx, x) is None:
                return NATIVE
            return compute(ctx.A, [x])
        return unary

    def elementwise(ctx: Any, *args: Any, alpha: Any = 1, rounding_mode: str | None = None) -> Any:
        if rounding_mode is not None:
            if _result_dtype(*args).is_floating_point:
                raise Refused(f"division with rounding_mode={rounding_mode!r} on floats has no pinned algorithm; "
                              "divide and round outside the model, or use integer division on integers")
            return NATIVE
        operands = list(args)
        at = [i for i, kind in enumerate(kinds) if kind is FLOAT]
        converted = floats(ctx, *(args[i] for i in at), int_to_float=p.int_to_float)
        if converted is None:
            return NATIVE
        for i, t in zip(at, converted):
            operands[i] = t
        if len(at) < len(kinds):  # boolean conditions (where)
            for i, kind in enumerate(kinds):
                if kind is BOOL and operands[i].dtype != torch.bool:
                    raise Refused(f"the condition is {operands[i].dtype}; pass a boolean condition")
            shape = torch.broadcast_shapes(*(t.shape for t in operands))
            operands = [t.expand(shape) for t in operands]
        if form.swap:
            operands.reverse()
        if alpha != 1:  # add/sub(a, b, alpha): a op alpha * b; rsub(a, b, alpha): b - alpha * a
            operands[-1] = ctx.A.mul(operands[-1], _const(operands[-1], alpha))
        return compute(ctx.A, operands)
    return elementwise


for _p in PRIMITIVES.values():
    for _form in _p.aten:
        handles(*_form.ops)(_primitive_handler(_p, _form))


@handles(aten.masked_fill.Scalar, aten.masked_fill.Tensor)
def _masked_fill(ctx: Any, x: Tensor, mask: Tensor, value: Any) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    v = value.to(F32) if isinstance(value, Tensor) else torch.tensor(float(value), dtype=F32, device=x.device)
    shape = torch.broadcast_shapes(x.shape, mask.shape)
    return ctx.A.where(mask.expand(shape), v.expand(shape), x.expand(shape))


def _unary(compute: Callable[..., Tensor]) -> Callable:
    def handler(ctx: Any, x: Tensor, *args: Any, **kwargs: Any) -> Any:
        if _float_input(ctx, x) is None:
            return NATIVE
        return compute(ctx.A, x, *args, **kwargs)
    return handler


handles(aten.rsqrt.default)(_unary(fn.rsqrt))
handles(aten.reciprocal.default)(_unary(fn.reciprocal))
handles(aten.exp.default)(_unary(fn.exp))
handles(aten.tanh.default)(_unary(fn.tanh))
handles(aten.sigmoid.default)(_unary(fn.sigmoid))
handles(aten.erf.default)(_unary(fn.erf))
handles(aten.silu.default)(_unary(fn.silu))
handles(aten.relu.default)(_unary(fn.relu))
handles(aten.sin.default)(_unary(fn.sin))
handles(aten.cos.default)(_unary(fn.cos))


@handles(aten.gelu.default)
def _gelu(ctx: Any, x: Tensor, approximate: str = "none") -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    if approximate not in ("none", "tanh"):
        raise Refused(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return fn.gelu(ctx.A, x, approximate)


@handles(aten.leaky_relu.default)
def _leaky_relu(ctx: Any, x: Tensor, negative_slope: float = 0.01) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    return A.where(A.lt(x, _const(x, 0.0)), A.mul(x, _const(x, negative_slope)), x)


def _clamp_to(A: Any, x: Tensor, lo: Any, hi: Any) -> Tensor:
    """min(max(x, lo), hi) with IEEE maximum/minimum (NaN propagates, as torch.clamp)."""
    def bound(v: Any) -> Tensor:
        return v.to(F32).expand_as(x) if isinstance(v, Tensor) else _const(x, float(v))

    if lo is not None:
        x = A.maximum(x, bound(lo))
    if hi is not None:
        x = A.minimum(x, bound(hi))
    return x


@handles(aten.clamp.default, aten.clamp.Tensor)
def _clamp(ctx: Any, x: Tensor, min: Any = None, max: Any = None) -> Any:  # noqa: A002 - aten's names
    if _float_input(ctx, x) is None:
        return NATIVE
    return _clamp_to(ctx.A, x, min, max)


@handles(aten.clamp_min.default, aten.clamp_min.Tensor)
def _clamp_min(ctx: Any, x: Tensor, lo: Any) -> Any:
    return _clamp(ctx, x, lo, None)


@handles(aten.clamp_max.default, aten.clamp_max.Tensor)
def _clamp_max(ctx: Any, x: Tensor, hi: Any) -> Any:
    return _clamp(ctx, x, None, hi)


@handles(aten.hardtanh.default)
def _hardtanh(ctx: Any, x: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Any:
    return _clamp(ctx, x, min_val, max_val)


@handles(aten.pow.Tensor_Scalar)
def _pow(ctx: Any, x: Tensor, exponent: Any) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    try:
        return fn.pow_scalar(ctx.A, x, float(exponent))
    except ValueError as exc:
        raise Refused(str(exc)) from None


# ------------------------------------------------------------------------------ conversions
@handles(aten._to_copy.default)
def _to_copy(ctx: Any, x: Tensor, *, dtype: torch.dtype | None = None, **options: Any) -> Any:
    if dtype is None or dtype == x.dtype:
        return NATIVE  # a copy (to another device or layout): no arithmetic
    y = convert_dtype(ctx, x, dtype)
    device = options.get("device")
    return y.to(device) if device is not None else y


def _check_int32_range(x: Tensor, dtype: torch.dtype) -> None:
    """The float -> integer circuit is 32 bits wide: a wider target is exact only for values it can
    hold (NaN and infinities have no integer value to carry)."""
    outside = ~((x >= -(2.0**31)) & (x < 2.0**31))  # NaN compares false: counted as outside
    if bool(outside.any()):
        raise ValueError(f"a float32 -> {dtype} conversion got {int(outside.sum())} value(s) outside the int32 range "
                         "(or NaN/inf); the gate circuit converts to 32-bit integers only, so it cannot give torch's "
                         "result: keep such values in floating point, or clamp them into [-2**31, 2**31) first")


def convert_dtype(ctx: Any, x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` converted to ``dtype`` through the conversion circuits: integer -> float32 (round to
    nearest even), float32 -> integer (toward zero), float32 -> bool (x != 0), float32 ->
    bfloat16/float16 (round to nearest even); integer/boolean conversions among themselves are
    wiring."""
    A = ctx.A
    if not x.is_floating_point() and not (dtype.is_floating_point):
        return x.to(dtype)
    if not x.is_floating_point():
        if dtype != F32:
            _check_float32(dtype)
        return as_float32(ctx, x)
    if x.dtype != F32 and x.dim() != 0:
        _check_float32(x.dtype)
    x = x.to(F32) if x.dtype != F32 else x
    if dtype == torch.bool:
        return A.logical_not(A.eq(x, _const(x, 0.0)))
    if not dtype.is_floating_point:
        if dtype.itemsize > 4:
            _check_int32_range(x, dtype)
        return A.to_int(x).to(dtype)
    if dtype == torch.bfloat16:
        return A.to_bfloat16(x)
    if dtype == torch.float16:
        return A.to_float16(x)
    _check_float32(dtype)
    return x


@handles(aten.copy_.default)
def _copy_(ctx: Any, dst: Tensor, src: Tensor, non_blocking: bool = False) -> Any:
    if src.dtype == dst.dtype or not (src.is_floating_point() or dst.is_floating_point()):
        return NATIVE
    return dst.copy_(convert_dtype(ctx, src, dst.dtype))


# ------------------------------------------------------------------------------ reductions
def _reduction_input(ctx: Any, x: Tensor, dtype: torch.dtype | None) -> Tensor | None:
    if not x.is_floating_point() and (dtype is None or not dtype.is_floating_point):
        return None
    if dtype is not None:
        _check_float32(dtype)
    return as_float32(ctx, x)


@handles(aten.sum.default, aten.sum.dim_IntList)
def _sum(ctx: Any, x: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: torch.dtype | None = None) -> Any:
    xf = _reduction_input(ctx, x, dtype)
    if xf is None:
        return NATIVE
    return fn.sum_dims(ctx.A, xf, dim, keepdim)


@handles(aten.mean.default, aten.mean.dim)
def _mean(ctx: Any, x: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: torch.dtype | None = None) -> Any:
    xf = _reduction_input(ctx, x, dtype)
    if xf is None:
        return NATIVE
    return fn.mean_dims(ctx.A, xf, dim, keepdim)


@handles(aten.var.correction, aten.std.correction)
def _var(ctx: Any, x: Tensor, dim: Any = None, *, correction: Any = None, keepdim: bool = False) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    y = fn.var_dims(ctx.A, x, dim, 1.0 if correction is None else float(correction), keepdim)
    return ctx.A.sqrt(y) if ctx.func.overloadpacket is aten.std else y


@handles(aten.amax.default, aten.amin.default)
def _amax(ctx: Any, x: Tensor, dim: Any = (), keepdim: bool = False) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    return fn.extreme_dims(ctx.A, x, dim, keepdim, largest=ctx.func.overloadpacket is aten.amax)


@handles(aten.max.default, aten.min.default)
def _max_all(ctx: Any, x: Tensor) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    return fn.extreme_dims(ctx.A, x, None, False, largest=ctx.func.overloadpacket is aten.max)


@handles(aten.max.dim, aten.min.dim)
def _max_dim(ctx: Any, x: Tensor, dim: int, keepdim: bool = False) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    values, indices = fn.arg_extreme(ctx.A, x, dim, largest=ctx.func.overloadpacket is aten.max)
    if keepdim:
        values, indices = values.unsqueeze(dim), indices.unsqueeze(dim)
    return values, indices


@handles(aten.argmax.default, aten.argmin.default)
def _argmax(ctx: Any, x: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    largest = ctx.func.overloadpacket is aten.argmax
    if dim is None:
        _, idx = fn.arg_extreme(ctx.A, x.reshape(-1), 0, largest)
        return idx.reshape([1] * x.dim()) if keepdim else idx
    _, idx = fn.arg_extreme(ctx.A, x, dim, largest)
    return idx.unsqueeze(dim) if keepdim else idx


# ------------------------------------------------------------------------------ products
def _matrix_operands(ctx: Any, *ts: Tensor) -> list[Tensor] | None:
    if not any(t.is_floating_point() for t in ts):
        return None
    return [as_float32(ctx, t) for t in ts]


@handles(aten.mm.default, aten.bmm.default, aten.matmul.default, aten.mv.default, aten.dot.default)
def _mm(ctx: Any, a: Tensor, b: Tensor) -> Any:
    ops = _matrix_operands(ctx, a, b)
    if ops is None:
        return NATIVE
    return fn.matmul(ctx.A, *ops)


def _scaled_sum(ctx: Any, product: Tensor, bias: Tensor, beta: Any, alpha: Any) -> Tensor:
    """alpha * product + beta * bias (bias added last; beta = 0 ignores it, NaN included, as torch)."""
    A = ctx.A
    if alpha != 1:
        product = A.mul(product, _const(product, alpha))
    if beta == 0:
        return product
    bias = as_float32(ctx, bias).expand_as(product)
    if beta != 1:
        bias = A.mul(bias, _const(product, beta))
    return A.add(product, bias)


@handles(aten.addmm.default, aten.baddbmm.default, aten.addmv.default)
def _addmm(ctx: Any, bias: Tensor, a: Tensor, b: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Any:
    ops = _matrix_operands(ctx, a, b)
    if ops is None:
        return NATIVE
    return _scaled_sum(ctx, fn.matmul(ctx.A, *ops), bias, beta, alpha)


@handles(aten.linear.default)
def _linear(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Any:
    ops = _matrix_operands(ctx, x, weight)
    if ops is None:
        return NATIVE
    return fn.linear(ctx.A, ops[0], ops[1], None if bias is None else as_float32(ctx, bias))


@handles(aten.convolution.default)
def _convolution(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, stride: Any, padding: Any, dilation: Any,
                 transposed: bool, output_padding: Any, groups: int) -> Any:
    """1-d and 2-d convolutions, any groups (depthwise included): im2col patches (data movement),
    then per output a pairwise tree over (input channel of its group, kernel row, kernel column),
    then the bias."""
    if _float_input(ctx, x) is None:
        return NATIVE
    if transposed:
        raise Refused("transposed convolution has no pinned algorithm yet; use an upsampling followed by a convolution")
    spatial = weight.dim() - 2
    if spatial not in (1, 2):
        raise Refused(f"{spatial}-d convolution has no pinned algorithm (1-d and 2-d do)")
    if spatial == 1:
        y = _conv2d(ctx, x.unsqueeze(-2), weight.unsqueeze(-2), bias, (1, stride[0]), (0, padding[0]),
                    (1, dilation[0]), groups)
        return y.squeeze(-2)
    return _conv2d(ctx, x, weight, bias, tuple(stride), tuple(padding), tuple(dilation), groups)


def _conv2d(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple, padding: tuple,
            dilation: tuple, groups: int) -> Tensor:
    unbatched = x.dim() == 3
    if unbatched:
        x = x.unsqueeze(0)
    n, c, h, w = x.shape
    out_c, c_g, kh, kw = weight.shape
    cols = F.unfold(x, (kh, kw), dilation, padding, stride)  # [N, C*kh*kw, L]
    out_h = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    L = cols.shape[-1]
    cols = cols.reshape(n, groups, c_g * kh * kw, L).permute(1, 0, 3, 2).reshape(groups, n * L, c_g * kh * kw)
    wg = weight.reshape(groups, out_c // groups, c_g * kh * kw).transpose(1, 2)  # [G, K, out_g]
    y = fn.matmul(ctx.A, cols, wg)  # [G, N*L, out_g]
    y = y.reshape(groups, n, L, out_c // groups).permute(1, 0, 3, 2).reshape(n, out_c, out_h, out_w)
    if bias is not None:
        y = ctx.A.add(y, as_float32(ctx, bias).reshape(1, -1, 1, 1).expand_as(y))
    return y[0] if unbatched else y


# ------------------------------------------------------------------------------ pooling
def _pair(v: Any) -> tuple[int, int]:
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return (int(v[0]), int(v[-1])) if v else (0, 0)


def _windows(x: Tensor, kernel: tuple, stride: tuple, padding: tuple, fill: float) -> tuple[Tensor, int, int]:
    """Pooling windows of ``x`` [N, C, H, W] as [N, C, L, kh*kw] (padding filled with ``fill``)."""
    n, c, h, w = x.shape
    xp = F.pad(x, (padding[1], padding[1], padding[0], padding[0]), value=fill)
    out_h, out_w = (h + 2 * padding[0] - kernel[0]) // stride[0] + 1, (w + 2 * padding[1] - kernel[1]) // stride[1] + 1
    cols = F.unfold(xp, kernel, 1, 0, stride)
    return cols.reshape(n, c, kernel[0] * kernel[1], out_h * out_w).transpose(2, 3), out_h, out_w


def _pool_input(x: Tensor) -> tuple[Tensor, bool]:
    return (x.unsqueeze(0), True) if x.dim() == 3 else (x, False)


@handles(aten.max_pool2d_with_indices.default, aten.max_pool2d.default)
def _max_pool2d(ctx: Any, x: Tensor, kernel_size: Any, stride: Any = (), padding: Any = 0, dilation: Any = 1,
                ceil_mode: bool = False) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    if ceil_mode or _pair(dilation) != (1, 1):
        raise Refused("max pooling with ceil_mode or dilation has no pinned algorithm; use the defaults")
    k = _pair(kernel_size)
    s = _pair(stride) if stride not in ((), [], None) else k
    p = _pair(padding)
    xb, unbatched = _pool_input(x)
    cols, out_h, out_w = _windows(xb, k, s, p, -math.inf)
    values, where_in_window = fn.arg_extreme(ctx.A, cols, -1, largest=True)
    values = values.reshape(*xb.shape[:2], out_h, out_w)
    if ctx.func.overloadpacket is aten.max_pool2d:
        return values[0] if unbatched else values
    # the flat index in the input plane of each window's maximum: integer wiring
    wh, ww = where_in_window // k[1], where_in_window % k[1]
    oh = torch.arange(out_h, device=x.device).repeat_interleave(out_w)
    ow = torch.arange(out_w, device=x.device).repeat(out_h)
    row = oh * s[0] - p[0] + wh
    col = ow * s[1] - p[1] + ww
    indices = (row * xb.shape[-1] + col).reshape(values.shape)
    return (values[0], indices[0]) if unbatched else (values, indices)


@handles(aten.avg_pool2d.default)
def _avg_pool2d(ctx: Any, x: Tensor, kernel_size: Any, stride: Any = (), padding: Any = 0, ceil_mode: bool = False,
                count_include_pad: bool = True, divisor_override: int | None = None) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    if ceil_mode:
        raise Refused("average pooling with ceil_mode has no pinned algorithm; use ceil_mode=False")
    k = _pair(kernel_size)
    s = _pair(stride) if stride not in ((), [], None) else k
    p = _pair(padding)
    xb, unbatched = _pool_input(x)
    cols, out_h, out_w = _windows(xb, k, s, p, 0.0)
    total = fn.tree_sum(ctx.A, cols, -1)
    if divisor_override:
        count = torch.full_like(total, float(divisor_override))
    elif count_include_pad or p == (0, 0):
        count = torch.full_like(total, float(k[0] * k[1]))
    else:  # windows at the border count only the values inside the input
        ones = F.pad(torch.ones_like(xb[:1, :1]), (p[1], p[1], p[0], p[0]))
        count = F.unfold(ones, k, 1, 0, s).sum(1).reshape(1, 1, -1).expand_as(total).to(F32)
    y = ctx.A.div(total, count).reshape(*xb.shape[:2], out_h, out_w)
    return y[0] if unbatched else y


@handles(aten._adaptive_avg_pool2d.default, aten.adaptive_avg_pool2d.default)
def _adaptive_avg_pool2d(ctx: Any, x: Tensor, output_size: Any) -> Any:
    """Each output cell averages its window [floor(i H / oh), ceil((i + 1) H / oh)) (torch's)
    by a pairwise-tree sum divided by the window size."""
    if _float_input(ctx, x) is None:
        return NATIVE
    xb, unbatched = _pool_input(x)
    h, w = xb.shape[-2:]
    oh, ow = _pair(output_size)
    rows = []
    for i in range(oh):
        r0, r1 = (i * h) // oh, -((-(i + 1) * h) // oh)
        cells = []
        for j in range(ow):
            c0, c1 = (j * w) // ow, -((-(j + 1) * w) // ow)
            window = xb[..., r0:r1, c0:c1].reshape(*xb.shape[:2], (r1 - r0) * (c1 - c0))
            s_ = fn.tree_sum(ctx.A, window, -1)
            cells.append(ctx.A.div(s_, _const(s_, float(window.shape[-1]))))
        rows.append(torch.stack(cells, -1))
    y = torch.stack(rows, -2)
    return y[0] if unbatched else y


# ------------------------------------------------------------------------------ softmax, norms
@handles(aten._softmax.default)
def _softmax(ctx: Any, x: Tensor, dim: int, half_to_float: bool = False) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    return fn.softmax(ctx.A, x, dim)


@handles(aten._safe_softmax.default)
def _safe_softmax(ctx: Any, x: Tensor, dim: int, dtype: torch.dtype | None = None) -> Any:
    """softmax whose rows of only -inf give 0 (attention with fully masked rows)."""
    if _float_input(ctx, x) is None:
        return NATIVE
    if dtype is not None:
        _check_float32(dtype)
    A = ctx.A
    p = fn.softmax(A, x, dim)
    dead = A.eq(x, _const(x, -math.inf)).all(dim, keepdim=True)
    return A.where(dead.expand_as(p), _const(p, 0.0), p)


@handles(aten._log_softmax.default)
def _log_softmax(ctx: Any, x: Tensor, dim: int, half_to_float: bool = False) -> Any:
    raise Refused("log_softmax needs a pinned logarithm, which isospike.exact does not have yet; apply it to the "
                  "converted model's outputs (outside the model) or return the logits")


@handles(aten.native_layer_norm.default)
def _layer_norm(ctx: Any, x: Tensor, normalized_shape: Any, weight: Tensor | None, bias: Tensor | None,
                eps: float) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    return fn.layer_norm_stats(ctx.A, x, normalized_shape, weight, bias, eps)


def _batch_norm_eval(ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, mean: Tensor | None,
                     var: Tensor | None, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """(x - mean) * (weight * rsqrt(var + eps)) + bias per channel (dim 1)."""
    if mean is None or var is None:
        raise Refused("BatchNorm without running statistics normalizes each batch by itself; give it running "
                      "statistics (track_running_stats=True)")
    A = ctx.A
    shape = (1, -1) + (1,) * (x.dim() - 2)
    inv = fn.rsqrt(A, A.add(var, fn.const(var, eps)))
    scale = A.mul(inv, weight) if weight is not None else inv
    y = A.mul(A.sub(x, mean.reshape(shape).expand_as(x)), scale.reshape(shape).expand_as(x))
    if bias is not None:
        y = A.add(y, bias.reshape(shape).expand_as(y))
    empty = x.new_empty(0)
    return y, empty, empty.clone()


@handles(aten.native_batch_norm.default, aten._native_batch_norm_legit.default)
def _batch_norm(ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, mean: Tensor | None,
                var: Tensor | None, training: bool, momentum: float, eps: float) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    if training:
        raise Refused("BatchNorm in training mode normalizes by the batch's own statistics and updates its running "
                      "ones; call model.eval() first (the exact network computes inference)")
    return _batch_norm_eval(ctx, x, weight, bias, mean, var, eps)


@handles(aten._native_batch_norm_legit_no_training.default)
def _batch_norm_no_training(ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, mean: Tensor,
                            var: Tensor, momentum: float, eps: float) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    return _batch_norm_eval(ctx, x, weight, bias, mean, var, eps)
