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

    @property
    def status(self) -> str:
        """The "holds" cell of a report: "yes"; for a bounded-error layer that misses its bound on
        some values, "bounded: 99.2% within" (the statistical certificate it is: the share of
        neurons inside max(v_init, theta - v_init) / T, not a failure of the conversion); else "NO"."""
        if self.holds:
            return "yes"
        if self.guarantee == BOUNDED_ERROR:
            within = 1.0 - self.violations / self.entries if self.entries else 1.0
            return f"bounded: {_percent(within)} within"
        return "NO"


def _percent(fraction: float) -> str:
    """A share as a percentage that never rounds a miss up to 100% (99.996% -> "99.99%")."""
    value = 100 * fraction
    text = f"{value:.1f}%"
    if fraction < 1.0 and text == "100.0%":
        text = f"{min(value, 99.99):.2f}%"
    return text


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
    labels: dict[str, str] = field(default_factory=dict)  # layer path -> "path (what it is)", set by verify

    @property
    def holds(self) -> bool:
        return all(layer.holds for layer in self.layers)

    @property
    def fraction_within(self) -> float:
        """Fraction of all compared values that satisfy their layer's guarantee."""
        entries = sum(layer.entries for layer in self.layers)
        return 1.0 - sum(layer.violations for layer in self.layers) / entries if entries else 1.0

    @property
    def misses_only_bounds(self) -> bool:
        """Whether every layer that did not hold is a bounded-error (rate) layer: the exact and
        QNN-equivalent guarantees all held, and some rate neurons fell outside their 1/T bound."""
        return not self.holds and all(layer.holds or layer.guarantee == BOUNDED_ERROR for layer in self.layers)

    def summary(self) -> str:
        """"yes" when every guarantee held; "bounded error: 95.3% within" when only bounded-error
        layers missed their bound on some values (the share is over those layers' values: the
        statistical certificate rate coding gives); else "NO (x% within)" over all values."""
        if self.holds:
            return "yes"
        if self.misses_only_bounds:
            bounded = [layer for layer in self.layers if layer.guarantee == BOUNDED_ERROR]
            entries = sum(layer.entries for layer in bounded)
            within = 1.0 - sum(layer.violations for layer in bounded) / entries if entries else 1.0
            return f"bounded error: {_percent(within)} within"
        return f"NO ({_percent(self.fraction_within)} within)"

    def as_dict(self) -> dict[str, Any]:
        return {"coding": self.coding, "samples": self.samples, "holds": self.holds,
                "output_max_abs_diff": self.output_max_abs_diff, "layers": [asdict(layer) for layer in self.layers]}

    def table(self) -> str:
        rows = [[self.labels.get(c.layer, c.layer), c.guarantee,
                 f"{c.max_abs_diff:.3g}" if c.max_ulp is None else f"{c.max_ulp} ULP", f"{c.bound:.3g}",
                 f"{c.violations}/{c.entries}", c.status] for c in self.layers]
        verdict = ("all guarantees hold" if self.holds else "exact guarantees hold; some rate neurons outside their "
                   "1/T bound (bounded error)" if self.misses_only_bounds else "SOME GUARANTEES FAIL")
        head = f"{self.coding}: {verdict} on {self.samples} samples"
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
