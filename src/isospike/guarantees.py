"""What a converted layer guarantees, and one layer's measured check of it (a leaf module).

Guarantees (see :mod:`isospike.certificate`):

* ``BIT_EXACT``: the layer's output equals the pinned float32 reference bit for bit.
* ``QNN_EQUIVALENT``: the population's decoded output equals its quantizer's output exactly.
* ``BOUNDED_ERROR``: a rate within max(v_init, theta - v_init) / T of the clipped mean current.
* ``MEASURED_ONLY``: spike-fed neurons that reset to zero or leak: no bound is claimed.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

BIT_EXACT = "bit-exact"
QNN_EQUIVALENT = "qnn-equivalent"
BOUNDED_ERROR = "bounded-error"
# guarantee of a spike-fed layer whose neurons reset to zero or leak (NIR files from other tools):
# its rate has no residual bound, so the layer makes no claim that could fail
MEASURED_ONLY = "none (reset to zero or leak)"
GUARANTEES = (BIT_EXACT, QNN_EQUIVALENT, BOUNDED_ERROR, MEASURED_ONLY)


@dataclass
class LayerCertificate:
    """One layer's guarantee and its measurement.

    max_abs_diff: largest |SNN - equivalent| (or |rate - clipped mean current| for bounded-error
    layers); max_ulp: largest ULP distance (bit-exact layers); bound: the allowed difference;
    violations: entries beyond the bound; entries: values compared."""

    layer: str
    guarantee: str
    max_abs_diff: float
    bound: float
    holds: bool
    violations: int = 0
    entries: int = 0
    max_ulp: int | None = None


def layer_check(name: str, guarantee: str, excess: Tensor, bound: float) -> LayerCertificate:
    """A layer's row from ``excess`` (|diff| for exact guarantees, |diff| - per-neuron bound for
    bounded-error ones): the values with ``excess > bound`` are violations."""
    bad = int((excess > bound).sum())
    return LayerCertificate(name, guarantee, float(excess.max()) if excess.numel() else 0.0, bound, bad == 0, bad,
                            int(excess.numel()))
