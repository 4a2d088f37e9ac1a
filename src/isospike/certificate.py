"""Equivalence certificates: which guarantee each layer of a converted network carries, and how
well it holds on given inputs.

    cert = isospike.verify(snn, x)
    cert.holds            # every layer's guarantee held on x
    print(cert.table())   # per layer: guarantee, measured max |diff| (or ULP), bound, holds

Guarantees:
* "bit-exact" (exact networks): every gate-circuit layer's output equals the pinned float32
  reference bit for bit (max ULP distance 0).
* "qnn-equivalent" (ttfs, mttfs, sigma-delta; the first rate layer under direct coding): each
  population's decoded output equals the equivalent network's quantizer output exactly when both
  run on the same data (the networks are compared end to end, layer by layer).
* "bounded-error" (rate layers fed by spikes): an IF neuron with reset by subtraction that ends
  with its membrane in [0, theta) emits a rate r within max(v_init, theta - v_init) / T of the
  clipped mean of its input current: |r - clip(mean current, 0, theta)| <= bound. Checked on the
  SNN itself for every neuron; a neuron whose membrane ends outside that range (late negative
  input) breaks it and is counted.
* "none (reset to zero or leak)" (spike-fed layers of neurons that reset to zero or leak, as NIR
  files from other tools hold): the residual is lost at each spike, so no bound is claimed; such
  a layer cannot fail. Its first layer (constant input) is still qnn-equivalent to its own
  quantizer (the neuron's step run on the constant current).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from isospike.batches import model_calls, several_batches
from isospike.conversion.equivalent import equivalent
from isospike.conversion.exact import verify_bit_exact
from isospike.conversion.network import SpikingNetwork
from isospike.conversion.sites.certify import verify_sites
from isospike.conversion.sites.network import CodedNetwork
from isospike.guarantees import MEASURED_ONLY, Certificate, LayerCertificate, merge_certificates
from isospike.neurons.populations import SpikingPopulation

__all__ = ["MEASURED_ONLY", "Certificate", "LayerCertificate", "verify", "verify_bit_exact"]


def _capture(model: nn.Module, types: tuple[type[nn.Module], ...], x: Tensor, root: nn.Module | None = None
             ) -> dict[str, tuple[Tensor, Tensor]]:
    """Run ``model(x)``; (input, output) of every module of ``types`` in ``root`` (default: model),
    by its path in ``root``, and ``"__output__"``."""
    got: dict[str, tuple[Tensor, Tensor]] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=name: got.__setitem__(n, (i[0].detach(), o.detach())))
             for name, m in (root or model).named_modules() if isinstance(m, types)]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in hooks:
            h.remove()
    got["__output__"] = (x, out)
    return got


def verify(snn: nn.Module, x: Any, tolerance: float = 0.0) -> Certificate:
    """Check each layer's guarantee on inputs ``x`` (see the module docstring). ``tolerance``: an
    absolute slack added to exact comparisons (0: exact). ``snn`` may be a ``torch.compile``
    wrapper (its module is checked).

    ``x``: what the network takes -- a tensor, a dict of keyword arguments (networks coded at
    their sites, exact networks), a tuple of positional arguments (exact networks) -- or a
    DataLoader, a list or any iterable of such batches (``(x, y)`` tuples give their ``x``): each
    batch is checked and the rows of a layer combined (:func:`~isospike.guarantees.merge_certificates`)."""
    from isospike.layer_names import layer_labels

    cert = _verify(snn, x, tolerance)
    cert.labels = layer_labels(getattr(snn, "_orig_mod", snn), [c.layer for c in cert.layers])
    return cert


def _verify(snn: nn.Module, x: Any, tolerance: float) -> Certificate:
    from isospike.conversion.coding import coding_of

    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0 (absolute slack), got {tolerance!r}")
    _check_not_empty(x)
    snn = getattr(snn, "_orig_mod", snn)  # a torch.compile wrapper: its module is checked layer by layer, eagerly
    coding = coding_of(snn, "isospike.verify")
    graph = isinstance(snn, SpikingNetwork)
    if not isinstance(snn, CodedNetwork) and (several_batches(x) or (graph and not isinstance(x, Tensor))):
        return merge_certificates([_verify(snn, one, tolerance) for one in _call_inputs(x, graph)])
    if coding.verify is not None:
        cert = coding.verify(snn, x, float(tolerance))
        assert isinstance(cert, Certificate)  # what a coding's verify returns
        return cert
    if isinstance(snn, CodedNetwork):
        return verify_sites(snn, x, float(tolerance))
    if not isinstance(snn, SpikingNetwork):
        raise TypeError(f"isospike.verify: the {coding.name!r} coding has no checker for a {type(snn).__name__}")
    eq = equivalent(snn)
    populations = {name: m for name, m in snn.graph_module.named_modules() if isinstance(m, SpikingPopulation)}
    snn_layers = _capture(snn, (SpikingPopulation,), x, root=snn.graph_module)
    eq_modules = dict(eq.named_modules())
    eq_layers = _capture(eq, tuple({type(eq_modules[n]) for n in populations if n in eq_modules}), x)
    cert = Certificate(snn.coding, int(x.shape[0]))
    for name, m in populations.items():
        if name not in snn_layers or name not in eq_layers:
            continue
        current, output = snn_layers[name]
        cert.layers.append(m.certify(name, current, output, eq_layers[name][1], snn.timesteps, snn.fold_time, tolerance))
    y_snn, y_eq = snn_layers["__output__"][1], eq_layers["__output__"][1]
    cert.output_max_abs_diff = float((y_snn - y_eq).abs().max()) if torch.is_tensor(y_snn) and y_snn.numel() else 0.0
    return cert


def _call_inputs(x: Any, graph: bool) -> Iterator[Any]:
    """Each batch of ``x`` in the form one call of :func:`verify` takes (a graph network's: a tensor)."""
    for args, kwargs in model_calls(x, 1 << 62):
        if graph and (kwargs or len(args) != 1):
            raise TypeError(f"a network converted through its graph takes one input tensor per batch, got keyword "
                            f"arguments {sorted(kwargs)[:4]}; pass tensors, (x, y) pairs or a DataLoader of them")
        yield kwargs if kwargs or not args else args[0]  # model_calls yields one tensor or one dict of keyword arguments


def _check_not_empty(x: Any) -> None:
    """Refuse a batch without samples: no layer would be compared, and "every guarantee holds"
    would be said of nothing."""
    values = list(x.values()) if isinstance(x, dict) else list(x) if isinstance(x, (tuple, list)) else [x]
    first = next((v for v in values if isinstance(v, Tensor)), None)
    if first is not None and first.dim() and first.shape[0] == 0:
        raise ValueError(f"isospike.verify needs at least one sample, got an input of shape {tuple(first.shape)}: a "
                         "certificate over no samples would say the guarantees hold of nothing; pass test inputs")
