"""``isospike.convert(model, coding="exact")``: the bit-exact gate-circuit network of
:func:`isospike.exact.convert` through the common entry, so every coding takes the same call."""

from __future__ import annotations

from typing import Any

from torch import nn

CODING = "exact"


def convert_exact(model: nn.Module, *, timesteps: int | None = None, calibration: Any = None,
                  **options: Any) -> nn.Module:
    """:func:`isospike.exact.convert` (options: ``backend``, ``count``, ``leak``, ``noise``, ...).

    Values travel as their bits on parallel spike lines in one time step, so ``timesteps`` may
    only be 1. Nothing is measured on data (the circuits are exact for every input), so
    ``calibration`` is accepted for a uniform call and not needed."""
    from isospike.exact import convert

    if timesteps is not None and timesteps != 1:
        raise ValueError(f"the exact coding computes in one time step (spatial bit coding); got timesteps={timesteps}: "
                         "leave timesteps out or pass 1")
    return convert(model, **options)
