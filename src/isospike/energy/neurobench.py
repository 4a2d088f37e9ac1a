"""NeuroBench's view of a converted network, made to agree with isospike's counts.

NeuroBench counts a synaptic operation as an accumulate (AC) only when the layer's input holds
nothing but 0 and 1; a rate-coded population whose spikes carry its threshold theta != 1 looks
like an analog activation to it, so its work is counted as multiply-accumulates (MACs), while
isospike counts accumulates (a spike is one event, whatever value it carries). The
:func:`neurobench_model` copy folds each population's spike value into the weights its spikes
drive (w * theta, the same function; NIR export does the same) so the spikes are 0/1, and
registers isospike's neuron populations as NeuroBench activation modules, so its
``SynapticOperations`` split and ``ActivationSparsity`` read the network as isospike does.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


def _binary_spikes(snn: Any) -> Any:
    """A copy of a rate ``SpikingNetwork`` whose populations emit 1 per spike, each spike value
    folded into the weights of the synapses it feeds (per input channel)."""
    from isospike.conversion.assemble import _shape_only, source_population
    from isospike.conversion.timefold import CountingSynapse, TimeFoldedNeuron

    net = copy.deepcopy(snn)
    gm = net.graph_module
    populations = {name for name, m in gm.named_modules() if isinstance(m, TimeFoldedNeuron)}
    fed: dict[str, list[str]] = {p: [] for p in populations}
    for node in gm.graph.nodes:
        if _shape_only(gm, node):
            continue  # reshapes pass the spikes on: their consumers are checked
        for src in node.all_input_nodes:
            pop = source_population(gm, src, populations)
            if pop is None:
                continue
            target = gm.get_submodule(str(node.target)) if node.op == "call_module" else None
            if not isinstance(target, CountingSynapse) or not hasattr(target.layer, "weight"):
                raise ValueError(f"the spikes of population '{pop}' also reach '{node.name}', which is not a synapse "
                                 "layer: folding its spike value into weights would change that operation; NeuroBench "
                                 "would count this network's spikes as analog values")
            fed[pop].append(str(node.target))
    for pop, synapses in fed.items():
        neuron = gm.get_submodule(pop).neuron
        value = neuron.spike_value.detach().clone()
        for path in synapses:
            layer = gm.get_submodule(path).layer
            w = layer.weight
            scale = value.reshape(-1)
            if scale.numel() > 1 and w.dim() == 2 and w.shape[1] != scale.numel():  # flattened maps
                scale = scale.repeat_interleave(w.shape[1] // scale.numel())
            shape = [1] * w.dim()
            shape[1] = -1
            with torch.no_grad():
                w.mul_(scale.reshape(shape) if scale.numel() > 1 else scale.reshape(()))
        neuron.spike_value.fill_(1.0)
    return net


def neurobench_model(snn: nn.Module) -> Any:
    """A ``neurobench.models.TorchModel`` of ``snn`` (a network from :func:`isospike.convert`)
    whose synaptic-operation split (MACs vs ACs) and activation sparsity agree with isospike's
    counts: spikes made binary (see the module docstring) and the populations registered."""
    from neurobench.models import TorchModel

    from isospike.conversion.network import SpikingNetwork
    from isospike.conversion.timefold import SpikingPopulation

    if not isinstance(snn, SpikingNetwork):
        raise TypeError(f"neurobench_model takes a network from isospike.convert, got {type(snn).__name__}")
    net = _binary_spikes(snn) if snn.coding == "rate" else copy.deepcopy(snn)
    model = TorchModel(net)
    model.add_activation_module(SpikingPopulation)
    return model


__all__ = ["neurobench_model"]
