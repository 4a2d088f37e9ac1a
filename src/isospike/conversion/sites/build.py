"""Converting any eager model through the site front end: copy it, run the calibration data
through the copy while sampling every site's activation, and place at each site the population
its coding builds from those statistics (:attr:`isospike.conversion.coding.Coding.site`).

Every coding with time defines its site population once, in its own module; this module knows
none of them. The statistics of a site (:class:`SiteStats`) are its activation's span (a
percentile of |x|), whether it takes negative values (signed sites use two channels), and a
bounded random sample of its values (M-TTFS reads its most frequent level from it).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn

from isospike.batches import model_calls
from isospike.conversion.calibration import ActivationSampler
from isospike.conversion.sites.network import CodedNetwork, coded_copy
from isospike.neurons.sites import ChannelScaled

__all__ = ["SiteStats", "convert_sites", "equivalent_sites"]

# values kept per site for its statistics (a percentile estimate far below one level's width;
# bounded so that an LLM's ~200 sites stay within tens of MB)
SAMPLES_PER_SITE = 1 << 16


@dataclass
class SiteStats:
    """What calibration measured at one site.

    name: the site (module path of its weight operation, ``#k`` for further calls).
    span: the ``percentile``-th percentile of |x| (1.0 when the activation was always 0).
    signed: whether x took negative values (the site then codes x and -x on two channels).
    values: a random sample of x (float32, at most 65,536 values)."""

    name: str
    span: float
    signed: bool
    values: Tensor


def _stats(sampler: ActivationSampler, percentile: float) -> dict[str, SiteStats]:
    out, silent = {}, []
    for name in sampler.samples:
        values = torch.cat(sampler.samples[name]) if sampler.samples[name] else torch.zeros(1)
        if len(values) > SAMPLES_PER_SITE:
            values = values[torch.randperm(len(values), generator=sampler.generator)[:SAMPLES_PER_SITE]]
        span = float(torch.quantile(values.abs().double(), percentile / 100)) if values.numel() else 0.0
        if percentile >= 100:
            span = max(abs(sampler.maxima[name]), abs(sampler.minima[name]))
        if not span > 0:
            span = 1.0
            silent.append(name)
        out[name] = SiteStats(name, span, sampler.minima[name] < 0, values)
    if silent:
        shown = ", ".join(repr(p) for p in silent[:5]) + (f" and {len(silent) - 5} more" if len(silent) > 5 else "")
        warnings.warn(f"{len(silent)} site(s) saw only zeros on the calibration data ({shown}); their scale defaults "
                      "to 1.0 -- calibrate with representative inputs", stacklevel=4)
    return out


ROWS_PER_SITE = 512  # activation rows kept per site for per-channel statistics


class ChannelRecorder:
    """Per site: the largest |x| of each input channel (along the site's channel axis) and a bounded
    random sample of activation rows (each row: one value per channel)."""

    def __init__(self, seed: int = 0) -> None:
        self.maxima: dict[str, Tensor] = {}
        self.rows: dict[str, list[Tensor]] = {}
        self.axis: dict[str, int] = {}
        self.generator = torch.Generator().manual_seed(seed)

    def add(self, name: str, axis: int, x: Tensor) -> None:
        if x.dim() == 0 or x.numel() == 0:
            return
        rows = x.detach().movedim(axis, -1).reshape(-1, x.shape[axis]).to(torch.float32)
        top = rows.abs().amax(0)
        self.maxima[name] = torch.maximum(self.maxima[name], top) if name in self.maxima else top
        self.axis[name] = axis
        kept = self.rows.setdefault(name, [])
        have = sum(len(r) for r in kept)
        if have < ROWS_PER_SITE:
            take = min(ROWS_PER_SITE - have, len(rows))
            kept.append(rows[torch.randperm(len(rows), generator=self.generator)[:take]].clone())


def calibrate(net: CodedNetwork, calibration: Any, batch_size: int
              ) -> tuple[ActivationSampler, ChannelRecorder, dict[str, str], list[str]]:
    """Run ``calibration`` through ``net`` (no grad) sampling every site's activation, and its
    channels' ranges. A site fed the very same tensor as an earlier site of the same call (the
    Q, K and V projections of one input) is an alias of it: {site: the first site}; it gets the
    first site's statistics, hence an equal population (one population drives both). Last: every
    site's name in the order the forward first reached it."""
    sampler = ActivationSampler({}, max_samples=SAMPLES_PER_SITE * 8)
    channels = ChannelRecorder()
    recent: list[tuple[Tensor, str, int | None]] = []  # the last activations recorded (kept alive: identity holds)
    aliases: dict[str, str] = {}
    order: dict[str, None] = {}

    def record(name: str, axis: int | None, x: Tensor) -> None:
        order.setdefault(name, None)
        if name in aliases:
            return
        first = next((n for t, n, a in recent if t is x and a == axis and n != name), None)
        if first is not None:  # the same tensor as an earlier site: that site's statistics
            aliases[name] = first
            return
        recent.append((x, name, axis))
        del recent[:-RECENT]
        sampler.add(name, x)
        if axis is not None:  # an operand of a product of two activations has no channel axis
            channels.add(name, axis, x)

    net._coded_record = record
    try:
        with torch.no_grad():
            for args, kwargs in model_calls(calibration, batch_size):
                recent.clear()
                net(*args, **kwargs)
    finally:
        net._coded_record = None
    return sampler, channels, aliases, list(order)


RECENT = 8  # activations remembered for finding sites fed the very same tensor (Q, K, V projections)


def _channel_site(stats: SiteStats, channels: ChannelRecorder, options: Any, site: SiteFactory) -> nn.Module:
    """A site coded channel by channel: the population codes x / (the channel's largest |x|) on a
    unit span (the ``percentile`` of the normalized values), the synapses decode it back."""
    name = stats.name
    span = channels.maxima[name].clamp_min(torch.finfo(torch.float32).tiny)
    span = torch.where(channels.maxima[name] > 0, span, torch.ones_like(span))
    if options.channel_split is not None:
        return _split_site(stats, channels, options, site, span)
    normalized = (torch.cat(channels.rows[name]) / span).flatten()
    unit = float(torch.quantile(normalized.abs().double(), options.percentile / 100)) if options.percentile < 100 else 1.0
    inner = SiteStats(name, unit if unit > 0 else 1.0, stats.signed, normalized)
    return ChannelScaled(site(inner, options), span, channels.axis[name])


def _split_site(stats: SiteStats, channels: ChannelRecorder, options: Any, site: SiteFactory, top: Tensor) -> nn.Module:
    """A site whose channels split at the ``channel_split`` percentile of their |x| (the fine
    span, at most the channel's largest |x|, ``top``): one population codes the clipped value on
    the fine span, a second codes the excess on the rest of the range (top - fine; a channel that
    never exceeds its split keeps a silent second population on the fine span). The second
    population reaches ``split_headroom`` x top."""
    name = stats.name
    rows = torch.cat(channels.rows[name])
    fine = torch.quantile(rows.abs().double(), options.channel_split / 100, dim=0).to(torch.float32)
    fine = torch.where(fine > 0, torch.minimum(fine, top), top)
    rest = options.split_headroom * top - fine
    coarse = torch.where(rest > 1e-6 * top, rest, fine)
    inner = rows.clamp(-fine, fine)
    first = SiteStats(name, 1.0, stats.signed, (inner / fine).flatten())
    beyond = SiteStats(name, 1.0, stats.signed, ((rows - inner) / coarse).flatten())
    return ChannelScaled(site(first, options), fine, channels.axis[name], site(beyond, options), coarse)


SiteFactory = Callable[[SiteStats, Any], nn.Module]  # (statistics, coding options) -> site population


def convert_sites(model: nn.Module, coding: str, options: Any, calibration: Any, site: SiteFactory) -> CodedNetwork:
    """A copy of ``model`` (same class) with every site coded by ``site(stats, options)``."""
    if calibration is None:
        raise ValueError(f"{coding}: each site's scale is measured on data: pass calibration=<a few batches of the "
                         "model's inputs> (a tensor, a dict of keyword arguments, or an iterable of them)")
    net = coded_copy(model, coding, options.timesteps, options.products)
    sampler, channels, aliases, order = calibrate(net, calibration, options.calibration_batch_size)
    measured = _stats(sampler, options.percentile)
    measured.update({name: dataclasses.replace(measured[first], name=name) for name, first in aliases.items()
                     if first in measured})
    stats = {name: measured[name] for name in order if name in measured}
    for name, first in aliases.items():
        if first in channels.maxima:
            channels.maxima[name], channels.rows[name] = channels.maxima[first], channels.rows[first]
            channels.axis[name] = channels.axis[first]
    if not stats:
        raise ValueError(f"{coding}: the model ran no weight-bearing operation on an activation (Linear, convolution, "
                         "x @ W) during calibration: there is nothing to code")
    # channel scales at weight sites; the operands of activation products have no channel statistics
    net.set_sites({name: _channel_site(s, channels, options, site) if options.channel_scales and name in channels.maxima
                   else site(s, options) for name, s in stats.items()})
    net.coding_options = options
    net.info = {"front": "sites", "products": options.products, "percentile": options.percentile,
                "channel_scales": options.channel_scales, "channel_split": options.channel_split,
                "split_headroom": options.split_headroom,
                "sites": {name: {"span": s.span, "signed": s.signed, **({"shares": aliases[name]} if name in aliases
                                                                        else {})} for name, s in stats.items()}}
    return net


def equivalent_sites(net: CodedNetwork) -> CodedNetwork:
    """The QNN a site-coded network equals: the same class, each site's population replaced by the
    plain-PyTorch quantizer it states (``population.equivalent(T)``)."""
    eq = coded_copy(net, net.coding, net.timesteps, net.coded_products)
    eq.set_sites({name: cast(Any, m).equivalent(net.timesteps) for name, m in net.sites().items()})
    eq.quantized = True
    eq.info = dict(net.info)
    return eq
