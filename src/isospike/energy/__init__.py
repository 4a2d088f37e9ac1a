"""Energy and hardware model: compute + data movement + communication, from the counts the
spiking layers report, on cited hardware presets (horowitz45, loihi, truenorth, cim-memristor,
optoelectronic)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import nn

from isospike.energy.activity import LayerActivity, NetworkActivity, ann_activity, ann_equivalent, collect
from isospike.energy.hardware import PRESETS, Hardware, crossbar_hardware, get_hardware, sram_pj_per_bit
from isospike.energy.model import LayerEnergy, full_energy, network_weight_bytes, ops_energy
from isospike.energy.neurobench import neurobench_differences, neurobench_model
from isospike.energy.report import EnergyReport


def estimate(model: nn.Module, inputs: Any, hardware: str | Hardware = "horowitz45", mode: str = "full",
             ann: nn.Module | None = None) -> EnergyReport:
    """Energy per inference of ``model`` on ``inputs`` (a batch -- a tensor, a dict of keyword
    arguments, a tuple of positional arguments -- or a list, DataLoader or other iterable of
    batches, counted over all their samples; results are per sample).

    model: a network from ``isospike.convert`` or ``isospike.exact.convert``, or a plain ANN.
    hardware: a preset name (see ``PRESETS``) or a :class:`Hardware`.
    mode: "full" (compute + data movement + communication) or "ops" (the short formula
        E_MAC x MACs + E_AC x ACs).
    ann: the ANN to compare with on the same hardware (default: for converted SNNs, the dense
        network they come from, reconstructed from their own dense counts).
    """
    _check_mode(mode)
    hw = get_hardware(hardware)
    if isinstance(inputs, Iterator):  # a generator of batches: read once, counted for both networks
        inputs = list(inputs)
    activity = collect(model, inputs)
    return price(activity, hw, mode, ann_activity(ann, inputs) if ann is not None else None)


def price(activity: NetworkActivity, hardware: str | Hardware = "horowitz45", mode: str = "full",
          baseline: NetworkActivity | None = None) -> EnergyReport:
    """The energy report of an activity already counted by :func:`collect` (one simulation can
    be priced on several hardware models and in both modes). ``baseline``: the ANN's activity to
    compare with (default: for spiking networks, their dense operations for one time step)."""
    _check_mode(mode)
    hw = get_hardware(hardware)
    if mode == "ops" and hw.compute_in_memory:
        raise ValueError(f"mode='ops' (E = mac_pj x MACs + ac_pj x ACs) has no meaning on {hw.name}: its synaptic "
                         "events cost crossbar cell, DAC and ADC energy, not digital accumulates (ac_pj = 0 there, so "
                         "every spiking layer would cost nothing); use mode='full'")
    compute = full_energy if mode == "full" else ops_energy
    layers = compute(activity, hw)
    notes = []
    if baseline is None and activity.source == "spiking":
        baseline = ann_equivalent(activity)
        notes.append("ANN baseline: the converted network's dense operations for one time step")
    ann_j = sum(r.energy_j for r in compute(baseline, hw)) if baseline is not None else None
    if activity.source == "exact":
        notes.append("exact circuits are modelled as fully spatial (each gate a physical neuron, wired weights)")
    if activity.tokens:
        notes.append(f"{activity.tokens} token positions in {activity.samples} samples: per_token_j is the run's "
                     "energy per token")
    if mode == "full" and any(row.kind in ("ann", "mac", "ac") for row in activity.layers):
        held = network_weight_bytes(activity, hw)
        if held > hw.on_chip_weight_bytes:
            notes.append(f"weights ({held / 2**20:.4g} MiB at {hw.weight_bits} bits) exceed the "
                         f"{hw.on_chip_weight_bytes / 2**20:.4g} MiB on chip: every weight read comes from DRAM")
    return EnergyReport(hw, mode, activity.samples, layers, ann_j, notes, activity.tokens, dict(activity.labels))


def _check_mode(mode: str) -> None:
    if mode not in ("full", "ops"):
        raise ValueError(f"mode must be 'full' or 'ops', got {mode!r}")


__all__ = [
    "EnergyReport", "Hardware", "LayerActivity", "LayerEnergy", "NetworkActivity", "PRESETS", "collect", "estimate",
    "crossbar_hardware", "get_hardware", "neurobench_differences", "neurobench_model", "price", "sram_pj_per_bit",
]
