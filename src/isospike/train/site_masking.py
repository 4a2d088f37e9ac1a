"""Masked TTFS (Matterhorn) chosen after the fact on a site-coded TTFS network -- for instance a
student distilled with :func:`isospike.train.distill`: each site population's most frequent level
on calibration data becomes its silent level, optionally with a dead zone around it.

``isp.convert(model, coding="mttfs", ...)`` does the same at conversion; this is for a network
whose weights changed since (the levels a site sends move with them), as
:func:`isospike.train.mask_ttfs` is for the trained quantizers of a graph-front QNN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from isospike.batches import model_calls
from isospike.coding.mttfs import Silence, check_silence, lowest_level, most_frequent_counted_level
from isospike.conversion.sites.network import CodedNetwork
from isospike.neurons.sites import ChannelScaled
from isospike.neurons.ttfs import TTFSPopulation

__all__ = ["mask_sites"]

EXCESS = ".excess"  # the second population of a split channel (channel_split), in the returned names


def _populations(net: CodedNetwork) -> list[tuple[str, TTFSPopulation]]:
    out: list[tuple[str, TTFSPopulation]] = []
    for name, module in net.sites().items():
        parts = [(name, module.population), (name + EXCESS, module.excess)] if isinstance(module, ChannelScaled) \
            else [(name, module)]
        for label, pop in parts:
            if pop is None:
                continue
            if not isinstance(pop, TTFSPopulation):
                raise ValueError(f"site {label!r} holds a {type(pop).__name__}, not a TTFS population: mask_sites "
                                 "chooses the silent levels of TTFS sites (convert with coding='ttfs' or 'mttfs', "
                                 "front='sites')")
            out.append((label, pop))
    return out


def mask_sites(net: nn.Module, calibration: Any = None, *, dead_zone: int = 0,
               dead_zone_sites: Callable[[str], bool] | None = None, silence: Silence = "mode",
               batch_size: int = 32) -> dict[str, int]:
    """Choose, in place, the level each TTFS site population of ``net`` sends as silence.

    net: a site-coded spiking network of coding "ttfs" or "mttfs" (not its QNN: mask the SNN, then
        take ``isp.equivalent``). calibration: the model's inputs (a tensor, a dict of keyword
        arguments, or an iterable of either) for ``silence="mode"``.
    silence: "mode" (M-TTFS: each population's most frequent level on the calibration data, before
        any dead zone), "lowest" (the Matterhorn paper's TTFS baseline: the lowest level silent) or
        "zero" (plain TTFS, masking undone).
    dead_zone: k >= 0 levels on each side of the silent one also sent as silence (lossy), in the
        sites whose name ``dead_zone_sites(name)`` accepts (default: all).
    Returns {site name: silent level} (``<site>.excess`` for a split channel's second population).
    Without a dead zone the outputs do not change, only which neurons spike. Populations read
    through an optoelectronic synapse keep it only under silence="zero" without a dead zone."""
    silence = check_silence(silence)
    if isinstance(dead_zone, bool) or int(dead_zone) != dead_zone or dead_zone < 0:
        raise ValueError(f"dead_zone must be a whole number >= 0 (levels around the silent one), got {dead_zone!r}")
    if not isinstance(net, CodedNetwork) or net.coding not in ("ttfs", "mttfs"):
        raise TypeError("mask_sites takes a network converted with coding='ttfs' or 'mttfs' and front='sites', got "
                        f"{type(net).__name__}")
    if net.quantized:
        raise ValueError("mask_sites masks the spiking network: call it on the SNN, then isp.equivalent(snn)")
    found = _populations(net)
    if silence != "zero" or dead_zone:
        held = [label for label, pop in found if pop.device is not None]
        if held:
            raise ValueError(f"masked TTFS decodes spikes with a digital level table; sites {held[:3]} read through "
                             "an optoelectronic synapse: convert with synapse=None")
    unique = {id(pop): (label, pop) for label, pop in found}  # a population several sites share is chosen once

    counts: dict[int, Tensor] = {}
    if silence == "mode":
        if calibration is None:
            raise ValueError("silence='mode' measures each population's most frequent level: pass calibration=<the "
                             "model's inputs>")

        def record(pop: TTFSPopulation, inputs: tuple, _out: Any) -> None:
            h = pop.level_counts(inputs[0].detach())
            counts[id(pop)] = counts[id(pop)] + h if id(pop) in counts else h

        handles = [pop.register_forward_hook(record) for _, pop in unique.values()]
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                for args, kwargs in model_calls(calibration, batch_size):
                    net(*args, **kwargs)
        finally:
            for h in handles:
                h.remove()
            net.train(was_training)
        unseen = [label for key, (label, _) in unique.items() if key not in counts]
        if unseen:
            raise ValueError(f"the calibration data never reached sites {unseen[:3]}: calibrate with inputs that take "
                             "the same paths")

    replaced: dict[int, TTFSPopulation] = {}
    chosen: dict[str, int] = {}
    for key, (label, pop) in unique.items():
        T = pop.window
        if silence == "mode":
            level = int(most_frequent_counted_level(counts[key], T))
            level = max(level, 0) if not pop.signed else level
        else:
            level = lowest_level(T, pop.signed) if silence == "lowest" else 0
        zone = int(dead_zone) if dead_zone_sites is None or dead_zone_sites(label.removesuffix(EXCESS)) else 0
        replaced[key] = TTFSPopulation(T, pop.scale, pop.rounding, pop.signed, device=pop.device, silent_level=level,
                                       dead_zone=zone, silence=silence, sample_shape=pop.sample_shape)
    for label, pop in found:
        chosen[label] = int(replaced[id(pop)].silent_level)
    sites: dict[str, nn.Module] = {}
    for name, module in net.sites().items():
        if isinstance(module, ChannelScaled):
            module.population = replaced[id(module.population)]
            if module.excess is not None:
                module.excess = replaced[id(module.excess)]
            sites[name] = module
        else:
            sites[name] = replaced[id(module)]
    net.set_sites(sites)
    net.info = {**net.info, "masked": {"silence": silence, "dead_zone": int(dead_zone)}}
    return chosen
