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

import numpy as np
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


HALF = (torch.bfloat16, torch.float16)
FORMATS = (F32, *HALF)


def _check_float32(dtype: torch.dtype) -> None:
    """Refuse floating dtypes without circuits (float64 and beyond)."""
    if dtype not in FORMATS:
        raise Refused(f"it computes in {dtype}; the pinned circuits and their reference compute float32, bfloat16 and "
                      "float16: cast the model and its inputs with .float() (or .bfloat16() / .half())")


def as_float32(ctx: Any, v: Tensor) -> Tensor:
    """A tensor operand as float32: float32 as it is; a 0-dim tensor of another float dtype (a
    Python constant torch wrapped) rounded once, as a constant; bfloat16/float16 tensors widened
    by the (exact) conversion circuit; booleans exactly; integers by the int -> float conversion
    circuit."""
    if v.dtype == F32:
        return v
    if v.is_floating_point():
        if v.dim() == 0:
            return v.to(F32)
        _check_float32(v.dtype)
        return ctx.A.to_float32(v)
    if v.dtype == torch.bool:
        return v.to(F32)
    if v.is_complex():
        raise Refused("complex tensors have no circuits")
    return ctx.A.from_int(v, F32)


def narrow(ctx: Any, y: Tensor, dtype: torch.dtype) -> Tensor:
    """A float32 result rounded once to ``dtype`` (bfloat16/float16) by the conversion circuit."""
    if y.dtype == dtype or not y.is_floating_point():
        return y
    return ctx.A.to_bfloat16(y) if dtype == torch.bfloat16 else ctx.A.to_float16(y)


def _in_format(ctx: Any, v: Any, dtype: torch.dtype, device: torch.device) -> Tensor:
    """An operand of an elementwise operation computed in the half format ``dtype``: tensors of
    that dtype as they are, numbers and 0-dim tensors rounded to it (constants), booleans
    exactly, integers through float32 (torch's conversion: int -> float32 -> ``dtype``)."""
    if isinstance(v, Tensor):
        if v.dtype == dtype:
            return v
        if v.is_floating_point() and v.dim() == 0:
            return v.to(dtype)
        if v.dtype == torch.bool:
            return v.to(dtype)
        return narrow(ctx, as_float32(ctx, v), dtype)
    if isinstance(v, (bool, int, float)):
        return torch.tensor(float(v), dtype=dtype, device=device)
    raise Refused(f"an operand of type {type(v).__name__} has no circuit")


def _exact_in(v: Any, dtype: torch.dtype) -> bool:
    """Whether a scalar operand (a number or a 0-dim tensor) is exactly a value of ``dtype``."""
    if isinstance(v, Tensor):
        if v.dtype == dtype or not v.is_floating_point():
            return True
        value = v.to(torch.float64)
    elif isinstance(v, (bool, int, float)):
        value = torch.tensor(float(v), dtype=torch.float64)
    else:
        return True
    back = value.to(dtype).to(torch.float64)
    return bool((back == value) | (torch.isnan(back) & torch.isnan(value)))


def floats(ctx: Any, *vals: Any, int_to_float: bool = False, opmath: bool = False,
           wide: bool = False) -> list[Tensor] | None:
    """The operands of an elementwise operation as tensors of one float format broadcast to one
    shape, or None when the operation's result is not floating (it runs natively). The format
    is torch's result dtype: float32, or bfloat16/float16, whose operations compute in the format
    (numbers are rounded to it, as torch rounds them for +, - and comparisons). ``opmath``
    (multiplication and division, where torch's CPU kernels take a scalar operand in float32
    unrounded): with a scalar that the half format does not hold exactly, the operands are
    float32 instead and the caller rounds the result (:func:`narrow`); ``wide``: float32 always."""
    dtype = _result_dtype(*vals, int_to_float=int_to_float)
    if not dtype.is_floating_point:
        return None
    _check_float32(dtype)
    tensors = [v for v in vals if isinstance(v, Tensor)]
    shape = torch.broadcast_shapes(*(t.shape for t in tensors)) if tensors else torch.Size()
    device = tensors[0].device if tensors else torch.device("cpu")
    scalars = [v for v in vals if not isinstance(v, Tensor) or v.dim() == 0]
    if dtype in HALF and not wide and not (opmath and not all(_exact_in(v, dtype) for v in scalars)):
        return [_in_format(ctx, v, dtype, device).expand(shape) for v in vals]
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
    """``x`` for a unary operation: None for integer/boolean tensors (native), its format checked."""
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
        result = _result_dtype(*(args[i] for i in at), int_to_float=p.int_to_float)
        # torch's CPU kernels multiply and divide by a scalar operand, and scale by alpha, in float32
        converted = floats(ctx, *(args[i] for i in at), int_to_float=p.int_to_float,
                           opmath=p.name in ("mul", "div"), wide=alpha != 1)
        if converted is None:
            return NATIVE
        if result in HALF and converted[0].dtype == F32:  # computed in float32, rounded once
            wide = list(args)
            for i, t in zip(at, converted):
                wide[i] = t
            return narrow(ctx, elementwise_in(ctx, wide, alpha), result)
        for i, t in zip(at, converted):
            operands[i] = t
        return elementwise_in(ctx, operands, alpha)

    def elementwise_in(ctx: Any, operands: list[Any], alpha: Any) -> Any:
        at = [i for i, kind in enumerate(kinds) if kind is FLOAT]
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


IN_FORMAT: set[Callable] = set()
"""Handlers that compute bfloat16/float16 operands in their own format (the elementwise IEEE
operations, selections, conversions); every other handler gets them widened to float32 and its
results rounded once (:func:`isospike.exact.capture.dispatch.widened`)."""



def in_format(handler: Callable) -> Callable:
    """Mark a handler as computing bfloat16/float16 operands in their own format (:data:`IN_FORMAT`)."""
    IN_FORMAT.add(handler)
    return handler


for _p in PRIMITIVES.values():
    for _form in _p.aten:
        in_format(handles(*_form.ops)(_primitive_handler(_p, _form)))


@in_format
@handles(aten.masked_fill.Scalar, aten.masked_fill.Tensor)
def _masked_fill(ctx: Any, x: Tensor, mask: Tensor, value: Any) -> Any:
    """where(mask, value, x) in x's format (the value rounded to it, a constant, as torch)."""
    if _float_input(ctx, x) is None:
        return NATIVE
    v = value.to(x.dtype) if isinstance(value, Tensor) else torch.tensor(float(value), dtype=x.dtype, device=x.device)
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
handles(aten.log.default)(_unary(fn.log))
handles(aten.log1p.default)(_unary(fn.log1p))


@handles(aten.softplus.default)
def _softplus(ctx: Any, x: Tensor, beta: Any = 1, threshold: Any = 20) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    return fn.softplus(ctx.A, x, float(beta), float(threshold))


@handles(aten.cumsum.default)
def _cumsum(ctx: Any, x: Tensor, dim: int, *, dtype: torch.dtype | None = None) -> Any:
    xf = _reduction_input(ctx, x, dtype)
    if xf is None:
        return NATIVE
    return fn.cumsum(ctx.A, xf, dim)


@handles(aten.sort.default, aten.sort.stable)
def _sort(ctx: Any, x: Tensor, dim: int = -1, descending: bool = False, *, stable: bool | None = None,
          **kwargs: Any) -> Any:
    """A stable sort, whatever ``stable`` says (torch leaves the order of equal values open then)."""
    if _float_input(ctx, x) is None:
        return NATIVE
    dim = kwargs.get("dim", dim)
    descending = kwargs.get("descending", descending)
    if x.dim() == 0:
        return x.clone(), torch.zeros((), dtype=torch.int64, device=x.device)
    return fn.sort(ctx.A, x, dim, bool(descending))


@handles(aten.topk.default)
def _topk(ctx: Any, x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:  # noqa: A002
    if _float_input(ctx, x) is None:
        return NATIVE
    if x.dim() == 0:
        return x.clone(), torch.zeros((), dtype=torch.int64, device=x.device)
    return fn.topk(ctx.A, x, int(k), dim, bool(largest))


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
    """Integers |e| <= 16, 0.5 and -0.5 by multiplications / sqrt / rsqrt; other exponents as
    e^(e log|x|) (:func:`isospike.exact.functions.pow_tensor`)."""
    if _float_input(ctx, x) is None:
        return NATIVE
    e = float(exponent)
    if e in (0.5, -0.5) or (e == int(e) and abs(e) <= 16):
        return fn.pow_scalar(ctx.A, x, e)
    return fn.pow_tensor(ctx.A, x, _const(x, e))


@handles(aten.pow.Tensor_Tensor, aten.pow.Scalar)
def _pow_tensor(ctx: Any, base: Any, exponent: Any) -> Any:
    """x ** y with a tensor exponent (or a number base): e^(y log|x|) with the C99 special cases
    (:func:`isospike.exact.functions.pow_tensor`)."""
    converted = floats(ctx, base, exponent)
    if converted is None:
        return NATIVE
    return fn.pow_tensor(ctx.A, *converted)


# ------------------------------------------------------------------------------ conversions
@in_format
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
    """``x`` converted to ``dtype`` through the conversion circuits: integer -> float (round to
    nearest even; to bfloat16/float16 through float32, as torch), float -> integer (toward zero),
    float -> bool (x != 0), between float formats by an exact widening to float32 and one
    rounding; integer/boolean conversions among themselves are wiring."""
    A = ctx.A
    if not x.is_floating_point() and not (dtype.is_floating_point):
        return x.to(dtype)
    if not x.is_floating_point():
        _check_float32(dtype)
        return narrow(ctx, as_float32(ctx, x), dtype)
    _check_float32(x.dtype)
    if dtype == torch.bool:
        return A.logical_not(A.eq(x, _const(x, 0.0)))
    if not dtype.is_floating_point:
        if dtype == torch.int64:
            return A.to_int64(x)
        if dtype.itemsize > 4:
            _check_int32_range(x, dtype)
        return A.to_int(x).to(dtype)
    _check_float32(dtype)
    if dtype == x.dtype:
        return x
    return narrow(ctx, as_float32(ctx, x), dtype)


@in_format
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
    spatial = weight.dim() - 2
    if spatial not in (1, 2):
        raise Refused(f"{spatial}-d convolution has no pinned algorithm (1-d and 2-d ones have, transposed ones too) "
                      "and no operation that converts replaces it inside the model: compute the layer outside")
    if transposed:
        if spatial == 1:
            y = _conv_transpose2d(ctx, x.unsqueeze(-2), weight.unsqueeze(-2), bias, (1, stride[0]), (0, padding[0]),
                                  (0, output_padding[0]), (1, dilation[0]), groups)
            return y.squeeze(-2)
        return _conv_transpose2d(ctx, x, weight, bias, tuple(stride), tuple(padding), tuple(output_padding),
                                 tuple(dilation), groups)
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


def _transposed_taps(out_size: int, in_size: int, k: int, s: int, p: int, d: int) -> list[list[tuple[int, int]]]:
    """Per output position o of a transposed convolution along one dimension, its taps (kernel
    index j, input index i) with o = i s - p + j d, in kernel order."""
    taps: list[list[tuple[int, int]]] = []
    for o in range(out_size):
        row = []
        for j in range(k):
            t = o + p - j * d
            if t % s == 0 and 0 <= t // s < in_size:
                row.append((j, t // s))
        taps.append(row)
    return taps


def _conv_transpose2d(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple, padding: tuple,
                      output_padding: tuple, dilation: tuple, groups: int) -> Tensor:
    """Transposed convolution as its gather and products: each output sums, by the pairwise
    tree, exactly the products x[c, i, j] * w[c, o, kh, kw] that reach it (input channel of its
    group, kernel row, kernel column: the order of the forward convolution), then the bias.
    Outputs are grouped by their number of taps (interior phases, borders); no zeros are
    inserted, so an output without taps is +0 (+ bias)."""
    unbatched = x.dim() == 3
    if unbatched:
        x = x.unsqueeze(0)
    n, c, h, w = x.shape
    _, og, kh, kw = weight.shape
    cg = c // groups
    out_h = (h - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kh - 1) + output_padding[0] + 1
    out_w = (w - 1) * stride[1] - 2 * padding[1] + dilation[1] * (kw - 1) + output_padding[1] + 1
    rows = _transposed_taps(out_h, h, kh, stride[0], padding[0], dilation[0])
    cols = _transposed_taps(out_w, w, kw, stride[1], padding[1], dilation[1])
    y = x.new_zeros(n, groups, og, out_h * out_w)
    by_count: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for oh in range(out_h):
        for ow in range(out_w):
            by_count.setdefault((len(rows[oh]), len(cols[ow])), []).append((oh, ow))
    xs = x.reshape(n, groups, cg, h * w)
    ws = weight.reshape(groups, cg, og, kh * kw)
    for (a, b), positions in by_count.items():
        if a * b == 0:
            continue  # no taps: +0
        # per position, its taps in (channel, kernel row, kernel column) order
        spatial = torch.tensor([[ih * w + iw for _, ih in rows[oh] for _, iw in cols[ow]] for oh, ow in positions])
        kernel = torch.tensor([[jh * kw + jw for jh, _ in rows[oh] for jw, _ in cols[ow]] for oh, ow in positions])
        P, T = spatial.shape
        xg = xs[:, :, :, spatial]  # [N, G, cg, P, T]
        xg = xg.permute(0, 1, 3, 2, 4).reshape(n, groups, P, 1, cg * T)
        wg = ws[:, :, :, kernel]  # [G, cg, og, P, T]
        wg = wg.permute(0, 3, 2, 1, 4).reshape(1, groups, P, og, cg * T)
        out = ctx.A.dot(xg, wg)  # [N, G, P, og]
        where = torch.tensor([oh * out_w + ow for oh, ow in positions])
        y[..., where] = out.transpose(2, 3)
    y = y.reshape(n, groups * og, out_h, out_w)
    if bias is not None:
        y = ctx.A.add(y, as_float32(ctx, bias).reshape(1, -1, 1, 1).expand_as(y))
    return y[0] if unbatched else y


# ------------------------------------------------------------------------------ upsampling
@handles(aten.upsample_nearest1d.default, aten.upsample_nearest2d.default, aten.upsample_nearest3d.default,
         aten._upsample_nearest_exact1d.default, aten._upsample_nearest_exact2d.default,
         aten._upsample_nearest_exact3d.default)
def _upsample_nearest(ctx: Any, x: Tensor, *args: Any, **kwargs: Any) -> Any:
    """Nearest-neighbour upsampling is data movement: the source of every output is found by
    running torch's own kernel on a grid of source indices (float64, exact), then gathered."""
    if _float_input(ctx, x) is None:
        return NATIVE
    spatial = x.shape[2:]
    grid = torch.arange(math.prod(spatial), dtype=torch.float64).reshape(1, 1, *spatial)
    src = ctx.func(grid, *args, **kwargs).reshape(-1).long().to(x.device)
    out_spatial = ctx.func(grid, *args, **kwargs).shape[2:]
    return x.reshape(*x.shape[:2], -1)[..., src].reshape(*x.shape[:2], *out_spatial)


def _linear_taps(in_size: int, out_size: int, align_corners: bool, scale: float | None) -> tuple[Tensor, Tensor,
                                                                                                 Tensor, Tensor]:
    """(i0, i1, lambda0, lambda1) per output index of linear interpolation, computed in float32 by
    torch's CPU formulas (area_pixel_compute_scale / _source_index, guard_index_and_lambda):
    constants of the layer's shape, not arithmetic on the data."""
    f32 = np.float32
    if align_corners:
        ratio = f32(in_size - 1) / f32(out_size - 1) if out_size > 1 else f32(0)
    else:
        ratio = f32(1.0 / scale) if scale is not None and scale > 0 else f32(in_size) / f32(out_size)
    dst = np.arange(out_size).astype(f32)
    if align_corners:
        real = ratio * dst
    else:
        real = np.maximum(ratio * (dst + f32(0.5)) - f32(0.5), f32(0))
    i0 = np.minimum(np.floor(real).astype(np.int64), in_size - 1)
    lam1 = np.minimum(np.maximum(real - i0.astype(f32), f32(0)), f32(1)).astype(f32)
    i1 = i0 + (i0 < in_size - 1)
    lam0 = (f32(1) - lam1).astype(f32)
    return (torch.from_numpy(i0), torch.from_numpy(i1), torch.from_numpy(lam0.copy()), torch.from_numpy(lam1.copy()))


def _interp_last(A: Any, x: Tensor, taps: tuple[Tensor, Tensor, Tensor, Tensor], dim: int) -> Tensor:
    """x[..., i0] * lambda0 + x[..., i1] * lambda1 along ``dim``."""
    i0, i1, l0, l1 = (t.to(x.device) for t in taps)
    shape = [1] * x.dim()
    shape[dim] = -1
    a, b = x.index_select(dim, i0), x.index_select(dim, i1)
    return A.add(A.mul(a, l0.reshape(shape).expand_as(a)), A.mul(b, l1.reshape(shape).expand_as(b)))


@handles(aten.upsample_bilinear2d.default, aten.upsample_linear1d.default)
def _upsample_linear(ctx: Any, x: Tensor, output_size: Any, align_corners: bool, *scales: Any) -> Any:
    """Linear (1-d) and bilinear (2-d) upsampling, pinned: along the last dimension
    r = x[w0] * lw0 + x[w1] * lw1 per input row, then y = r[h0] * lh0 + r[h1] * lh1 (the order
    of torch's generic CPU kernel), with the source indices and weights of torch's formulas."""
    if _float_input(ctx, x) is None:
        return NATIVE
    sizes = list(output_size)
    spatial = x.dim() - 2
    per_dim: list[Any] = list(scales) + [None] * (spatial - len(scales))
    y = x
    for d in reversed(range(spatial)):
        taps = _linear_taps(x.shape[2 + d], int(sizes[d]), bool(align_corners), per_dim[d])
        y = _interp_last(ctx.A, y, taps, 2 + d)
    return y


@handles(aten._upsample_bilinear2d_aa.default, aten.upsample_bicubic2d.default, aten._upsample_bicubic2d_aa.default,
         aten.upsample_trilinear3d.default)
def _upsample_refused(ctx: Any, x: Tensor, *args: Any, **kwargs: Any) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    raise Refused("this interpolation mode has no pinned algorithm; mode='nearest', 'nearest-exact', 'linear' and "
                  "'bilinear' (without antialias) convert")


# ------------------------------------------------------------------------------ pooling
def _pair(v: Any) -> tuple[int, int]:
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return (int(v[0]), int(v[-1])) if v else (0, 0)


def _pool_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch's pooling output size (pooling_output_shape): with ceil_mode a last window may hang
    over the end, but must start inside the input or its left padding."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _windows(x: Tensor, kernel: tuple, stride: tuple, padding: tuple, fill: float, dilation: tuple = (1, 1),
             ceil_mode: bool = False) -> tuple[Tensor, int, int]:
    """Pooling windows of ``x`` [N, C, H, W] as [N, C, L, kh*kw] (padding, and the overhang of
    ceil_mode's last windows, filled with ``fill``)."""
    n, c, h, w = x.shape
    out_h = _pool_size(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    out_w = _pool_size(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    extra_h = max(0, (out_h - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1 - (h + 2 * padding[0]))
    extra_w = max(0, (out_w - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1 - (w + 2 * padding[1]))
    xp = F.pad(x, (padding[1], padding[1] + extra_w, padding[0], padding[0] + extra_h), value=fill)
    cols = F.unfold(xp, kernel, dilation, 0, stride)
    return cols.reshape(n, c, kernel[0] * kernel[1], out_h * out_w).transpose(2, 3), out_h, out_w


def _pool_input(x: Tensor) -> tuple[Tensor, bool]:
    return (x.unsqueeze(0), True) if x.dim() == 3 else (x, False)


@handles(aten.max_pool2d_with_indices.default, aten.max_pool2d.default)
def _max_pool2d(ctx: Any, x: Tensor, kernel_size: Any, stride: Any = (), padding: Any = 0, dilation: Any = 1,
                ceil_mode: bool = False) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    k = _pair(kernel_size)
    s = _pair(stride) if stride not in ((), [], None) else k
    p = _pair(padding)
    d = _pair(dilation)
    xb, unbatched = _pool_input(x)
    cols, out_h, out_w = _windows(xb, k, s, p, -math.inf, d, bool(ceil_mode))
    values, where_in_window = fn.arg_extreme(ctx.A, cols, -1, largest=True)
    values = values.reshape(*xb.shape[:2], out_h, out_w)
    if ctx.func.overloadpacket is aten.max_pool2d:
        return values[0] if unbatched else values
    # the flat index in the input plane of each window's maximum: integer wiring
    wh, ww = where_in_window // k[1], where_in_window % k[1]
    oh = torch.arange(out_h, device=x.device).repeat_interleave(out_w)
    ow = torch.arange(out_w, device=x.device).repeat(out_h)
    row = oh * s[0] - p[0] + wh * d[0]
    col = ow * s[1] - p[1] + ww * d[1]
    indices = (row * xb.shape[-1] + col).reshape(values.shape)
    return (values[0], indices[0]) if unbatched else (values, indices)


@handles(aten.avg_pool2d.default)
def _avg_pool2d(ctx: Any, x: Tensor, kernel_size: Any, stride: Any = (), padding: Any = 0, ceil_mode: bool = False,
                count_include_pad: bool = True, divisor_override: int | None = None) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    k = _pair(kernel_size)
    s = _pair(stride) if stride not in ((), [], None) else k
    p = _pair(padding)
    xb, unbatched = _pool_input(x)
    cols, out_h, out_w = _windows(xb, k, s, p, 0.0, ceil_mode=bool(ceil_mode))
    total = fn.tree_sum(ctx.A, cols, -1)
    if divisor_override:
        count = torch.full_like(total, float(divisor_override))
    elif (count_include_pad or p == (0, 0)) and not ceil_mode:
        count = torch.full_like(total, float(k[0] * k[1]))
    else:  # the window's cells inside the input (and its padding, with count_include_pad), as torch counts them
        def cells(size: int, out: int, i: int) -> list[int]:
            counts = []
            for o in range(out):
                start, end = o * s[i] - p[i], min(o * s[i] - p[i] + k[i], size + p[i])
                if not count_include_pad:
                    start, end = max(start, 0), min(end, size)
                counts.append(end - start)
            return counts
        rows, cols_ = cells(xb.shape[-2], out_h, 0), cells(xb.shape[-1], out_w, 1)
        count = torch.tensor([[float(a * b) for b in cols_] for a in rows]).reshape(1, 1, -1).expand_as(total)
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
    if _float_input(ctx, x) is None:
        return NATIVE
    return fn.log_softmax(ctx.A, x, dim)


@handles(aten.native_layer_norm.default)
def _layer_norm(ctx: Any, x: Tensor, normalized_shape: Any, weight: Tensor | None, bias: Tensor | None,
                eps: float) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    return fn.layer_norm_stats(ctx.A, x, normalized_shape, weight, bias, eps)


def _batch_norm_eval(ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, mean: Tensor | None,
                     var: Tensor | None, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """(x - mean) * (weight * rsqrt(var + eps)) + bias per channel (dim 1)."""
    if mean is None or var is None:  # no running statistics: the batch's own
        return _batch_norm_batch_stats(ctx, x, weight, bias, None, None, 0.0, eps)
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
        return _batch_norm_batch_stats(ctx, x, weight, bias, mean, var, momentum, eps)
    return _batch_norm_eval(ctx, x, weight, bias, mean, var, eps)


def _batch_norm_batch_stats(ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None,
                            running_mean: Tensor | None, running_var: Tensor | None, momentum: float,
                            eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """Normalization by the batch's own statistics (BatchNorm in training mode or without
    running statistics; InstanceNorm, which torch runs as a batch norm over N * C channels):
    per channel the pairwise-tree mean and biased variance over (N, *), then
    (x - mean) * (weight * rsqrt(var + eps)) + bias as in eval mode. Running statistics, when
    given, are updated as torch does: (1 - momentum) * running + momentum * batch (the
    variance unbiased: var * n / (n - 1))."""
    A = ctx.A
    mean, var, count = fn.batch_stats(A, x)
    y, _, _ = _batch_norm_eval(ctx, x, weight, bias, mean, var, eps)
    invstd = fn.rsqrt(A, A.add(var, fn.const(var, eps)))
    if running_mean is not None and running_var is not None:
        keep, take = fn.const(mean, 1.0 - momentum), fn.const(mean, momentum)
        unbiased = A.div(A.mul(var, fn.const(var, float(count))), fn.const(var, float(count - 1 if count > 1 else 0)))
        running_mean.copy_(A.add(A.mul(running_mean, keep), A.mul(mean, take)))
        running_var.copy_(A.add(A.mul(running_var, keep), A.mul(unbiased, take)))
    return y, mean, invstd


@handles(aten._native_batch_norm_legit.no_stats)
def _batch_norm_no_stats(ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, training: bool,
                         momentum: float, eps: float) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    return _batch_norm_batch_stats(ctx, x, weight, bias, None, None, momentum, eps)


@handles(aten.native_group_norm.default)
def _group_norm(ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, N: int, C: int, HxW: int,
                group: int, eps: float) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    return fn.group_norm(ctx.A, x, group, weight, bias, eps)


@handles(aten._native_batch_norm_legit_no_training.default)
def _batch_norm_no_training(ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, mean: Tensor,
                            var: Tensor, momentum: float, eps: float) -> Any:
    if _float_input(ctx, x) is None:
        return NATIVE
    return _batch_norm_eval(ctx, x, weight, bias, mean, var, eps)


@handles(aten.nan_to_num.default)
def _nan_to_num(ctx: Any, x: Tensor, nan: float | None = None, posinf: float | None = None,
                neginf: float | None = None) -> Any:
    """NaN, +inf and -inf replaced by constants (defaults: 0 and the format's largest finite
    values) by comparison and multiplexer circuits."""
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    big = torch.finfo(x.dtype).max
    y = A.where(A.eq(x, _const(x, math.inf)), _const(x, big if posinf is None else posinf), x)
    y = A.where(A.eq(x, _const(x, -math.inf)), _const(x, -big if neginf is None else neginf), y)
    return A.where(A.logical_not(A.eq(x, x)), _const(x, 0.0 if nan is None else nan), y)


# ------------------------------------------------------------------------------ more activations
handles(aten.expm1.default)(_unary(fn.expm1))


def _num(x: Tensor, v: Any) -> Tensor:
    return _const(x, float(v))


@handles(aten.hardsigmoid.default)
def _hardsigmoid(ctx: Any, x: Tensor) -> Any:
    """min(max(x + 3, 0), 6) / 6, as torch's CPU kernel."""
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    return A.div(_clamp_to(A, A.add(x, _num(x, 3)), 0.0, 6.0), _num(x, 6))


@handles(aten.hardswish.default)
def _hardswish(ctx: Any, x: Tensor) -> Any:
    """x * min(max(x + 3, 0), 6) / 6, left to right, as torch's CPU kernel."""
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    return A.div(A.mul(x, _clamp_to(A, A.add(x, _num(x, 3)), 0.0, 6.0)), _num(x, 6))


@handles(aten.mish.default)
def _mish(ctx: Any, x: Tensor) -> Any:
    """x * tanh(log1p(e^x)), as torch's CPU kernel."""
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    return A.mul(x, fn.tanh(A, fn.log1p(A, fn.exp(A, x))))


def _elu(A: Any, x: Tensor, alpha: float, scale: float, input_scale: float) -> Tensor:
    """x > 0 ? scale x : (alpha scale) expm1(input_scale x) (multiplications by 1 left out)."""
    xi = x if input_scale == 1 else A.mul(x, _num(x, input_scale))
    neg = fn.expm1(A, xi)
    coef = float(torch.tensor(alpha * scale, dtype=torch.float64).float())  # torch's float32 negcoef
    if coef != 1:
        neg = A.mul(neg, _num(x, coef))
    pos = x if scale == 1 else A.mul(x, _num(x, scale))
    return A.where(A.lt(_num(x, 0), x), pos, neg)


@handles(aten.elu.default)
def _elu_handler(ctx: Any, x: Tensor, alpha: Any = 1, scale: Any = 1, input_scale: Any = 1) -> Any:
    """ELU and SELU (torch's elu with scale): see :func:`_elu`."""
    if _float_input(ctx, x) is None:
        return NATIVE
    return _elu(ctx.A, x, float(alpha), float(scale), float(input_scale))


@handles(aten.celu.default)
def _celu(ctx: Any, x: Tensor, alpha: Any = 1.0) -> Any:
    """CELU = elu(x, alpha, 1, 1 / alpha), as torch computes it."""
    if _float_input(ctx, x) is None:
        return NATIVE
    return _elu(ctx.A, x, float(alpha), 1.0, 1.0 / float(alpha))


@handles(aten._prelu_kernel.default)
def _prelu(ctx: Any, x: Tensor, weight: Tensor) -> Any:
    """x > 0 ? x : weight * x."""
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    w = as_float32(ctx, weight).expand_as(x)
    return A.where(A.lt(_num(x, 0), x), x, A.mul(w, x))


@handles(aten.glu.default)
def _glu(ctx: Any, x: Tensor, dim: int = -1) -> Any:
    """a * sigmoid(b) for the two halves a, b of ``dim``."""
    if _float_input(ctx, x) is None:
        return NATIVE
    a, b = x.chunk(2, dim)
    return ctx.A.mul(a, fn.sigmoid(ctx.A, b))


@handles(aten.log_sigmoid_forward.default)
def _log_sigmoid(ctx: Any, x: Tensor) -> Any:
    """(min(x, 0) - log1p(z), z) with z = e^-|x|, as torch's CPU kernel (z is its backward buffer)."""
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    z = fn.exp(A, A.neg(A.abs(x)))
    return A.sub(A.minimum(x, _num(x, 0)), fn.log1p(A, z)), z


@handles(aten.softshrink.default)
def _softshrink(ctx: Any, x: Tensor, lambd: Any = 0.5) -> Any:
    """x > l ? x - l : (x < -l ? x + l : x * 0), as torch's CPU kernel (NaN stays NaN, signed zeros)."""
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    lo, hi = _num(x, -float(lambd)), _num(x, lambd)
    y = A.where(A.lt(x, lo), A.add(x, hi), A.mul(x, _num(x, 0)))
    return A.where(A.lt(hi, x), A.sub(x, hi), y)


@handles(aten.hardshrink.default)
def _hardshrink(ctx: Any, x: Tensor, lambd: Any = 0.5) -> Any:
    """-l <= x <= l ? 0 : x."""
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    inside = A.logical_and(A.le(_num(x, -float(lambd)), x), A.le(x, _num(x, lambd)))
    return A.where(inside, _num(x, 0), x)


@handles(aten.threshold.default)
def _threshold(ctx: Any, x: Tensor, threshold: Any, value: Any) -> Any:
    """x <= threshold ? value : x."""
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    return A.where(A.le(x, _num(x, threshold)), _num(x, value), x)


@handles(aten.rrelu_with_noise.default)
def _rrelu(ctx: Any, x: Tensor, noise: Tensor, lower: Any = 0.125, upper: Any = 1 / 3, training: bool = False,
           generator: Any = None) -> Any:
    """RReLU in eval mode: leaky ReLU with slope (lower + upper) / 2."""
    if _float_input(ctx, x) is None:
        return NATIVE
    if training:
        raise Refused("RReLU in training mode draws a random slope per element; call model.eval() (a fixed slope "
                      "(lower + upper) / 2, which converts)")
    return _leaky_relu(ctx, x, (float(lower) + float(upper)) / 2)


# ------------------------------------------------------------------------------ rounding, tests, signs
ROUND_LIMIT = 8388608.0  # 2^23: every float32 at or beyond it is an integer


@handles(aten.round.default)
def _round(ctx: Any, x: Tensor) -> Any:
    """Round half to even: (|x| + 2^23) - 2^23 (the addition rounds to an integer, to nearest
    even) with x's sign; |x| >= 2^23, infinities and NaN unchanged; zeros keep their sign."""
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    big = _num(x, ROUND_LIMIT)
    r = A.sub(A.add(A.abs(x), big), big)
    y = A.where(A.lt(x, _num(x, 0)), A.neg(r), r)
    y = A.where(A.eq(x, _num(x, 0)), x, y)
    return A.where(A.lt(A.abs(x), big), y, x)


def _trunc(A: Any, x: Tensor) -> Tensor:
    """Toward zero: the float -> int32 -> float circuits below 2^23 (zeros with x's sign), x itself beyond."""
    t = A.from_int(A.to_int(x), x.dtype)
    t = A.where(A.eq(t, _num(x, 0)), A.mul(x, _num(x, 0)), t)
    return A.where(A.lt(A.abs(x), _num(x, ROUND_LIMIT)), t, x)


@handles(aten.trunc.default, aten.floor.default, aten.ceil.default, aten.frac.default)
def _integral(ctx: Any, x: Tensor) -> Any:
    """trunc (toward zero), floor (trunc - 1 where x < trunc), ceil (trunc + 1 where x > trunc),
    frac (x - trunc(x)), as torch (signed zeros included)."""
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    t = _trunc(A, x)
    op = ctx.func.overloadpacket
    if op is aten.floor:
        return A.where(A.lt(x, t), A.sub(t, _num(x, 1)), t)
    if op is aten.ceil:
        return A.where(A.lt(t, x), A.add(t, _num(x, 1)), t)
    if op is aten.frac:
        return A.sub(x, t)
    return t


@handles(aten.sign.default, aten.sgn.default)
def _sign(ctx: Any, x: Tensor) -> Any:
    """1 for x > 0, -1 for x < 0, else +0 (zeros and NaN), as torch's CPU kernel."""
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    zero = _num(x, 0)
    return A.where(A.lt(zero, x), _num(x, 1), A.where(A.lt(x, zero), _num(x, -1), zero))


@handles(aten.copysign.Tensor, aten.copysign.Scalar)
def _copysign(ctx: Any, a: Any, b: Any) -> Any:
    """|a| with the sign of b (the sign of a zero b from 1/b; a NaN b counts as positive)."""
    converted = floats(ctx, a, b)
    if converted is None:
        return NATIVE
    A = ctx.A
    x, s = converted
    m = A.abs(x)
    return A.where(fn._signbit(A, s), A.neg(m), m)


@handles(aten.isnan.default, aten.isinf.default, aten.isfinite.default, aten.isposinf.default,
         aten.isneginf.default)
def _classify(ctx: Any, x: Tensor) -> Any:
    """NaN: x != x; infinity: |x| == inf (+inf / -inf: x == +-inf); finite: |x| < inf; by
    comparison circuits."""
    if not x.is_floating_point():
        return NATIVE
    A = ctx.A
    op = ctx.func.overloadpacket
    inf = _num(x, math.inf)
    if op is aten.isnan:
        return A.logical_not(A.eq(x, x))
    if op is aten.isinf:
        return A.eq(A.abs(x), inf)
    if op is aten.isposinf:
        return A.eq(x, inf)
    if op is aten.isneginf:
        return A.eq(x, _num(x, -math.inf))
    return A.lt(A.abs(x), inf)


# ------------------------------------------------------------------------------ fused arithmetic
def _value(x: Tensor, v: Any) -> Tensor:
    return v.to(x.dtype).expand_as(x) if isinstance(v, Tensor) else _num(x, v)


@handles(aten.addcmul.default, aten.addcdiv.default)
def _addc(ctx: Any, x: Tensor, t1: Tensor, t2: Tensor, value: Any = 1) -> Any:
    """x + value * t1 * t2 / x + value * t1 / t2, left to right as torch's CPU kernel."""
    converted = floats(ctx, x, t1, t2)
    if converted is None:
        return NATIVE
    A = ctx.A
    x, t1, t2 = converted
    scaled = A.mul(_value(t1, value), t1)
    op = A.mul if ctx.func.overloadpacket is aten.addcmul else A.div
    return A.add(x, op(scaled, t2))


@handles(aten.lerp.Scalar, aten.lerp.Tensor)
def _lerp(ctx: Any, start: Tensor, end: Tensor, weight: Any) -> Any:
    """weight < 0.5 ? start + weight (end - start) : end - (end - start) (1 - weight), as torch."""
    converted = floats(ctx, start, end, weight)
    if converted is None:
        return NATIVE
    A = ctx.A
    s, e, w = converted
    d = A.sub(e, s)
    low = A.add(s, A.mul(w, d))
    high = A.sub(e, A.mul(d, A.sub(_num(w, 1), w)))
    return A.where(A.lt(A.abs(w), _num(w, 0.5)), low, high)


# ------------------------------------------------------------------------------ more reductions
@handles(aten.var_mean.correction, aten.std_mean.correction)
def _var_mean(ctx: Any, x: Tensor, dim: Any = None, *, correction: Any = None, keepdim: bool = False) -> Any:
    """(var or std, mean) over ``dim``: the pairwise-tree forms of var and mean."""
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    v = fn.var_dims(A, x, dim, 1.0 if correction is None else float(correction), keepdim)
    if ctx.func.overloadpacket is aten.std_mean:
        v = A.sqrt(v)
    return v, fn.mean_dims(A, x, dim, keepdim)


@handles(aten.prod.default, aten.prod.dim_int)
def _prod(ctx: Any, x: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: torch.dtype | None = None) -> Any:
    """Product over ``dim`` (all: flattened) by a pairwise tree of multiplications."""
    xf = _reduction_input(ctx, x, dtype)
    if xf is None:
        return NATIVE
    flat, dims = fn._reduce_dims(xf, dim)
    y = fn.tree_levels(ctx.A, "mul", flat) if flat.shape[-1] else flat.new_ones(flat.shape[:-1])
    return fn._keepdim(y, xf, dims, keepdim)


@handles(aten.cumprod.default)
def _cumprod(ctx: Any, x: Tensor, dim: int, *, dtype: torch.dtype | None = None) -> Any:
    """Running products in sequential order: y_0 = x_0, y_i = y_(i-1) x_i."""
    xf = _reduction_input(ctx, x, dtype)
    if xf is None:
        return NATIVE
    xm = xf.movedim(dim, -1)
    if xm.shape[-1] == 0:
        return xf.clone()
    out = [xm[..., 0]]
    for i in range(1, xm.shape[-1]):
        out.append(ctx.A.mul(out[-1], xm[..., i]))
    return torch.stack(out, -1).movedim(-1, dim)


@handles(aten.logsumexp.default)
def _logsumexp(ctx: Any, x: Tensor, dim: Any = (), keepdim: bool = False) -> Any:
    """m + log(sum e^(x - m)) with m the maximum (an infinite maximum taken as 0), as torch."""
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    flat, dims = fn._reduce_dims(x, dim if dim not in ((), []) else None)
    m = fn.tree_max(A, flat, -1)
    m = A.where(A.eq(A.abs(m), _num(m, math.inf)), _num(m, 0), m)
    s = fn.tree_sum(A, fn.exp(A, A.sub(flat, m.unsqueeze(-1).expand_as(flat))), -1)
    return fn._keepdim(A.add(fn.log(A, s), m), x, dims, keepdim)


@handles(aten.linalg_vector_norm.default)
def _vector_norm(ctx: Any, x: Tensor, ord: Any = 2, dim: Any = None, keepdim: bool = False, *,  # noqa: A002
                 dtype: torch.dtype | None = None) -> Any:
    """ord 2: sqrt of the pairwise-tree sum of squares; 1: tree sum of |x|; inf / -inf: tree
    maximum / minimum of |x|; 0: count of nonzeros; other p: (sum |x|^p)^(1/p) by pow."""
    xf = _reduction_input(ctx, x, dtype)
    if xf is None:
        return NATIVE
    A = ctx.A
    flat, dims = fn._reduce_dims(xf, dim)
    a = A.abs(flat)
    p = float(ord)
    if p == 2:
        y = A.sqrt(fn.tree_sum(A, A.mul(flat, flat), -1))
    elif p == 1:
        y = fn.tree_sum(A, a, -1)
    elif p == math.inf:
        y = fn.tree_max(A, a, -1)
    elif p == -math.inf:
        y = fn.tree_reduce(A, "minimum", a, -1)
    elif p == 0:
        y = fn.tree_sum(A, A.where(A.eq(flat, _num(flat, 0)), _num(flat, 0), _num(flat, 1)), -1)
    else:
        s = fn.tree_sum(A, fn.pow_tensor(A, a, _num(a, p)), -1)
        y = fn.pow_tensor(A, s, _num(s, 1.0 / p))
    return fn._keepdim(y, xf, dims, keepdim)


@handles(aten.kthvalue.default)
def _kthvalue(ctx: Any, x: Tensor, k: int, dim: int = -1, keepdim: bool = False) -> Any:
    """The k-th smallest along ``dim`` (NaN largest) and its index, from the stable sort."""
    if _float_input(ctx, x) is None:
        return NATIVE
    values, indices = fn.sort(ctx.A, x, dim)
    v, i = values.select(dim, int(k) - 1), indices.select(dim, int(k) - 1)
    return (v.unsqueeze(dim), i.unsqueeze(dim)) if keepdim else (v, i)


@handles(aten.median.default, aten.median.dim)
def _median(ctx: Any, x: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """The lower median ((n - 1) // 2-th smallest) from the stable sort; a row with NaN gives
    NaN and the index of its first NaN, as torch."""
    if _float_input(ctx, x) is None:
        return NATIVE
    A = ctx.A
    whole = dim is None
    xm = x.reshape(-1) if whole else x
    d = 0 if dim is None else dim
    values, indices = fn.sort(A, xm, d)
    n = xm.shape[d]
    nan = A.logical_not(A.eq(values, values))
    first_nan = torch.argmax(nan.to(torch.int8), dim=d)  # sorted NaNs are last; the first of them
    has_nan = nan.any(d)
    mid = values.select(d, (n - 1) // 2)
    v = A.where(has_nan, _num(mid, math.nan), mid)
    i = torch.where(has_nan, indices.gather(d, first_nan.unsqueeze(d)).squeeze(d), indices.select(d, (n - 1) // 2))
    if whole:
        return v
    return (v.unsqueeze(d), i.unsqueeze(d)) if keepdim else (v, i)


@handles(aten.adaptive_max_pool2d.default)
def _adaptive_max_pool2d(ctx: Any, x: Tensor, output_size: Any) -> Any:
    """Each output cell: the maximum of torch's adaptive window [floor(i H / oh), ceil((i + 1) H /
    oh)) by the pairwise comparison tree (first maximum; NaN wins), and its flat index."""
    if _float_input(ctx, x) is None:
        return NATIVE
    xb, unbatched = _pool_input(x)
    h, w = xb.shape[-2:]
    oh, ow = _pair(output_size)
    values, indices = [], []
    for i in range(oh):
        r0, r1 = (i * h) // oh, -((-(i + 1) * h) // oh)
        for j in range(ow):
            c0, c1 = (j * w) // ow, -((-(j + 1) * w) // ow)
            window = xb[..., r0:r1, c0:c1].reshape(*xb.shape[:2], (r1 - r0) * (c1 - c0))
            v, k = fn.arg_extreme(ctx.A, window, -1, largest=True)
            values.append(v)
            indices.append((r0 + k // (c1 - c0)) * w + c0 + k % (c1 - c0))
    y = torch.stack(values, -1).reshape(*xb.shape[:2], oh, ow)
    idx = torch.stack(indices, -1).reshape(*xb.shape[:2], oh, ow)
    return (y[0], idx[0]) if unbatched else (y, idx)
