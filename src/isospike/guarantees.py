"""What a converted layer guarantees, one layer's measured check of it, and a network's certificate
(the rows of every layer); a leaf module: it imports only the table format.

Guarantees (see :mod:`isospike.certificate`):

* ``BIT_EXACT``: the layer's output equals the pinned float32 reference bit for bit.
* ``QNN_EQUIVALENT``: the population's decoded output equals its quantizer's output exactly.
* ``BOUNDED_ERROR``: a rate within max(v_init, theta - v_init) / T of the clipped mean current.
* ``MEASURED_ONLY``: spike-fed neurons that reset to zero or leak: no bound is claimed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import Tensor

from isospike.tables import text_table

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


@dataclass
class Certificate:
    coding: str
    samples: int
    layers: list[LayerCertificate] = field(default_factory=list)
    output_max_abs_diff: float = 0.0

    @property
    def holds(self) -> bool:
        return all(layer.holds for layer in self.layers)

    @property
    def fraction_within(self) -> float:
        """Fraction of all compared values that satisfy their layer's guarantee."""
        entries = sum(layer.entries for layer in self.layers)
        return 1.0 - sum(layer.violations for layer in self.layers) / entries if entries else 1.0

    def summary(self) -> str:
        """"yes" when every guarantee held, else the share of values within their guarantee."""
        return "yes" if self.holds else f"NO ({100 * self.fraction_within:.1f}% within)"

    def as_dict(self) -> dict[str, Any]:
        return {"coding": self.coding, "samples": self.samples, "holds": self.holds,
                "output_max_abs_diff": self.output_max_abs_diff, "layers": [asdict(layer) for layer in self.layers]}

    def table(self) -> str:
        rows = [[c.layer, c.guarantee, f"{c.max_abs_diff:.3g}" if c.max_ulp is None else f"{c.max_ulp} ULP",
                 f"{c.bound:.3g}", f"{c.violations}/{c.entries}", "yes" if c.holds else "NO"] for c in self.layers]
        head = f"{self.coding}: {'all guarantees hold' if self.holds else 'SOME GUARANTEES FAIL'} on {self.samples} samples"
        return head + "\n" + text_table(["layer", "guarantee", "measured", "bound", "violations", "holds"], rows)


def merge_certificates(certs: list[Certificate]) -> Certificate:
    """One certificate for several batches checked one by one: each layer's rows combined (the
    largest difference and ULP distance, violations and entries summed, holds when it held on
    every batch), samples summed, the largest output difference."""
    if not certs:
        raise ValueError("no certificates to merge: the inputs held no batch")
    out = Certificate(certs[0].coding, sum(c.samples for c in certs))
    rows: dict[tuple[str, str], LayerCertificate] = {}
    for cert in certs:
        for row in cert.layers:
            key = (row.layer, row.guarantee)
            have = rows.get(key)
            if have is None:
                rows[key] = LayerCertificate(**asdict(row))
                continue
            have.max_abs_diff = max(have.max_abs_diff, row.max_abs_diff)
            have.bound = max(have.bound, row.bound)
            have.holds = have.holds and row.holds
            have.violations += row.violations
            have.entries += row.entries
            if row.max_ulp is not None:
                have.max_ulp = row.max_ulp if have.max_ulp is None else max(have.max_ulp, row.max_ulp)
        out.output_max_abs_diff = max(out.output_max_abs_diff, cert.output_max_abs_diff)
    out.layers = list(rows.values())
    return out
