"""What a network did, per layer and per inference, read from the counts its layers report.

Spiking networks report their own counts (spikes, neuron updates, synaptic operations,
arriving events, gate evaluations); nothing here re-derives them from shapes. Plain ANNs are
counted with forward hooks on their Linear/Conv/pooling layers (NeuroBench conventions:
effective operations = nonzero input x nonzero weight; dense = all). The energy package reads
models by duck typing and imports neither the converters nor the training code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

from isospike.opcount import connection_count, dense_connections

COUNTED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
                  nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


class _CountingNetwork(Protocol):
    """A converted spiking network as the energy package reads it (duck typed)."""

    def reset_counts(self) -> None: ...

    def layer_stats(self) -> Mapping[str, Any]: ...


class _GateCountingNetwork(Protocol):
    """An exact gate network as the energy package reads it (duck typed)."""

    def layer_counts(self) -> Mapping[str, Any]: ...


@dataclass
class LayerActivity:
    """One layer's activity per inference (per sample, all time steps).

    kind: "ann" (dense layer of a non-spiking network), "mac" (synapses driven by analog
    values), "ac" (synapses driven by spikes), "neuron" (a spiking population), "gates" (an
    exact threshold-gate circuit layer). Optoelectronic synapse reads are ``device_reads``.
    macs / acs: effective operations; dense_ops: every input x every weight (the ANN's MACs for
    this layer over all steps); input_events: nonzero inputs arriving; outputs: values produced
    (all steps); neuron_updates, spikes, neurons (population size), parameters (weights stored),
    gate_evaluations, device_reads; timesteps; spikes_by_step (per step, per sample).
    """

    name: str
    kind: str
    timesteps: int = 1
    macs: float = 0.0
    acs: float = 0.0
    dense_ops: float = 0.0
    input_events: float = 0.0
    outputs: float = 0.0
    neuron_updates: float = 0.0
    spikes: float = 0.0
    neurons: int = 0
    parameters: int = 0
    gate_evaluations: float = 0.0
    device_reads: float = 0.0
    spikes_by_step: list[float] = field(default_factory=list)


@dataclass
class NetworkActivity:
    """Per-layer activity of one network on one batch, normalized per inference."""

    source: str  # "spiking", "exact", "ann"
    samples: int
    layers: list[LayerActivity]
    timesteps: int = 1

    def totals(self) -> LayerActivity:
        t = LayerActivity("total", "total", self.timesteps)
        for layer in self.layers:
            for name in ("macs", "acs", "dense_ops", "input_events", "outputs", "neuron_updates", "spikes",
                         "gate_evaluations", "device_reads"):
                setattr(t, name, getattr(t, name) + getattr(layer, name))
            t.neurons += layer.neurons
            t.parameters += layer.parameters
        return t


def _batch_size(inputs: Any) -> int:
    n = _leading_size(inputs)
    if n == 0:
        raise ValueError("energy per inference needs at least one input sample; the batch is empty")
    return n


def _leading_size(inputs: Any) -> int:
    if isinstance(inputs, Tensor):
        return int(inputs.shape[0]) if inputs.dim() else 1
    if isinstance(inputs, dict):
        first = next(v for v in inputs.values() if isinstance(v, Tensor))
        return int(first.shape[0])
    if isinstance(inputs, (tuple, list)) and inputs and isinstance(inputs[0], Tensor):
        return int(inputs[0].shape[0])
    raise TypeError("inputs must be a tensor, a tuple of tensors or a dict of tensors (batch first)")


def _call(model: nn.Module, inputs: Any) -> Any:
    with torch.no_grad():
        if isinstance(inputs, dict):
            return model(**inputs)
        if isinstance(inputs, (tuple, list)):
            return model(*inputs)
        return model(inputs)


def spiking_activity(snn: nn.Module, inputs: Tensor) -> NetworkActivity:
    """Run a network returned by ``isospike.convert`` and read its per-layer counts."""
    from isospike.conversion.network import SpikingNetwork

    if isinstance(snn, SpikingNetwork) and not isinstance(inputs, Tensor):
        raise TypeError(f"a converted spiking network takes one input tensor [batch, ...], got {type(inputs).__name__}; "
                        "concatenate the batches (torch.cat) first")
    counted = cast(_CountingNetwork, snn)  # converted networks report their counts (see collect)
    counted.reset_counts()
    counting_on = getattr(snn, "counting_on", None)  # SpikingNetworks can switch counts off; others always count
    with counting_on() if counting_on is not None else contextlib.nullcontext():
        _call(snn, inputs)
    n = _batch_size(inputs)
    layers = []
    for name, s in counted.layer_stats().items():
        if s.kind == "neuron":
            layers.append(LayerActivity(name, "neuron", s.timesteps, neuron_updates=s.neuron_updates / n,
                                        spikes=s.spikes / n, neurons=s.neurons,
                                        spikes_by_step=[v / n for v in s.by_step]))
        else:
            steps = s.timesteps
            act = LayerActivity(name, s.kind, steps, dense_ops=s.dense_ops / n, input_events=s.input_events / n,
                                outputs=s.outputs * steps, parameters=s.parameters)
            if s.kind == "ac":
                act.acs = s.synaptic_ops / n
            else:
                act.macs = s.synaptic_ops / n
            for extra in ("device_reads",):
                if hasattr(s, extra):
                    setattr(act, extra, getattr(s, extra) / n)
            layers.append(act)
    return NetworkActivity("spiking", n, layers, getattr(snn, "timesteps", 1))


def exact_activity(net: nn.Module, inputs: Any) -> NetworkActivity:
    """Run an ``isospike.exact.convert`` network and read each layer's gate counts."""
    if not getattr(net, "counting_gates", False):
        raise ValueError("this exact network does not count its gates (a reference from isospike.exact.reference / "
                         "isospike.equivalent runs plain float32 operations, or convert(..., count=False)): estimate "
                         "isospike.exact.convert(model) for the gate circuits, or the original model as an ANN")
    _call(net, inputs)
    n = _batch_size(inputs)
    layers = []
    for name, c in cast(_GateCountingNetwork, net).layer_counts().items():  # exact networks count their gates
        layers.append(LayerActivity(name, "gates", 1, acs=c.synaptic_events / n, gate_evaluations=c.gate_evaluations / n,
                                    spikes=c.spikes / n, outputs=c.lanes / n))
    return NetworkActivity("exact", n, layers, 1)


def ann_activity(model: nn.Module, inputs: Any) -> NetworkActivity:
    """Count a non-spiking network's Linear/Conv/average-pooling layers with forward hooks."""
    records: dict[str, LayerActivity] = {}

    def hook(name: str):
        def fn(m: nn.Module, args: tuple, y: Tensor) -> None:
            x = args[0]
            active = (x != 0).to(torch.float64)
            eff = float(connection_count(m, active).sum())
            dense = dense_connections(m, x) * x.shape[0]
            rec = records.setdefault(name, LayerActivity(name, "ann", 1))
            rec.macs += eff
            rec.dense_ops += dense
            rec.input_events += float(active.sum())
            rec.outputs += y.numel()
            w = getattr(m, "weight", None)
            rec.parameters = int(w.numel()) if isinstance(w, Tensor) else 0
        return fn

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules() if isinstance(m, COUNTED_LAYERS)]
    try:
        _call(model, inputs)
    except (IndexError, RuntimeError) as exc:
        if not records:
            raise
        raise ValueError(f"counting the ANN's operations failed ({exc}); pass a batch [N, ...] of inputs") from exc
    finally:
        for h in handles:
            h.remove()
    _warn_uncounted(model)
    n = _batch_size(inputs)
    layers = []
    for rec in records.values():
        for k in ("macs", "dense_ops", "input_events", "outputs"):
            setattr(rec, k, getattr(rec, k) / n)
        layers.append(rec)
    return NetworkActivity("ann", n, layers, 1)


# modules whose own work is elementwise or a lookup: leaving them out of the ANN count is the
# usual MAC-count convention
_ELEMENTWISE = (nn.Embedding, nn.EmbeddingBag, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._NormBase)


def _warn_uncounted(model: nn.Module) -> None:
    """Warn about modules holding weights whose operations the ANN count cannot see."""
    import warnings

    missed = [f"{type(m).__name__} at '{name}'" for name, m in model.named_modules()
              if not isinstance(m, COUNTED_LAYERS + _ELEMENTWISE) and any(True for _ in m.parameters(recurse=False))]
    if missed:
        warnings.warn(f"energy: the operations of {', '.join(missed[:5])}{' and more' if len(missed) > 5 else ''} are not "
                      "counted (the ANN count sees Linear, Conv and average-pooling modules; functional matmuls are "
                      "not seen either): the estimate leaves them out", stacklevel=4)


def collect(model: nn.Module, inputs: Any) -> NetworkActivity:
    """Activity of any supported network: converted SNNs report their own counts
    (``layer_stats``), exact gate networks theirs (``layer_counts``); anything else is counted
    as an ANN."""
    if hasattr(model, "layer_stats") and hasattr(model, "reset_counts"):
        return spiking_activity(model, inputs)
    if hasattr(model, "layer_counts"):
        return exact_activity(model, inputs)
    if isinstance(model, nn.Module):
        return ann_activity(model, inputs)
    raise TypeError(f"cannot estimate the energy of {type(model).__name__}: pass an nn.Module")


def ann_equivalent(activity: NetworkActivity) -> NetworkActivity:
    """The ANN a spiking network was converted from, as activity: each synapse layer's dense
    operations for one time step, activations produced once."""
    layers = []
    for layer in activity.layers:
        if layer.kind in ("ac", "mac"):
            steps = max(layer.timesteps, 1)
            layers.append(LayerActivity(layer.name, "ann", 1, macs=layer.dense_ops / steps, dense_ops=layer.dense_ops / steps,
                                        outputs=layer.outputs / steps, parameters=layer.parameters))
    return NetworkActivity("ann", activity.samples, layers, 1)
