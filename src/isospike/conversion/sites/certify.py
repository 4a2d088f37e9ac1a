"""A site-coded network's certificate: every site checked against its quantizer on the same data.

The network and its equivalent (:func:`~isospike.conversion.sites.build.equivalent_sites`) run on
the same inputs; each site's decoded activation in the spiking network is compared with its
quantizer's output in the QNN, call by call. As every site of a QNN-equal coding equals its
quantizer, the two networks compute the same values everywhere: one row per site
("qnn-equivalent", max |diff|, violations), and the difference of the outputs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten

from isospike.batches import model_calls
from isospike.conversion.sites.build import equivalent_sites
from isospike.conversion.sites.network import CodedNetwork
from isospike.guarantees import QNN_EQUIVALENT, Certificate, layer_check
from isospike.observe import leading_samples


def _site_outputs(net: CodedNetwork, args: tuple, kwargs: dict) -> tuple[dict[str, list[Tensor]], Any]:
    seen: dict[str, list[Tensor]] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, name=name: seen.setdefault(name, []).append(o.detach()))
             for name, m in net.sites().items()]
    try:
        with torch.no_grad():
            out = net(*args, **kwargs)
    finally:
        for h in hooks:
            h.remove()
    return seen, out


def verify_sites(net: CodedNetwork, x: Any, tolerance: float = 0.0) -> Certificate:
    """Each site of ``net`` against its quantizer on inputs ``x`` (a tensor, a dict of keyword
    arguments, or an iterable of them); ``tolerance``: absolute slack (0: exact)."""
    eq = equivalent_sites(net)
    diffs: dict[str, list[Tensor]] = {}
    samples, worst = 0, 0.0
    for args, kwargs in model_calls(x, batch_size=1 << 30):
        ours, out = _site_outputs(net, args, kwargs)
        theirs, ref = _site_outputs(eq, args, kwargs)
        samples += leading_samples((args, kwargs)) or 1
        for name in ours:
            for a, b in zip(ours[name], theirs.get(name, [])):
                diffs.setdefault(name, []).append((a - b).abs().flatten())
        for a, b in zip(tree_flatten(out)[0], tree_flatten(ref)[0]):
            if isinstance(a, Tensor) and a.is_floating_point() and a.numel():
                worst = max(worst, float((a - b).abs().max()))
    cert = Certificate(net.coding, samples)
    for name in net.sites():
        if name in diffs:
            cert.layers.append(layer_check(name, QNN_EQUIVALENT, torch.cat(diffs[name]), tolerance))
    cert.output_max_abs_diff = worst
    return cert
