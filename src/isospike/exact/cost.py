"""Static cost of each operation's circuit: neurons, synapses, depth."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from isospike.exact.circuits_registry import FLOAT_OPS, conversion_netlist, float_op_netlist
from isospike.exact.formats import format_of

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
    """Cost of ``op`` ("add", "sub", "mul", "div", "sqrt", "fma", "neg", "abs", "minimum",
    "maximum", "eq", "lt", "le", "to_float32", "to_bfloat16", "to_float16", "from_int",
    "to_int") on ``dtype`` (for from_int: the destination dtype)."""
    fmt = format_of(dtype)
    if op in FLOAT_OPS:
        nl = float_op_netlist(op, fmt.name)
    elif op in ("to_float32", "to_bfloat16", "to_float16"):
        dst = op[3:]
        if dst == fmt.name:
            raise ValueError(f"{op} on {fmt.name} is the identity: it has no circuit")
        nl = conversion_netlist("float", fmt.name, dst)
    elif op == "from_int":
        nl = conversion_netlist("from_int", "32", fmt.name)
    elif op == "to_int":
        nl = conversion_netlist("to_int", fmt.name, "32")
    else:
        raise ValueError(f"unknown operation {op!r}")
    c = nl.cost
    return OpCost(op, fmt.name, c.neurons, c.synapses, c.depth, c.by_kind)
