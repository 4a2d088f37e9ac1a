"""Rate networks whose spikes are 0/1: each population's spike value moved into the weights it
drives (the form NeuroBench and standard NIR readers take spikes in)."""

from __future__ import annotations

import copy
from typing import Any

import torch

from isospike.conversion.assemble import shape_only, source_population
from isospike.conversion.timefold import CountingSynapse, TimeFoldedNeuron


def unit_spike_copy(snn: Any) -> Any:
    """A copy of a rate ``SpikingNetwork`` whose IF populations emit 1 per spike, each population's
    spike value folded into the weights of the synapses it feeds (per input channel): the same
    function, with 0/1 spike tensors (what NeuroBench reads as spikes). Raises ValueError when a
    population's spikes also reach a non-synaptic operation (folding would change it)."""
    net = copy.deepcopy(snn)
    gm = net.graph_module
    populations = {name for name, m in gm.named_modules() if isinstance(m, TimeFoldedNeuron)}
    fed: dict[str, list[str]] = {p: [] for p in populations}
    for node in gm.graph.nodes:
        if shape_only(gm, node):
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
