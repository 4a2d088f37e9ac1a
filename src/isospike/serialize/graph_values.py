"""What the nodes of a saved graph compute, as far as reading it can tell, so that a file cannot
make plain Python arithmetic explode or write into tensors.

**Purity.** A loaded network is a pure function of its input and its stored tensors: no call may
write its result into an existing tensor (``out=``), work in place (``inplace=True``, which on the
input would overwrite the caller's tensor), draw random numbers (dropout in training mode,
attention dropout: they also advance the global RNG) or renormalize a stored weight
(``F.embedding(max_norm=...)``). In-place and resizing methods (``add_``, ``resize_``, ``copy_``,
``__setitem__``) are not in the closed method table at all. :func:`check_pure` refuses the rest by
binding each call to its function's signature (defaults included: ``F.dropout(x)`` trains).

**Bounded Python values.** Shapes are Python ints and tuples, and Python's arithmetic on them is
unbounded: a chain of ``x ** 64`` nodes, or a shape tuple repeated ``10**9`` times, takes all the
memory before any torch operation runs. :func:`infer` follows every node's value: a tensor, an
int of at most ``bits`` bits, a sequence (tuple, list, ``torch.Size``, string) of at most
``length`` entries, or another scalar; sizes of real tensors count as 63-bit ints. A node whose
int would need more than :data:`MAX_INT_BITS` bits, or whose sequence would hold more than
:data:`MAX_SEQUENCE` entries, is refused when the file is read.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import torch.nn.functional as F
from torch import fx

from isospike.schema import Field

MAX_INT_BITS = 1024  # far beyond any size product (2**63 is the largest tensor size), far below a blow-up
MAX_SEQUENCE = 2**16  # entries of a sequence a graph computes (a shape has at most 64)
DIM_BITS = 63  # a tensor's size or a shape entry
NDIM_BITS = 7  # a tensor's number of dimensions (at most 64)
MAX_DIMS = 64


class Value(NamedTuple):
    """What a node may hold: a tensor (or a tuple of tensors), or a Python value that is at most
    an int below ``2**bits`` in magnitude, or a sequence (tuple, list, ``torch.Size``, string) of
    at most ``length`` entries in all whose ints are below ``2**bits``; ``nested``: its entries
    may be sequences themselves. ``Value(False, 0, 0)`` is a float, a bool, None or a dtype:
    nothing that grows."""

    tensor: bool = False
    bits: int = 0
    length: int = 0
    nested: bool = False

    def entry(self) -> Value:
        """What one entry (or a slice) of this sequence may be."""
        return Value(False, self.bits, self.length if self.nested else 0, self.nested)


TENSOR = Value(True)
SCALAR = Value()
SHAPE = Value(False, DIM_BITS, MAX_DIMS)


def constant(value: Any, kinds: dict[fx.Node, Value]) -> Value:
    """The value of an argument: a node's inferred value, or a constant's own (a sequence counts
    all the entries of its nested sequences)."""
    if isinstance(value, fx.Node):
        return kinds.get(value, TENSOR)
    if isinstance(value, bool) or value is None:
        return SCALAR
    if isinstance(value, int):
        return Value(False, max(value.bit_length(), 1))
    if isinstance(value, str):
        return Value(False, 0, len(value), True)  # an entry of a string is a string
    if isinstance(value, (list, tuple)):
        parts = [constant(v, kinds) for v in value]
        if parts and all(p.tensor for p in parts):
            return TENSOR  # torch.cat([a, b]) and the like
        inner = [p for p in parts if not p.tensor]
        return Value(False, max((p.bits for p in inner), default=0), len(value) + sum(p.length for p in inner),
                     any(p.length for p in inner))
    return SCALAR


def _checked(v: Value, f: Field, what: str) -> Value:
    if v.bits > MAX_INT_BITS:
        raise f.error(f"arithmetic whose integers stay within {MAX_INT_BITS} bits ({what} could reach 2**{v.bits}: "
                      "the file is crafted)")
    if v.length > MAX_SEQUENCE:
        raise f.error(f"arithmetic whose sequences hold at most {MAX_SEQUENCE} entries ({what} could hold "
                      f"{v.length}: the file is crafted)")
    return v


def _times(seq: Value, count: Value) -> int:
    """Entries of ``seq`` repeated ``count`` times (0 when either cannot be a sequence / an int)."""
    return seq.length * 2 ** min(count.bits, MAX_INT_BITS + 1) if seq.length and count.bits else 0


def _arith(fn: Callable, a: Value, b: Value, f: Field) -> Value:
    """The value of a Python operator on non-tensor values (``b`` is ``a`` for a unary one)."""
    name = f"operator.{getattr(fn, '__name__', '?')}"
    if fn is operator.neg:
        return Value(False, a.bits)
    if fn is operator.add:  # ints add, sequences concatenate
        return _checked(Value(False, max(a.bits, b.bits) + 1, a.length + b.length, a.nested or b.nested), f, name)
    if fn is operator.sub:
        return Value(False, max(a.bits, b.bits) + 1)
    if fn is operator.mul:  # ints multiply, a sequence times an int repeats it
        return _checked(Value(False, a.bits + b.bits if a.bits and b.bits else 0, _times(a, b) + _times(b, a),
                              a.nested or b.nested), f, name)
    if fn is operator.floordiv:
        return Value(False, a.bits)
    if fn is operator.pow:  # the exponent is a constant below 2**b.bits (at most 64, checked by the reader)
        return _checked(Value(False, a.bits * 2 ** b.bits if a.bits else 0), f, name)
    return SCALAR  # truediv, matmul: floats, or a TypeError when run


def infer(op: str, target: Any, args: tuple, kwargs: dict, kinds: dict[fx.Node, Value], f: Field) -> Value:
    """The value of one node (``target``: the function itself for call_function, the method name
    for call_method); a FileFormatError naming ``f`` when it could grow without bound."""
    if op in ("placeholder", "get_attr", "call_module", "output"):
        return TENSOR
    first = constant(args[0], kinds) if args else SCALAR
    if op == "call_method":
        if not first.tensor:
            return SCALAR  # a tensor method of a Python value fails when run
        if target == "size":
            return Value(False, DIM_BITS) if len(args) > 1 or "dim" in kwargs else SHAPE
        return Value(False, NDIM_BITS) if target == "dim" else TENSOR
    if target is getattr:
        if not first.tensor:
            return SCALAR
        return {"shape": SHAPE, "ndim": Value(False, NDIM_BITS), "dtype": SCALAR}.get(args[1], TENSOR)
    if target is operator.getitem:
        if first.tensor:
            return TENSOR
        index = args[1] if len(args) > 1 else None
        one = (isinstance(index, int) and not isinstance(index, bool)) or \
            (isinstance(index, fx.Node) and not constant(index, kinds).length and not constant(index, kinds).tensor)
        return first.entry() if one else first  # a slice (or a tuple index) keeps the sequence's bounds
    if target in _OPERATORS:
        operands = [constant(a, kinds) for a in args]
        if any(v.tensor for v in operands):
            return TENSOR
        return _arith(target, operands[0], operands[-1], f)
    return TENSOR  # torch and torch.nn.functional: tensors (or tuples of them: split, chunk)


_OPERATORS = frozenset({operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.neg,
                        operator.pow, operator.matmul})


# ------------------------------------------------------------------------- purity
# Parameters whose value makes a call write into a tensor or draw random numbers, and the one
# value a saved graph may give them (the function's default is bound in when left out).
_PURE_VALUES: dict[str, Any] = {"inplace": False, "out": None, "training": False, "dropout_p": 0.0, "max_norm": None}


_NO_DEFAULT = inspect.Parameter.empty


def _builtin(*params: tuple[str, Any]) -> inspect.Signature:
    """A signature of (name, default) pairs (``_NO_DEFAULT``: required)."""
    return inspect.Signature([inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
                              for name, default in params])


# Builtins without an inspectable signature that take one of those parameters positionally
# (the rest, torch.add and the like, take out= as a keyword only).
_BUILTIN_SIGNATURES: dict[Callable, inspect.Signature] = {
    F.scaled_dot_product_attention: _builtin(("query", _NO_DEFAULT), ("key", _NO_DEFAULT), ("value", _NO_DEFAULT),
                                             ("attn_mask", None), ("dropout_p", 0.0), ("is_causal", False),
                                             ("scale", None), ("enable_gqa", False))}


def _signature(fn: Callable) -> inspect.Signature | None:
    if fn in _BUILTIN_SIGNATURES:
        return _BUILTIN_SIGNATURES[fn]
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without one (torch.add): its out= is keyword-only
        return None


def check_pure(target: Callable | str, args: tuple, kwargs: dict, f: Field) -> None:
    """Refuse a call that would write into a tensor, work in place or draw random numbers (see
    the module docstring); ``target`` is the function, or a method's name."""
    name = target if isinstance(target, str) else getattr(target, "__name__", "the function")
    for key, pure in _PURE_VALUES.items():  # as keywords, whatever the function (builtins included)
        value = kwargs.get(key, pure)
        if isinstance(value, fx.Node) or (value is not pure and value != pure):
            raise f.error(f"a pure call: {name}({key}={value!r}) {_WHY[key]}; a loaded network is a pure function of "
                          f"its input and stored tensors (pass {key}={pure!r})")
    if isinstance(target, str):
        return
    sig = _signature(target)
    if sig is None or not any(p in sig.parameters for p in _PURE_VALUES):
        return
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise f.error(f"arguments that fit {name}{sig} ({exc})") from None
    bound.apply_defaults()
    for key, pure in _PURE_VALUES.items():
        if key in bound.arguments:
            value = bound.arguments[key]
            if isinstance(value, fx.Node) or (value is not pure and value != pure):
                raise f.error(f"a pure call: {name} with {key}={value!r} {_WHY[key]}; a loaded network is a pure "
                              f"function of its input and stored tensors (pass {key}={pure!r})")


_WHY = {"inplace": "overwrites its input (the caller's tensor, or a stored one)",
        "out": "writes into an existing tensor",
        "training": "draws random numbers (and advances the global RNG) at every call",
        "dropout_p": "draws random numbers (and advances the global RNG) at every call",
        "max_norm": "renormalizes the stored embedding weight in place"}

