"""Which circuit computes which operation, built once per (operation, format) and cached."""

from __future__ import annotations

from functools import cache

from isospike.exact.formats import BFLOAT16, FLOAT16, FLOAT32, FloatFormat
from isospike.exact.fp.add import build_add
from isospike.exact.fp.compare import build_compare, build_minmax, build_sign_op
from isospike.exact.fp.convert import build_float_to_float, build_float_to_int, build_int_to_float
from isospike.exact.fp.divsqrt import build_div, build_sqrt
from isospike.exact.fp.mul import build_fma, build_mul
from isospike.exact.fp.scale import build_ldexp, build_select
from isospike.exact.netlist import Netlist

FORMATS_BY_NAME = {f.name: f for f in (FLOAT32, BFLOAT16, FLOAT16)}

# operation -> (number of float operands, builder(fmt) -> Circuit)
FLOAT_OPS = {
    "add": (2, lambda f: build_add(f)),
    "sub": (2, lambda f: build_add(f, negate_b=True)),
    "mul": (2, build_mul),
    "div": (2, build_div),
    "sqrt": (1, build_sqrt),
    "fma": (3, build_fma),
    "neg": (1, lambda f: build_sign_op("neg", f)),
    "abs": (1, lambda f: build_sign_op("abs", f)),
    "minimum": (2, lambda f: build_minmax("minimum", f)),
    "maximum": (2, lambda f: build_minmax("maximum", f)),
    "eq": (2, lambda f: build_compare("eq", f)),
    "lt": (2, lambda f: build_compare("lt", f)),
    "le": (2, lambda f: build_compare("le", f)),
}
COMPARISONS = {"eq", "lt", "le"}
# operations with non-float operands: name -> builder(fmt)
MIXED_OPS = {"ldexp": build_ldexp, "where": build_select}


@cache
def float_op_netlist(op: str, fmt_name: str) -> Netlist:
    """The netlist of ``op`` on format ``fmt_name`` (built on first use, then shared)."""
    return FLOAT_OPS[op][1](FORMATS_BY_NAME[fmt_name]).build()


@cache
def conversion_netlist(kind: str, src: str, dst: str) -> Netlist:
    """kind: "float" (src float -> dst float), "from_int" (int bits src -> dst float),
    "to_int" (src float -> int bits dst)."""
    if kind == "float":
        return build_float_to_float(FORMATS_BY_NAME[src], FORMATS_BY_NAME[dst]).build()
    if kind == "from_int":
        return build_int_to_float(int(src), FORMATS_BY_NAME[dst]).build()
    if kind == "to_int":
        return build_float_to_int(FORMATS_BY_NAME[src], int(dst)).build()
    raise ValueError(kind)


@cache
def mixed_op_netlist(op: str, fmt_name: str) -> Netlist:
    return MIXED_OPS[op](FORMATS_BY_NAME[fmt_name]).build()


def netlist_for(op: str, fmt: FloatFormat) -> Netlist:
    return float_op_netlist(op, fmt.name)
