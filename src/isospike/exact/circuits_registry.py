"""Netlists by operation and format name (kept for existing callers): a view of the table of
:mod:`isospike.exact.primitives`, where each circuit is declared and cached."""

from __future__ import annotations

from typing import cast

from isospike.exact.formats import BFLOAT16, FLOAT16, FLOAT32, FloatFormat
from isospike.exact.netlist import Netlist
from isospike.exact.primitives import PRIMITIVES

FORMATS_BY_NAME = {f.name: f for f in (FLOAT32, BFLOAT16, FLOAT16)}


def float_op_netlist(op: str, fmt_name: str) -> Netlist:
    """The netlist of the primitive ``op`` on the format ``fmt_name`` (built once, then shared)."""
    return netlist_for(op, FORMATS_BY_NAME[fmt_name])


def netlist_for(op: str, fmt: FloatFormat) -> Netlist:
    return cast(Netlist, PRIMITIVES[op].netlist(PRIMITIVES[op].cost_args(fmt)))
