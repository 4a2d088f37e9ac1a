"""The energy report: per-layer rows, totals, categories, the ratio to the ANN, a plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from isospike._io import atomic_savefig
from isospike.energy.hardware import Hardware
from isospike.energy.model import LayerEnergy
from isospike.tables import text_table

CATEGORIES = ("compute", "data_movement", "communication")


@dataclass
class EnergyReport:
    """Energy per inference (joules) of a network on a hardware model.

    layers: :class:`LayerEnergy` rows (name, kind, macs, acs, neuron_updates, spikes,
    gate_evaluations, compute_j, data_movement_j, communication_j, energy_j);
    by_category: {"compute", "data_movement", "communication"} -> J; total_j;
    ann_total_j: the same-hardware ANN baseline (None when unknown); ratio_to_ann = ANN / this.
    tokens: token positions the samples held, for language models (the attention mask's ones);
    per_token_j / ann_per_token_j: the whole run's energy divided by them (None otherwise).
    """

    hardware: Hardware
    mode: str
    samples: int
    layers: list[LayerEnergy]
    ann_total_j: float | None = None
    notes: list[str] = field(default_factory=list)
    tokens: int | None = None
    labels: dict[str, str] = field(default_factory=dict)  # layer path -> "path (what it is)"

    @property
    def per_token_j(self) -> float | None:
        """Joules per token position: energy per inference x samples / tokens (language models)."""
        return self.total_j * self.samples / self.tokens if self.tokens else None

    @property
    def ann_per_token_j(self) -> float | None:
        if not self.tokens or self.ann_total_j is None:
            return None
        return self.ann_total_j * self.samples / self.tokens

    def label(self, name: str) -> str:
        """A layer's row name: its path with what it is (``3 (Conv2d synapses)``) where known."""
        return self.labels.get(name, name)

    @property
    def total_j(self) -> float:
        return sum(layer.energy_j for layer in self.layers)

    @property
    def by_category(self) -> dict[str, float]:
        return {
            "compute": sum(layer.compute_j for layer in self.layers),
            "data_movement": sum(layer.data_movement_j for layer in self.layers),
            "communication": sum(layer.communication_j for layer in self.layers),
        }

    @property
    def ratio_to_ann(self) -> float | None:
        if self.ann_total_j is None or self.total_j == 0:
            return None
        return self.ann_total_j / self.total_j

    def comparison(self) -> str:
        """The energy against the same-hardware ANN with its direction spelled out, e.g.
        "SNN / ANN = 1.13x: the SNN costs more" (empty when there is no baseline)."""
        if self.ann_total_j is None or not self.ann_total_j:
            return ""
        ratio = self.total_j / self.ann_total_j
        if ratio > 1:
            return f"SNN / ANN = {ratio:.3g}x: the SNN costs more"
        return f"SNN / ANN = {ratio:.3g}x: the SNN costs {1 / ratio:.3g}x less" if ratio > 0 else "SNN / ANN = 0"

    def ann_pricing(self) -> str:
        """How the ANN baseline is priced on this hardware (its MACs and where the figure comes from)."""
        source = self.hardware.sources.get("mac_pj", "")
        text = f"ANN baseline on {self.hardware.name}: every MAC at {self.hardware.mac_pj:g} pJ"
        return text + (f" ({source})" if source else "")

    def as_dict(self) -> dict:
        return {
            "hardware": self.hardware.name, "mode": self.mode, "samples": self.samples, "total_j": self.total_j,
            "by_category": self.by_category, "ann_total_j": self.ann_total_j, "ratio_to_ann": self.ratio_to_ann,
            "tokens": self.tokens, "per_token_j": self.per_token_j, "ann_per_token_j": self.ann_per_token_j,
            "layers": [{"name": r.name, "label": self.label(r.name), "kind": r.kind, "macs": r.macs, "acs": r.acs,
                        "neuron_updates": r.neuron_updates,
                        "spikes": r.spikes, "gate_evaluations": r.gate_evaluations, "compute_j": r.compute_j,
                        "data_movement_j": r.data_movement_j, "communication_j": r.communication_j,
                        "energy_j": r.energy_j} for r in self.layers],
            "sources": self.hardware.sources, "notes": self.notes,
        }

    def table(self) -> str:
        """A fixed-width per-layer table with totals (energies in nJ per inference)."""
        rows = [[self.label(r.name), r.kind, f"{r.macs:.4g}", f"{r.acs:.4g}", f"{r.spikes:.4g}", f"{1e9 * r.compute_j:.4g}",
                 f"{1e9 * r.data_movement_j:.4g}", f"{1e9 * r.communication_j:.4g}", f"{1e9 * r.energy_j:.4g}"]
                for r in self.layers]
        c = self.by_category
        rows.append(["total", "", f"{sum(r.macs for r in self.layers):.4g}", f"{sum(r.acs for r in self.layers):.4g}",
                     f"{sum(r.spikes for r in self.layers):.4g}", f"{1e9 * c['compute']:.4g}",
                     f"{1e9 * c['data_movement']:.4g}", f"{1e9 * c['communication']:.4g}", f"{1e9 * self.total_j:.4g}"])
        out = text_table(["layer", "kind", "MACs", "ACs", "spikes", "compute nJ", "data nJ", "comm nJ", "total nJ"], rows)
        out += f"\n\nhardware: {self.hardware.name} ({self.hardware.description}); mode: {self.mode}; per inference"
        if self.ann_total_j is not None and self.ratio_to_ann is not None:
            out += f"\nANN on the same hardware: {1e9 * self.ann_total_j:.4g} nJ; {self.comparison()}; {self.ann_pricing()}"
        if self.per_token_j is not None:
            out += f"\nper token ({self.tokens} tokens in {self.samples} samples): {1e9 * self.per_token_j:.4g} nJ"
            if self.ann_per_token_j is not None:
                out += f" (ANN {1e9 * self.ann_per_token_j:.4g} nJ)"
        return out

    def plot(self, path: str | Path) -> Path:
        """Stacked bars of compute / data movement / communication per layer (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = [self.label(r.name) for r in self.layers]
        parts = {"compute": [r.compute_j for r in self.layers], "data movement": [r.data_movement_j for r in self.layers],
                 "communication": [r.communication_j for r in self.layers]}
        fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names) + 3), 4.6))
        bottom = [0.0] * len(names)
        for (label, vals), color in zip(parts.items(), ("tab:blue", "tab:orange", "tab:green")):
            ax.bar(names, [1e9 * v for v in vals], bottom=[1e9 * b for b in bottom], label=label, color=color)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_ylabel("energy per inference (nJ)")
        ax.set_ylim(0, 1.12 * 1e9 * max(bottom, default=0.0) or 1.0)
        title = f"{self.hardware.name}: {1e9 * self.total_j:.4g} nJ per inference"
        if self.ann_total_j is not None and self.ratio_to_ann is not None:
            title += f"\nANN {1e9 * self.ann_total_j:.4g} nJ; {self.comparison()}"
        ax.set_title(title)
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.set_xlabel("layer (path in the network, and what it is)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: hides no bar
        fig.tight_layout()
        out = atomic_savefig(fig, path, dpi=120)
        plt.close(fig)
        return out
