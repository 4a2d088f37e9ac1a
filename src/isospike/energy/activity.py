"""What a network did, per layer and per inference, read from the counts its layers report.

Networks that count their own activity (:class:`isospike.activity.ActivityReporter`: converted
spiking networks, the TTFS transformer, exact gate networks) report one record type,
:class:`isospike.activity.LayerActivity`; nothing here re-derives their counts from shapes. Plain
ANNs are counted into the same record with forward hooks on their Linear/Conv/pooling layers
(NeuroBench conventions: effective operations = nonzero input x nonzero weight; dense = all). The
energy package imports neither the converters nor the training code.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from isospike.activity import ActivityReporter, LayerActivity
from isospike.opcount import connection_count, dense_connections

COUNTED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
                  nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)

_COUNTS = ("macs", "acs", "synaptic_ops", "dense_ops", "input_events", "outputs", "neuron_updates", "spikes",
           "gate_evaluations", "device_reads")


@dataclass
class NetworkActivity:
    """Per-layer activity of one network on one batch of ``samples``: each row is
    :meth:`LayerActivity.per_inference` (counts per sample, all time steps)."""

    source: str  # "spiking", "exact", "ann"
    samples: int
    layers: list[LayerActivity]
    timesteps: int = 1

    def totals(self) -> dict[str, float]:
        """Each count summed over the layers (macs and acs included), per inference."""
        return {k: sum(getattr(layer, k) for layer in self.layers) for k in _COUNTS}


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


def _call(model: Any, inputs: Any) -> Any:
    with torch.no_grad():
        if isinstance(inputs, dict):
            return model(**inputs)
        if isinstance(inputs, (tuple, list)):
            return model(*inputs)
        return model(inputs)


def reported_activity(net: ActivityReporter, inputs: Any) -> NetworkActivity:
    """Run a network that counts its own activity (converted spiking networks, the TTFS
    transformer, exact gate networks) from fresh counters and read its rows per inference."""
    from isospike.conversion.network import SpikingNetwork

    counting: contextlib.AbstractContextManager = contextlib.nullcontext()
    if isinstance(net, SpikingNetwork):
        if not isinstance(inputs, Tensor):
            raise TypeError(f"a converted spiking network takes one input tensor [batch, ...], got "
                            f"{type(inputs).__name__}; concatenate the batches (torch.cat) first")
        counting = net.counting_on()  # its synapse counts may have been switched off
    net.reset_counts()
    net.layer_stats()  # a network that cannot count (an exact reference) says so here, before a costly run
    with counting:
        _call(net, inputs)
    n = _batch_size(inputs)
    layers = [row.per_inference(n) for row in net.layer_stats().values()]
    source = "exact" if any(row.kind == "gates" for row in layers) else "spiking"
    return NetworkActivity(source, n, layers, max((row.timesteps for row in layers), default=1))


def ann_activity(model: nn.Module, inputs: Any) -> NetworkActivity:
    """Count a non-spiking network's Linear/Conv/average-pooling layers with forward hooks."""
    records: dict[str, LayerActivity] = {}

    def hook(name: str):
        def fn(m: nn.Module, args: tuple, y: Tensor) -> None:
            x = args[0]
            active = (x != 0).to(torch.float64)
            eff = float(connection_count(m, active).sum())
            dense = dense_connections(m, x) * x.shape[0]
            rec = records.setdefault(name, LayerActivity(name, "ann"))
            rec.synaptic_ops += eff
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
    return NetworkActivity("ann", n, [rec.per_inference(n) for rec in records.values()], 1)


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
    """Activity of any supported network: networks that count their own activity
    (:class:`~isospike.activity.ActivityReporter`: converted SNNs, the TTFS transformer, exact
    gate networks) report it; anything else is counted as an ANN."""
    if isinstance(model, ActivityReporter):
        return reported_activity(model, inputs)
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
            layers.append(LayerActivity(layer.name, "ann", synaptic_ops=layer.dense_ops / steps, samples=1,
                                        dense_ops=layer.dense_ops / steps, outputs=layer.outputs / steps,
                                        parameters=layer.parameters))
    return NetworkActivity("ann", activity.samples, layers, 1)
