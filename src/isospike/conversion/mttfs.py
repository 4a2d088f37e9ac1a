"""Masked TTFS conversion (M-TTFS, Matterhorn): TTFS layers whose silence stands for each
layer's most frequent level, with an optional dead zone.

The network is first converted as plain TTFS (:mod:`isospike.conversion.ttfs`, ideal digital
level reads). On the calibration data every population's levels are counted and its most
frequent level m is found (per layer, or per channel with ``per_channel=True``). Each population
then sends level m as silence and level 0 as the spike m had (a bijection: decoded values are
exactly TTFS's), and with ``dead_zone=k`` also sends every level within k of m as silence (lossy).
A receiving synapse folds the silent value into its bias -- layer(x) = layer(x - v(m)) + W v(m)
-- so only spikes cost synaptic events. Without a dead zone the network equals the TTFS network
(and its QNN) up to float summation order.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from isospike.coding.mttfs import most_frequent_counted_level
from isospike.coding.ttfs import Rounding
from isospike.conversion.calibration import calibration_batches
from isospike.conversion.coding import Coding, TimeCodingOptions, register
from isospike.conversion.network import SpikingNetwork
from isospike.conversion.pipeline import has_trained_threshold, is_ttfs_quantizer, prepare, require_calibration
from isospike.conversion.ttfs import TTFSOptions, network, population_specs
from isospike.guarantees import QNN_EQUIVALENT
from isospike.neurons.ttfs import TTFSPopulation

CODING = "mttfs"


@dataclass(frozen=True)
class MTTFSOptions(TimeCodingOptions):
    """Options of masked TTFS.

    timesteps, percentile, rounding, fold_bn, calibration_batch_size: as for TTFS (post-hoc
        steps for plain ReLUs).
    dead_zone: k >= 0; levels within k of the silent level are sent as silence (lossy).
    per_channel: one silent level per channel (dim 1 of each activation) instead of per layer.
    """

    timesteps: int = 15
    dead_zone: int = 0
    per_channel: bool = False
    percentile: float = 99.9
    rounding: Rounding = "round"
    fold_bn: bool = True
    calibration_batch_size: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dead_zone < 0:
            raise ValueError(f"dead_zone must be an integer >= 0 (levels around the silent one), got {self.dead_zone!r}")
        if not 0.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {self.percentile}")


def _level_histograms(snn: SpikingNetwork, calibration: Any, batch_size: int, per_channel: bool
                      ) -> tuple[dict[str, Tensor], dict[str, int]]:
    """Counts of each signed level (index q + T) per population (per channel: [C, 2T + 1]), and
    the number of per-sample dims of each population."""
    pops = {n: m for n, m in snn.neurons() if isinstance(m, TTFSPopulation)}
    hist: dict[str, Tensor] = {}
    ndims: dict[str, int] = {}

    def hook(name: str):
        def record(mod: TTFSPopulation, inputs, _output) -> None:
            v = inputs[0]
            ndims[name] = v.dim() - 1
            h = mod.level_counts(v, per_channel=per_channel and v.dim() >= 2)
            hist[name] = hist[name] + h if name in hist else h
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in pops.items()]
    try:
        with torch.no_grad():
            for batch in calibration_batches(calibration, batch_size):
                snn(batch)
    finally:
        for h in handles:
            h.remove()
    return hist, ndims


def build_mttfs(model: nn.Module, options: MTTFSOptions, calibration: Any) -> SpikingNetwork:
    """Measure each layer's most frequent level on a plain TTFS network (ideal digital reads), then
    build the M-TTFS network with those silent levels (see the module docstring)."""
    o = options
    require_calibration(calibration, "M-TTFS measures each layer's most frequent level on calibration data")
    prepared = prepare(model, calibration, fold_bn=o.fold_bn,
                       keep=lambda m: is_ttfs_quantizer(m) or has_trained_threshold(m))
    ttfs = TTFSOptions(timesteps=o.timesteps, synapse=None, percentile=o.percentile, rounding=o.rounding,
                       fold_bn=o.fold_bn, calibration_batch_size=o.calibration_batch_size)
    specs = population_specs(prepared, ttfs, calibration)
    for spec in specs.values():
        spec["device"] = None  # masked codes are decoded with a digital level table
    plain = copy.deepcopy(prepared)
    probe = network(plain, specs, CODING, {}, o.timesteps)
    hist, ndims = _level_histograms(probe, calibration, o.calibration_batch_size, o.per_channel)
    silent: dict[str, list[int] | int] = {}
    for name, spec in specs.items():
        if name not in hist:  # a population the calibration data never reached
            continue
        m = most_frequent_counted_level(hist[name], spec["timesteps"])
        if not spec["signed"]:
            m = m.clamp_min(0)
        silent[name] = m.tolist()
        if m.dim():  # per channel: broadcast over the dims after the channel
            m = m.reshape(-1, *([1] * (ndims[name] - 1)))
        spec.update(silent_level=m.to(torch.int64), dead_zone=o.dead_zone, silence="mode",
                    sample_shape=probe.graph_module.get_submodule(name).sample_shape)
    quantized = [p for p in prepared.activations if is_ttfs_quantizer(prepared.modules[p])]
    info = {"trained_layers": sorted(quantized), "folded_batchnorm": prepared.folded_batchnorm,
            "post_hoc_layers": [p for p in prepared.activations
                                if p not in quantized and not has_trained_threshold(prepared.modules[p])],
            "device": None, "silent_levels": silent, "dead_zone": o.dead_zone, "per_channel": o.per_channel,
            "calibration_level_counts": {n: h.tolist() for n, h in hist.items()}}
    return network(prepared, specs, CODING, info, o.timesteps)


def mttfs_site(stats: Any, o: MTTFSOptions) -> nn.Module:
    """A site of any model (front="sites"): a TTFS population (step = span / T, signed when the
    activation took negative values, digital reads) whose silent level is the site's most frequent
    level on the calibration sample, with the dead zone around it."""
    if o.per_channel:
        raise ValueError("per_channel silent levels are a graph-front option (front='graph'); sites have one silent "
                         "level each")
    T = o.timesteps
    plain = TTFSPopulation(T, stats.span / T, o.rounding, stats.signed)
    m = most_frequent_counted_level(plain.level_counts(stats.values), T)
    if not stats.signed:
        m = m.clamp_min(0)
    return TTFSPopulation(T, stats.span / T, o.rounding, stats.signed, silent_level=int(m), dead_zone=o.dead_zone,
                          silence="mode")


MTTFS = register(Coding(
    CODING, MTTFSOptions, build_mttfs, site=mttfs_site,
    guarantee=f"{QNN_EQUIVALENT} (lossy with a dead zone: equals its quantizer)",
    summary="TTFS whose silence is each layer's most frequent level (Matterhorn), optional dead zone"))


def convert_mttfs(model: nn.Module, *, calibration: Any = None, **options: Any) -> SpikingNetwork:
    """``isospike.convert(model, coding="mttfs", ...)``; options: :class:`MTTFSOptions`."""
    snn = MTTFS.convert(model, calibration, **options)
    assert isinstance(snn, SpikingNetwork)  # what build_mttfs returns
    return snn


__all__ = ["MTTFS", "MTTFSOptions", "build_mttfs", "convert_mttfs"]
