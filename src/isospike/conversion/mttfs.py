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

from typing import Any

import torch
from torch import Tensor, nn

from isospike.coding.ttfs import Rounding
from isospike.conversion.assemble import synapses_fed_by
from isospike.conversion.calibration import calibration_batches
from isospike.conversion.network import SpikingNetwork
from isospike.conversion.ttfs import TTFSPopulation, convert_ttfs
from isospike.errors import UnsupportedLayerError

CODING = "mttfs"


def _level_histograms(snn: SpikingNetwork, calibration: Any, batch_size: int, per_channel: bool
                      ) -> tuple[dict[str, Tensor], dict[str, int]]:
    """Counts of each signed level (index q + T) per population (per channel: [C, 2T + 1]), and
    the number of per-sample dims of each population."""
    pops = {n: m for n, m in snn.neurons() if isinstance(m, TTFSPopulation)}
    hist: dict[str, Tensor] = {}
    ndims: dict[str, int] = {}

    def hook(name: str):
        def record(mod: TTFSPopulation, inputs, _output) -> None:
            v, T = inputs[0], mod.window
            ndims[name] = v.dim() - 1
            slots = mod.last_slots
            assert slots is not None  # set by the forward call this hook follows
            q = T - slots
            if mod.signed:
                q = torch.where(v < 0, -q, q)
            idx = (q + T).to(torch.int64)
            if per_channel and idx.dim() >= 2:
                flat = idx.movedim(1, 0).reshape(idx.shape[1], -1)
                h = torch.stack([torch.bincount(r, minlength=2 * T + 1) for r in flat])
            else:
                h = torch.bincount(idx.flatten(), minlength=2 * T + 1)
            hist[name] = hist[name] + h if name in hist else h
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in pops.items()]
    try:
        for batch in calibration_batches(calibration, batch_size):
            snn(batch)
    finally:
        for h in handles:
            h.remove()
    snn.reset_counts()
    return hist, ndims


def _mode(hist: Tensor, T: int) -> Tensor:
    """Most frequent level from counts over q = -T..T; ties go to the level nearest 0."""
    levels = torch.arange(-T, T + 1)
    best = hist == hist.max(-1, keepdim=True).values
    key = torch.where(best, levels.abs() * 2 + (levels < 0).to(torch.int64), torch.iinfo(torch.int64).max)
    return levels[key.argmin(-1)]


def convert_mttfs(
    model: nn.Module,
    *,
    timesteps: int = 15,
    calibration: Any = None,
    dead_zone: int = 0,
    per_channel: bool = False,
    percentile: float = 99.9,
    rounding: Rounding = "round",
    fold_bn: bool = True,
    calibration_batch_size: int = 256,
) -> SpikingNetwork:
    """Convert a QNN (TTFSQuant activations) or a ReLU ANN to M-TTFS (see module docstring).

    Args:
        timesteps, percentile, rounding: as for TTFS (post-hoc steps for plain ReLUs).
        calibration: inputs on which the most frequent levels (and post-hoc steps) are measured.
        dead_zone: k >= 0; levels within k of the silent level are sent as silence (lossy).
        per_channel: one silent level per channel (dim 1 of each activation) instead of per layer.
    """
    if calibration is None:
        raise ValueError("M-TTFS measures each layer's most frequent level on calibration data: pass calibration=...")
    if int(dead_zone) != dead_zone or dead_zone < 0:
        raise ValueError(f"dead_zone must be an integer >= 0 (levels around the silent one), got {dead_zone!r}")
    try:
        snn = convert_ttfs(model, timesteps=timesteps, calibration=calibration, synapse=None, percentile=percentile,
                           rounding=rounding, fold_bn=fold_bn, calibration_batch_size=calibration_batch_size)
    except UnsupportedLayerError as exc:  # name the coding the user asked for
        raise UnsupportedLayerError(exc.layer_type, exc.path, CODING, exc.hint) from exc
    hist, ndims = _level_histograms(snn, calibration, calibration_batch_size, per_channel)
    silent: dict[str, list[int] | int] = {}
    for name, pop in snn.neurons():
        if name not in hist or not isinstance(pop, TTFSPopulation):  # hist holds the TTFS populations only
            continue
        T = pop.window
        m = _mode(hist[name], T)
        if not pop.signed:
            m = m.clamp_min(0)
        silent[name] = m.tolist()
        if m.dim():  # per channel: broadcast over the dims after the channel
            m = m.reshape(-1, *([1] * (ndims[name] - 1)))
        pop.silent_level = m.to(torch.int64)
        pop.dead_zone = int(dead_zone)
        pop.silence = "mode"
    gm = snn.graph_module
    pops = {n for n, _ in snn.neurons()}
    for syn, src in synapses_fed_by(gm, pops).items():
        object.__setattr__(gm.get_submodule(syn), "silent_source", gm.get_submodule(src))
    info = dict(snn.info)
    info.update({"silent_levels": silent, "dead_zone": int(dead_zone), "per_channel": per_channel,
                 "calibration_level_counts": {n: h.tolist() for n, h in hist.items()}})
    return SpikingNetwork(gm, snn.timesteps, CODING, info, fold_time=False)
