"""The exact primitives, each declared once: one table entry per IEEE-754 operation that a gate
circuit computes.

The table is the body of :class:`Arith`, the typed protocol the pinned algorithms of
:mod:`isospike.exact.functions` are written against. Each primitive is one method of it, decorated
with :func:`primitive` (in the manner of ``torch._prims._make_prim``)::

    @primitive(build_add, aten=(aten.add.Tensor, aten.add.Scalar), native=operator.add)
    def add(self, a: Tensor, b: Tensor) -> Tensor:
        \"\"\"a + b, IEEE round to nearest even.\"\"\"
        return canonical_nan(a + b)

One declaration says everything about the operation: its name and typed signature (operands: the
parameters without a default, all tensors; parameters: those with one), the dtype rule (operand
kinds, ``result``), the circuit builder per format, its float32 reference (the method's body: plain
PyTorch, the correctly rounded IEEE operation), torch's own kernel (``native``), the ATen operations
the model capture computes with it (``aten``) and its documentation. It becomes a
:class:`Primitive` in :data:`PRIMITIVES`, from which everything else is derived:

- :mod:`isospike.exact.ops`: the public operation ``isospike.exact.ops.<name>(..., backend=...)``;
- :mod:`isospike.exact.arith`: the method on every arith (:class:`~isospike.exact.arith.GateArith`
  runs the circuit, :class:`~isospike.exact.arith.TorchArith` the body,
  :class:`~isospike.exact.arith.NativeArith` ``native``);
- :meth:`Primitive.netlist` (built once per format, shared) and :func:`isospike.exact.cost`;
- :mod:`isospike.exact.capture.handlers`: the handler of each ATen operation in ``aten``.
"""

from __future__ import annotations

import functools
import inspect
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, cast

import numpy as np
import torch
from torch import Tensor

from isospike.exact.formats import BFLOAT16, FLOAT16, FLOAT32, FloatFormat, canonical_nan, format_of
from isospike.exact.fp.add import build_add
from isospike.exact.fp.compare import build_compare, build_minmax, build_sign_op
from isospike.exact.fp.convert import build_float_to_float, build_float_to_int, build_int_to_float
from isospike.exact.fp.divsqrt import build_div, build_sqrt
from isospike.exact.fp.mul import build_fma, build_mul
from isospike.exact.fp.scale import build_ldexp, build_logb, build_select, build_significand
from isospike.exact.netlist import Circuit, Netlist

aten = torch.ops.aten
F = TypeVar("F", bound=Callable[..., Any])


# ------------------------------------------------------------------------------ operand kinds
@dataclass(frozen=True)
class Kind:
    """What an operand may be. ``dtypes``: the accepted tensor dtypes (None: float32, bfloat16 or
    float16, one format shared by all float operands of a call); ``describe``: for errors."""

    name: str
    describe: str
    dtypes: frozenset[torch.dtype] | None = None


FLOAT = Kind("float", "a float32, bfloat16 or float16 tensor")
BOOL = Kind("bool", "a bool tensor", frozenset({torch.bool}))
INT32 = Kind("int32", "an int32 tensor", frozenset({torch.int32}))
INT = Kind("int", "an int8/int16/int32/int64/uint8 tensor",
           frozenset({torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8}))


@dataclass(frozen=True)
class Operand:
    name: str
    kind: Kind


Result = FloatFormat | Literal["same", "bool", "int32", "int64", "dtype"]
"""The result-dtype rule: "same" (the float operands' format), "bool", "int32", "int64", "dtype" (the
format named by the ``dtype`` parameter) or a fixed format."""


@dataclass(frozen=True)
class AtenForm:
    """ATen operations a primitive computes: as they are, with the operands swapped (``rsub``,
    ``gt``) or with the boolean result negated (``ne``)."""

    ops: tuple[Any, ...]
    swap: bool = False
    negate: bool = False


def swapped(*ops: Any) -> AtenForm:
    """ATen operations computing ``op(b, a)`` (``rsub`` is a swapped ``sub``, ``gt`` a swapped ``lt``)."""
    return AtenForm(ops, swap=True)


def negated(*ops: Any) -> AtenForm:
    """ATen operations computing ``not op(a, b)`` (``ne`` is a negated ``eq``)."""
    return AtenForm(ops, negate=True)


# ------------------------------------------------------------------------------ the entry
@dataclass(frozen=True, eq=False)
class Primitive:
    """One exact primitive (see the module docstring; built by :func:`primitive`).

    circuit(*args) -> Circuit (None: the operation is wiring, no circuit), where ``args`` are the
    operands' float format (or integer width) and, when the result has its own format, that
    format (:meth:`circuit_args`). reference(arith, *operands, **params): plain PyTorch.
    native(*operands, **params): torch's own kernel (None: the reference). counted_as(*args): the
    operation's name in gate counts (default: ``name``). int_to_float: the capture promotes
    integer operands to float (true division)."""

    name: str
    operands: tuple[Operand, ...]
    params: tuple[tuple[str, Any], ...]
    result: Result
    circuit: Callable[..., Circuit | None]
    reference: Callable[..., Any]
    native: Callable[..., Any] | None
    aten: tuple[AtenForm, ...]
    int_to_float: bool
    counted_as: Callable[..., str] | None
    doc: str

    @property
    def arity(self) -> int:
        return len(self.operands)

    def split(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[Sequence[Any], dict[str, Any]]:
        """(operands, parameters with defaults filled) of an arith call ``args``/``kwargs``."""
        n = self.arity
        if len(args) < n or len(args) > n + len(self.params):
            raise TypeError(f"{self.name} takes {n} tensors, got {len(args)}")
        params = dict(self.params)
        for (key, _), value in zip(self.params, args[n:]):
            params[key] = value
        for key, value in kwargs.items():
            if key not in params:
                raise TypeError(f"{self.name}() got an unexpected keyword argument {key!r}")
            params[key] = value
        return args[:n], params

    def check(self, operands: Sequence[Any]) -> None:
        """Every operand a tensor of its kind (TypeError naming the operand otherwise)."""
        if len(operands) != self.arity:
            raise TypeError(f"{self.name} takes {self.arity} tensors, got {len(operands)}")
        for i, (spec, t) in enumerate(zip(self.operands, operands)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{self.name}: operand {i} ({spec.name}) must be a torch.Tensor, got {type(t).__name__}")
            if spec.kind.dtypes is not None and t.dtype not in spec.kind.dtypes:
                raise TypeError(f"{self.name}: {spec.name} must be {spec.kind.describe}, got {t.dtype}")

    def circuit_args(self, operands: Sequence[Tensor], params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The dtype rule on checked operands: the circuit's arguments (the float operands' shared
        format, or the integer operand's width 32 or 64; then the result's own format, if any)."""
        args: list[Any] = []
        floats = [t for spec, t in zip(self.operands, operands) if spec.kind is FLOAT]
        if floats:
            dtypes = {t.dtype for t in floats}
            if len(dtypes) != 1:
                raise TypeError(f"{self.name}: operands must share one dtype, got {sorted(map(str, dtypes))}; cast "
                                "them first")
            args.append(format_of(floats[0].dtype))
        args += [64 if t.dtype == torch.int64 else 32 for spec, t in zip(self.operands, operands) if spec.kind is INT]
        if self.result == "dtype":
            args.append(format_of(params["dtype"]))
        elif isinstance(self.result, FloatFormat):
            args.append(self.result)
        return tuple(args)

    def result_dtype(self, args: tuple[Any, ...]) -> torch.dtype:
        if self.result == "bool":
            return torch.bool
        if self.result == "int32":
            return torch.int32
        if self.result == "int64":
            return torch.int64
        return cast(FloatFormat, args[-1] if self.result != "same" else args[0]).dtype

    def cost_args(self, fmt: FloatFormat) -> tuple[Any, ...]:
        """The circuit's arguments for the costs of :func:`isospike.exact.cost` on ``fmt``: the
        operands' format (integer operands: 32 bits), then the result's own format (``fmt`` when
        the ``dtype`` parameter chooses it)."""
        kinds = {spec.kind for spec in self.operands}
        args: list[Any] = ([fmt] if FLOAT in kinds else []) + ([32] if INT in kinds else [])
        if self.result == "dtype":
            args.append(fmt)
        elif isinstance(self.result, FloatFormat):
            args.append(self.result)
        return tuple(args)

    def netlist(self, args: tuple[Any, ...]) -> Netlist | None:
        """The circuit for ``args`` (:meth:`circuit_args`), built on first use and then shared."""
        return _netlist(self.name, args)

    def counted(self, args: tuple[Any, ...]) -> str:
        """The name this operation's gate activity is counted under."""
        return self.name if self.counted_as is None else self.counted_as(*args)


PRIMITIVES: dict[str, Primitive] = {}
"""name -> :class:`Primitive`, in declaration order (filled by :func:`primitive`)."""


@functools.cache
def _netlist(name: str, args: tuple[Any, ...]) -> Netlist | None:
    circuit = PRIMITIVES[name].circuit(*args)
    return None if circuit is None else circuit.build()


def primitive(circuit: Callable[..., Circuit | None], *, kinds: Mapping[str, Kind] | None = None,
              result: Result = "same", native: Callable[..., Any] | None = None, aten: Sequence[Any] = (),
              int_to_float: bool = False, counted_as: Callable[..., str] | None = None) -> Callable[[F], F]:
    """Declare the decorated method of :class:`Arith` an exact primitive (see the module docstring).

    circuit: the circuit builder (see :class:`Primitive`). kinds: operand name -> :class:`Kind`
    for operands that are not float tensors. result: the result-dtype rule (:data:`Result`).
    native: torch's own (differentiable) kernel, when it differs from the body. aten: ATen
    operations (or overload packets) the capture computes with this primitive, and
    :func:`swapped` / :func:`negated` forms. int_to_float: integer operands of those ATen
    operations divide as floats. counted_as(*circuit args): the name in gate counts.

    The method's body is the reference; the method itself becomes ``self.run_primitive(p, args,
    kwargs)``, which every arith implements."""
    def declare(fn: F) -> F:
        params = list(inspect.signature(fn).parameters.values())[1:]  # after self
        kinds_of = dict(kinds or {})
        plain = tuple(op for op in aten if not isinstance(op, AtenForm))
        forms = ((AtenForm(plain),) if plain else ()) + tuple(op for op in aten if isinstance(op, AtenForm))
        prim = Primitive(
            name=fn.__name__,
            operands=tuple(Operand(p.name, kinds_of.pop(p.name, FLOAT)) for p in params if p.default is p.empty),
            params=tuple((p.name, p.default) for p in params if p.default is not p.empty),
            result=result, circuit=circuit, reference=fn, native=native, aten=forms, int_to_float=int_to_float,
            counted_as=counted_as, doc=inspect.getdoc(fn) or "")
        if kinds_of:
            raise TypeError(f"primitive {prim.name}: kinds for unknown operands {sorted(kinds_of)}")
        if prim.name in PRIMITIVES:
            raise ValueError(f"primitive {prim.name!r} is declared twice")
        PRIMITIVES[prim.name] = prim

        @functools.wraps(fn)
        def method(self: Arith, *args: Any, **kwargs: Any) -> Any:
            return self.run_primitive(prim, args, kwargs)

        method.primitive = prim  # type: ignore[attr-defined]
        return cast(F, method)
    return declare


# ------------------------------------------------------------------------------ circuits and references
def _logic_circuit(op: str) -> Circuit:
    c = Circuit(f"logical_{op}")
    a = c.input("a", 1)[0]
    if op == "not":
        y = c.not_(a)
    else:
        b = c.input("b", 1)[0]
        y = {"and": c.and_, "or": c.or_}[op](a, b)
    c.output("y", y)
    return c


def _float_to(dst: FloatFormat) -> Callable[[FloatFormat, FloatFormat], Circuit | None]:
    """Conversion to ``dst``: a circuit, or plain wiring from ``dst`` itself."""
    return lambda src, _dst: None if src == dst else build_float_to_float(src, dst)


def _conversion_name(src: FloatFormat, dst: FloatFormat) -> str:
    return f"{src.name}_to_{dst.name}"


def ieee_minmax(a: Tensor, b: Tensor, minimum: bool) -> Tensor:
    """IEEE 754-2019 minimum/maximum (NaN-propagating, -0 < +0), as the gate circuits."""
    a, b = torch.broadcast_tensors(a, b)
    if minimum:
        pick_b = (b < a) | ((a == 0) & (b == 0) & b.signbit() & ~a.signbit())
    else:
        pick_b = (a < b) | ((a == 0) & (b == 0) & a.signbit() & ~b.signbit())
    y = torch.where(pick_b, b, a)
    return torch.where(torch.isnan(a) | torch.isnan(b), torch.full_like(y, float("nan")).abs(), y)


_POW_LIMIT = 300  # |k| beyond which x * 2^k is 0 or inf for every float32 x


# ------------------------------------------------------------------------------ the table
class Arith(Protocol):
    """One set of elementwise IEEE-754 operations, the interface the pinned algorithms of
    :mod:`isospike.exact.functions` are written against. Implementations:
    :class:`~isospike.exact.arith.GateArith` (threshold-gate circuits),
    :class:`~isospike.exact.arith.TorchArith` (the plain float32 reference, bit for bit the same) and
    :class:`~isospike.exact.arith.NativeArith` (torch's own kernels).

    Each decorated method is an exact primitive (the table); its body is the float32 reference.
    name: "gates", "torch" or "native"; native: the pinned functions run torch's kernels
    instead; shard: matrix products split across torch.distributed ranks; accumulate: how
    :meth:`dot` sums ("pairwise" or "exact", :mod:`isospike.exact.accumulate`)."""

    name: str
    native: bool
    shard: bool
    accumulate: str  # dot products: "pairwise" (rounded products, pairwise tree) or "exact" (Kulisch)

    def run_primitive(self, p: Primitive, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Compute the primitive ``p`` on ``args`` (operands, then parameters) and ``kwargs``."""
        ...

    def tree(self, op: str, x: Tensor) -> Tensor:
        """Pairwise tree over the last dimension with ``op`` ("add", "maximum" or "minimum"):
        element 2i with 2i+1, an odd last element carried up; NaN sums canonical."""
        ...

    def dot(self, a: Tensor, b: Tensor) -> Tensor:
        """Sum over the last dimension of a * b: every product, then the pairwise add tree."""
        ...

    # -------------------------------------------------------------- arithmetic
    @primitive(build_add, native=operator.add, aten=(aten.add.Tensor, aten.add.Scalar))
    def add(self, a: Tensor, b: Tensor) -> Tensor:
        """a + b, IEEE round to nearest even."""
        return canonical_nan(a + b)

    @primitive(lambda f: build_add(f, negate_b=True), native=operator.sub,
               aten=(aten.sub.Tensor, aten.sub.Scalar, swapped(aten.rsub.Tensor, aten.rsub.Scalar)))
    def sub(self, a: Tensor, b: Tensor) -> Tensor:
        """a - b, IEEE round to nearest even."""
        return canonical_nan(a - b)

    @primitive(build_mul, native=operator.mul, aten=(aten.mul.Tensor, aten.mul.Scalar))
    def mul(self, a: Tensor, b: Tensor) -> Tensor:
        """a * b, IEEE round to nearest even."""
        return canonical_nan(a * b)

    @primitive(build_div, native=operator.truediv, int_to_float=True,
               aten=(aten.div.Tensor, aten.div.Scalar, aten.div.Tensor_mode, aten.div.Scalar_mode, aten.true_divide))
    def div(self, a: Tensor, b: Tensor) -> Tensor:
        """a / b, IEEE round to nearest even (x/0 = inf, 0/0 = NaN)."""
        return canonical_nan(a / b)

    @primitive(build_sqrt, native=torch.sqrt, aten=(aten.sqrt.default,))
    def sqrt(self, a: Tensor) -> Tensor:
        """sqrt(a), correctly rounded; sqrt(-0) = -0, sqrt(x < 0) = NaN."""
        # torch's float32 sqrt kernel is not correctly rounded; float64 then one rounding is
        # (53 >= 2 * 24 + 2: the double rounding is innocuous for square root)
        return canonical_nan(torch.sqrt(a.double()).to(a.dtype))

    @primitive(build_fma, native=lambda a, b, c: a * b + c)
    def fma(self, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
        """a * b + c with a single rounding (fused multiply-add)."""
        # the float64 product is exact; the float64 sum is made round-to-odd (TwoSum error term),
        # which makes the final rounding to float32 correct
        p = a.double() * b.double()
        z = c.double()
        s = p + z
        bp = s - p
        err = (p - (s - bp)) + (z - bp)
        odd = s.view(torch.int64) & 1
        inexact = (err != 0) & torch.isfinite(s)
        toward = torch.where(err > 0, torch.full_like(s, float("inf")), torch.full_like(s, float("-inf")))
        s = torch.where(inexact & (odd == 0), torch.nextafter(s, toward), s)
        return canonical_nan(s.to(a.dtype))

    @primitive(functools.partial(build_sign_op, "neg"), aten=(aten.neg.default,))
    def neg(self, a: Tensor) -> Tensor:
        """-a (flips the sign line; NaN payloads kept, as IEEE negate)."""
        return -a

    @primitive(functools.partial(build_sign_op, "abs"), aten=(aten.abs.default,))
    def abs(self, a: Tensor) -> Tensor:
        """|a| (clears the sign line)."""
        return a.abs()

    @primitive(functools.partial(build_minmax, "minimum"), native=torch.minimum, aten=(aten.minimum.default,))
    def minimum(self, a: Tensor, b: Tensor) -> Tensor:
        """IEEE 754-2019 minimum: NaN if either is NaN, -0 < +0 (torch.minimum elsewhere)."""
        return ieee_minmax(a, b, minimum=True)

    @primitive(functools.partial(build_minmax, "maximum"), native=torch.maximum, aten=(aten.maximum.default,))
    def maximum(self, a: Tensor, b: Tensor) -> Tensor:
        """IEEE 754-2019 maximum: NaN if either is NaN, -0 < +0 (torch.maximum elsewhere)."""
        return ieee_minmax(a, b, minimum=False)

    # -------------------------------------------------------------- comparisons and selection
    @primitive(functools.partial(build_compare, "eq"), result="bool",
               aten=(aten.eq.Tensor, aten.eq.Scalar, negated(aten.ne.Tensor, aten.ne.Scalar)))
    def eq(self, a: Tensor, b: Tensor) -> Tensor:
        """a == b as a bool tensor (NaN is unequal to everything; +0 == -0)."""
        return a == b

    @primitive(functools.partial(build_compare, "lt"), result="bool",
               aten=(aten.lt.Tensor, aten.lt.Scalar, swapped(aten.gt.Tensor, aten.gt.Scalar)))
    def lt(self, a: Tensor, b: Tensor) -> Tensor:
        """a < b as a bool tensor (false when either is NaN)."""
        return a < b

    @primitive(functools.partial(build_compare, "le"), result="bool",
               aten=(aten.le.Tensor, aten.le.Scalar, swapped(aten.ge.Tensor, aten.ge.Scalar)))
    def le(self, a: Tensor, b: Tensor) -> Tensor:
        """a <= b as a bool tensor (false when either is NaN)."""
        return a <= b

    @primitive(build_select, kinds={"cond": BOOL},
               aten=(aten.where.self, aten.where.ScalarSelf, aten.where.ScalarOther, aten.where.Scalar))
    def where(self, cond: Tensor, a: Tensor, b: Tensor) -> Tensor:
        """``cond ? a : b`` computed by multiplexer neurons (a and b: one float dtype; cond: bool)."""
        return torch.where(cond, a, b)

    @primitive(lambda: _logic_circuit("and"), kinds={"a": BOOL, "b": BOOL}, result="bool")
    def logical_and(self, a: Tensor, b: Tensor) -> Tensor:
        """a AND b on bool tensors: one AND neuron per element."""
        return a & b

    @primitive(lambda: _logic_circuit("or"), kinds={"a": BOOL, "b": BOOL}, result="bool")
    def logical_or(self, a: Tensor, b: Tensor) -> Tensor:
        """a OR b on bool tensors: one OR neuron per element."""
        return a | b

    @primitive(lambda: _logic_circuit("not"), kinds={"a": BOOL}, result="bool")
    def logical_not(self, a: Tensor) -> Tensor:
        """NOT a on a bool tensor: one NOT neuron per element."""
        return ~a

    # -------------------------------------------------------------- scaling and conversions
    @primitive(build_ldexp, kinds={"k": INT32}, native=torch.ldexp)
    def ldexp(self, x: Tensor, k: Tensor) -> Tensor:
        """``x * 2^k`` rounded once (IEEE scaleB): x float32/bfloat16/float16, k an int32 tensor
        (broadcast). Overflow gives inf, underflow subnormals or zero."""
        scale = torch.pow(2.0, k.clamp(-_POW_LIMIT, _POW_LIMIT).to(torch.float64))
        return canonical_nan((x.double() * scale).to(x.dtype))  # exact float64 product, one rounding

    @primitive(build_logb)
    def logb(self, x: Tensor) -> Tensor:
        """IEEE 754 logB: floor(log2|x|) as a float for finite nonzero x (subnormals included);
        -inf for zeros, +inf for infinities, NaN for NaN (exact: no rounding)."""
        _, e = torch.frexp(x)
        y = (e - 1).to(x.dtype)
        y = torch.where(x == 0, torch.full_like(y, float("-inf")), y)
        y = torch.where(torch.isinf(x), torch.full_like(y, float("inf")), y)
        return canonical_nan(torch.where(torch.isnan(x), x, y))

    @primitive(build_significand)
    def significand(self, x: Tensor) -> Tensor:
        """x * 2^-logB(x): x's significand in [1, 2) with x's sign (exact; subnormals normalized);
        zeros and infinities unchanged, NaN canonical."""
        m, _ = torch.frexp(x)
        y = torch.where(torch.isfinite(x) & (x != 0), m * 2, x)
        return canonical_nan(y)

    @primitive(_float_to(FLOAT32), result=FLOAT32, counted_as=_conversion_name)
    def to_float32(self, x: Tensor) -> Tensor:
        """Convert a float16/bfloat16/float32 tensor to float32 (exact)."""
        return canonical_nan(x.to(torch.float32))

    @primitive(_float_to(BFLOAT16), result=BFLOAT16, counted_as=_conversion_name)
    def to_bfloat16(self, x: Tensor) -> Tensor:
        """Convert to bfloat16, round to nearest even."""
        return canonical_nan(x.to(torch.bfloat16))

    @primitive(_float_to(FLOAT16), result=FLOAT16, counted_as=_conversion_name)
    def to_float16(self, x: Tensor) -> Tensor:
        """Convert to float16, round to nearest even (overflow to inf, subnormals kept)."""
        return canonical_nan(x.to(torch.float16))

    @primitive(build_int_to_float, kinds={"x": INT}, result="dtype",
               counted_as=lambda width, dst: f"int{width}_to_{dst.name}")
    def from_int(self, x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Integer tensor (int8/int16/int32/int64/uint8) -> ``dtype``, round to nearest even."""
        return x.to(dtype)  # correctly rounded; through float64 int64 values above 2**53 were rounded twice

    @primitive(lambda src: build_float_to_int(src, 32), result="int32", native=lambda x: x.to(torch.int32),
               counted_as=lambda src: f"{src.name}_to_int32")
    def to_int(self, x: Tensor) -> Tensor:
        """Float tensor -> int32, rounding toward zero; NaN, infinities and out-of-range values give
        -2^31 (x86's "integer indefinite", which is what numpy and torch give on x86)."""
        with np.errstate(invalid="ignore"):
            return torch.from_numpy(x.detach().float().numpy().astype(np.int32))

    @primitive(lambda src: build_float_to_int(src, 64), result="int64", native=lambda x: x.to(torch.int64),
               counted_as=lambda src: f"{src.name}_to_int64")
    def to_int64(self, x: Tensor) -> Tensor:
        """Float tensor -> int64, rounding toward zero; NaN, infinities and out-of-range values give
        -2^63 (x86's "integer indefinite", what torch gives there)."""
        with np.errstate(invalid="ignore"):
            return torch.from_numpy(x.detach().float().numpy().astype(np.int64))
