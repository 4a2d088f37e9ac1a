"""Bit-exact spiking arithmetic: IEEE-754 operations computed by integrate-and-fire neurons
acting as threshold gates, on values carried as spatial bit spikes (one spike line per bit,
one time step)."""

from isospike.exact import functions
from isospike.exact.arith import GateArith, NativeArith, TorchArith
from isospike.exact.cost import OpCost, cost
from isospike.exact.counting import ExactCounts, OpCounts, counting
from isospike.exact.model_conversion import ExactNetwork, convert, reference
from isospike.exact.ops import (
    abs,
    add,
    div,
    eq,
    fma,
    from_int,
    ldexp,
    le,
    lt,
    maximum,
    minimum,
    mul,
    neg,
    sqrt,
    sub,
    to_bfloat16,
    to_float16,
    to_float32,
    to_int,
    where,
)

__all__ = [
    "ExactCounts", "ExactNetwork", "GateArith", "NativeArith", "OpCost", "OpCounts", "TorchArith", "abs", "add",
    "convert", "cost", "counting", "div", "eq", "fma", "from_int", "functions", "ldexp", "le", "lt", "maximum",
    "minimum", "mul", "neg", "reference", "sqrt", "sub", "to_bfloat16", "to_float16", "to_float32", "to_int",
    "where",
]
