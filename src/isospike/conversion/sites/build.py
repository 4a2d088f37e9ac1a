"""Converting any eager model through the site front end: copy it, run the calibration data
through the copy while sampling every site's activation, and place at each site the population
its coding builds from those statistics (:attr:`isospike.conversion.coding.Coding.site`).

Every coding with time defines its site population once, in its own module; this module knows
none of them. The statistics of a site (:class:`SiteStats`) are its activation's span (a
percentile of |x|), whether it takes negative values (signed sites use two channels), and a
bounded random sample of its values (M-TTFS reads its most frequent level from it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn

from isospike.batches import model_calls
from isospike.conversion.calibration import ActivationSampler
from isospike.conversion.sites.network import CodedNetwork, coded_copy

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


def calibrate(net: CodedNetwork, calibration: Any, batch_size: int) -> ActivationSampler:
    """Run ``calibration`` through ``net`` (no grad) sampling every site's activation."""
    sampler = ActivationSampler({}, max_samples=SAMPLES_PER_SITE * 8)
    net._coded_record = lambda name, _kind, x: sampler.add(name, x)
    try:
        with torch.no_grad():
            for args, kwargs in model_calls(calibration, batch_size):
                net(*args, **kwargs)
    finally:
        net._coded_record = None
    return sampler


SiteFactory = Callable[[SiteStats, Any], nn.Module]  # (statistics, coding options) -> site population


def convert_sites(model: nn.Module, coding: str, options: Any, calibration: Any, site: SiteFactory) -> CodedNetwork:
    """A copy of ``model`` (same class) with every site coded by ``site(stats, options)``."""
    if calibration is None:
        raise ValueError(f"{coding}: each site's scale is measured on data: pass calibration=<a few batches of the "
                         "model's inputs> (a tensor, a dict of keyword arguments, or an iterable of them)")
    net = coded_copy(model, coding, options.timesteps, options.products)
    sampler = calibrate(net, calibration, options.calibration_batch_size)
    stats = _stats(sampler, options.percentile)
    if not stats:
        raise ValueError(f"{coding}: the model ran no weight-bearing operation on an activation (Linear, convolution, "
                         "x @ W) during calibration: there is nothing to code")
    net.set_sites({name: site(s, options) for name, s in stats.items()})
    net.coding_options = options
    net.info = {"front": "sites", "products": options.products, "percentile": options.percentile,
                "sites": {name: {"span": s.span, "signed": s.signed} for name, s in stats.items()}}
    return net


def equivalent_sites(net: CodedNetwork) -> CodedNetwork:
    """The QNN a site-coded network equals: the same class, each site's population replaced by the
    plain-PyTorch quantizer it states (``population.equivalent(T)``)."""
    eq = coded_copy(net, net.coding, net.timesteps, net.coded_products)
    eq.set_sites({name: cast(Any, m).equivalent(net.timesteps) for name, m in net.sites().items()})
    eq.quantized = True
    eq.info = dict(net.info)
    return eq
