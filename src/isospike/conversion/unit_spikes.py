"""Rate networks whose spikes are 0/1: each population's spike value moved into the weights it
drives (the form NeuroBench and standard NIR readers take spikes in)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import fx, nn

from isospike.conversion.assemble import shape_only
from isospike.conversion.timefold import CountingSynapse, ElementwiseScale, TimeFoldedNeuron

# synapse layers that average their input channel by channel: a spike value passes through them
_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


def _passes_on(gm: fx.GraphModule, node: fx.Node) -> bool:
    """``node`` reshapes or averages its input: a spike value it carries in, it carries out."""
    if shape_only(gm, node):
        return True
    if node.op != "call_module":
        return False
    m = gm.get_submodule(str(node.target))
    return isinstance(m, CountingSynapse) and isinstance(m.layer, _POOLS)


def _fold(layer: nn.Module, value: torch.Tensor) -> None:
    """``layer``'s weights times ``value`` per input channel (a flattened map's channels repeated)."""
    w = layer.weight
    assert isinstance(w, torch.Tensor)  # a synapse layer with weights (checked by the caller)
    scale = value.reshape(-1)
    if scale.numel() > 1 and w.dim() == 2 and w.shape[1] != scale.numel():  # flattened maps
        scale = scale.repeat_interleave(w.shape[1] // scale.numel())
    shape = [1] * w.dim()
    shape[1] = -1
    with torch.no_grad():
        w.mul_(scale.reshape(shape) if scale.numel() > 1 else scale.reshape(()))


def _scale_module(value: torch.Tensor, node: fx.Node) -> ElementwiseScale:
    """ElementwiseScale multiplying a time-folded tensor ``[T * batch, C, ...]`` by ``value``
    (one number, or one per channel)."""
    if value.numel() == 1:
        return ElementwiseScale(value.reshape(()))
    meta = node.meta.get("tensor_meta")
    dims = len(meta.shape) if meta is not None and hasattr(meta, "shape") else 2
    return ElementwiseScale(value.reshape(-1, *([1] * max(dims - 2, 0))))


def unit_spike_copy(snn: Any) -> Any:
    """A copy of a rate ``SpikingNetwork`` whose IF populations emit 1 per spike: each
    population's spike value folded into the weights of the synapses its spikes reach (per input
    channel), through reshapes and average pooling; where they reach anything else (a residual
    sum, the output) an ``ElementwiseScale`` gives them their value back. The same function, with
    0/1 spike tensors at every weight layer (what NeuroBench reads as spikes)."""
    net = copy.deepcopy(snn)
    gm = net.graph_module
    populations = {name for name, m in gm.named_modules() if isinstance(m, TimeFoldedNeuron)}
    carried: dict[fx.Node, torch.Tensor] = {}  # node -> the spike value its 0/1 output stands for
    folded: set[str] = set()
    k = 0
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and str(node.target) in populations:
            carried[node] = gm.get_submodule(str(node.target)).neuron.spike_value.detach().clone()
            continue
        sources = [a for a in node.all_input_nodes if a in carried]
        if not sources:
            continue
        if len(sources) == 1 and node.args and node.args[0] is sources[0] and _passes_on(gm, node):
            carried[node] = carried[sources[0]]
            continue
        target = gm.get_submodule(str(node.target)) if node.op == "call_module" else None
        if (isinstance(target, CountingSynapse) and hasattr(target.layer, "weight") and len(sources) == 1
                and node.args and node.args[0] is sources[0] and str(node.target) not in folded):
            _fold(target.layer, carried[sources[0]])
            folded.add(str(node.target))
            continue
        for src in sources:  # a sum, the output...: the spikes' value given back on this edge
            name = f"unit_spike_value_{k}"
            k += 1
            gm.add_submodule(name, _scale_module(carried[src], src))
            with gm.graph.inserting_before(node):
                scaled = gm.graph.call_module(name, (src,))
            scaled.meta = dict(src.meta)
            node.replace_input_with(src, scaled)
    for pop in populations:
        gm.get_submodule(pop).neuron.spike_value.fill_(1.0)
    gm.graph.lint()
    gm.recompile()
    return net
