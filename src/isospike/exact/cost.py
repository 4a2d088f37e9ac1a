"""Static cost of each operation's circuit: neurons, synapses, depth."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from isospike.exact.formats import format_of
from isospike.exact.primitives import PRIMITIVES

# The seed paper's reported neuron counts for FP32 (NEXUS, Table D), for side-by-side reports.
SEED_FP32_NEURONS = {"add": 3348, "mul": 4089, "div": 12450, "sqrt": 8920}


@dataclass(frozen=True)
class OpCost:
    """neurons: gates (one IF neuron each); synapses: gate input connections; depth: neurons
    on the longest input-to-output path; by_kind: neurons per gate kind."""

    op: str
    dtype: str
    neurons: int
    synapses: int
    depth: int
    by_kind: dict[str, int]


def cost(op: str, dtype: torch.dtype = torch.float32) -> OpCost:
    """Cost of the circuit of the primitive ``op`` (any name of
    :data:`isospike.exact.primitives.PRIMITIVES`: "add", "sub", "mul", "div", "sqrt", "fma",
    "neg", "abs", "minimum", "maximum", "eq", "lt", "le", "where", "ldexp", "to_float32",
    "to_bfloat16", "to_float16", "from_int", "to_int", ...) on ``dtype`` (for from_int: the
    destination dtype, from int32)."""
    fmt = format_of(dtype)
    p = PRIMITIVES.get(op)
    if p is None:
        raise ValueError(f"unknown operation {op!r}; the operations with circuits are {', '.join(PRIMITIVES)}")
    nl = p.netlist(p.cost_args(fmt))
    if nl is None:
        raise ValueError(f"{op} on {fmt.name} is the identity: it has no circuit")
    c = nl.cost
    return OpCost(op, fmt.name, c.neurons, c.synapses, c.depth, c.by_kind)
