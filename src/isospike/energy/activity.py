"""What a network did, per layer and per inference, as :func:`isospike.counting` observes it.

Spiking networks (converted SNNs, the TTFS transformer, exact gate networks) say what their layers
did in one record type, :class:`isospike.activity.LayerActivity`; nothing here re-derives their
counts from shapes. Plain ANNs are counted into the same record by the same observer (NeuroBench
conventions: effective operations = nonzero input x nonzero weight; dense = all). The energy
package imports neither the converters nor the training code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from isospike.activity import LayerActivity
from isospike.batches import model_calls, several_batches
from isospike.observe import ANN_LAYERS, counting

COUNTED_LAYERS = ANN_LAYERS  # the layers of a plain ANN whose operations are counted

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
    tokens: int | None = None  # token positions the samples held (decoders, encoders); None: not token inputs
    labels: dict[str, str] = field(default_factory=dict)  # layer path -> "path (what it is)", for reports

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
        first = next((v for v in inputs.values() if isinstance(v, Tensor)), None)
        if first is not None:
            return int(first.shape[0]) if first.dim() else 1
    if isinstance(inputs, (tuple, list)) and inputs and isinstance(inputs[0], Tensor):
        return int(inputs[0].shape[0]) if inputs[0].dim() else 1
    raise TypeError("inputs must be a tensor, a tuple of tensors or a dict of tensors (batch first), or a DataLoader / "
                    "iterable of such batches")


def _as_call(inputs: Any) -> tuple[tuple, dict]:
    """(args, kwargs) of one batch of inputs: a dict is keyword arguments, a tuple positional
    ones, anything else the one input."""
    if isinstance(inputs, dict):
        return (), inputs
    if isinstance(inputs, tuple):
        return inputs, {}
    return (inputs,), {}


def _tokens(args: tuple, kwargs: dict) -> int | None:
    """Token positions of one call of a language model: the attention mask's ones, else the
    token ids' count; None when the call does not take token ids."""
    mask, ids = kwargs.get("attention_mask"), kwargs.get("input_ids")
    if ids is None and args and isinstance(args[0], Tensor) and args[0].dim() >= 2 and not args[0].is_floating_point() \
            and args[0].dtype != torch.bool:
        ids = args[0]
    if not isinstance(ids, Tensor):
        return None
    if isinstance(mask, Tensor) and mask.shape == ids.shape:
        return int(mask.bool().sum())
    return int(ids.numel())


def _calls(inputs: Any) -> Iterator[tuple[tuple, dict, int]]:
    """(args, kwargs, samples) of each call ``inputs`` asks for: one batch, or each batch of a
    DataLoader / LabelledData / other iterable (:func:`isospike.batches.model_calls`)."""
    if not several_batches(inputs):
        n = _batch_size(inputs)
        yield (*_as_call(inputs), n)
        return
    for args, kwargs in model_calls(inputs, 1 << 62):
        yield args, kwargs, _batch_size(kwargs if kwargs or not args else args)


def collect(model: nn.Module, inputs: Any) -> NetworkActivity:
    """Activity of any network on ``inputs``, per inference, as :func:`isospike.counting`
    observes it: converted SNNs, the TTFS transformer and exact gate networks say what their
    layers did; any other module is counted as an ANN (its Linear, convolution and
    average-pooling layers). ``model`` may be a ``torch.compile`` wrapper.

    ``inputs``: one batch (a tensor, a dict of keyword arguments, a tuple of positional
    arguments), or a list, DataLoader, LabelledData or other iterable of batches (``(x, y)``
    tuples give their ``x``), whose counts are summed over all their samples."""
    if not isinstance(getattr(model, "_orig_mod", model), nn.Module):
        raise TypeError(f"cannot estimate the energy of {type(model).__name__}: pass an nn.Module")
    n = 0
    tokens: int | None = 0
    with counting(model) as c:
        try:
            with torch.no_grad():
                for args, kwargs, samples in _calls(inputs):
                    n += samples
                    t = _tokens(args, kwargs)
                    tokens = None if t is None or tokens is None else tokens + t
                    model(*args, **kwargs)
        except (IndexError, RuntimeError) as exc:
            if not c.layers or any(row.kind != "ann" for row in c.layers.values()):
                raise
            raise ValueError(f"counting the ANN's operations failed ({exc}); pass a batch [N, ...] of inputs") from exc
    layers = [row.per_inference(n) for row in c.layers.values()]
    if any(row.kind == "gates" for row in layers):
        source = "exact"
    elif any(row.kind != "ann" for row in layers):
        source = "spiking"
    else:
        source = "ann"
        _warn_uncounted(getattr(model, "_orig_mod", model))
    from isospike.layer_names import layer_labels

    return NetworkActivity(source, n, layers, max((row.timesteps for row in layers), default=1), tokens or None,
                           layer_labels(model, [row.name for row in layers]))


def ann_activity(model: nn.Module, inputs: Any) -> NetworkActivity:
    """Count a non-spiking network's Linear/Conv/average-pooling layers (see :func:`collect`)."""
    return collect(model, inputs)


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
    return NetworkActivity("ann", activity.samples, layers, 1, activity.tokens)
