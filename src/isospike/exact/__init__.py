"""Bit-exact spiking arithmetic: IEEE-754 operations computed by integrate-and-fire neurons
acting as threshold gates, on values carried as spatial bit spikes (one spike line per bit,
one time step).

The gate operations (``add``, ``mul``, ..., ``where``, ``to_bfloat16``, ``from_int``, ``to_int``,
``logical_and``, ...) are one per primitive of the table in :mod:`isospike.exact.primitives`; they
are made in :mod:`isospike.exact.ops` and exported here by name."""

from typing import TYPE_CHECKING

from isospike.exact import functions
from isospike.exact.arith import Arith, GateArith, NativeArith, TorchArith
from isospike.exact.cost import OpCost, cost
from isospike.exact.counting import ExactCounts, OpCounts, counting
from isospike.exact.model_conversion import ExactNetwork, convert, reference
from isospike.exact.ops import PUBLIC as _OPERATIONS

if TYPE_CHECKING:  # the operations are made from the table at import: typed for the static checker
    from isospike.exact.ops import GateOperation

    def __getattr__(name: str) -> GateOperation: ...

globals().update(_OPERATIONS)

__all__ = [
    "Arith", "ExactCounts", "ExactNetwork", "GateArith", "NativeArith", "OpCost", "OpCounts", "TorchArith", "convert",
    "cost", "counting", "functions", "reference", *_OPERATIONS,
]
