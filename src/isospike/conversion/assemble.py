"""Turn a checked ANN graph into a time-folded spiking graph: activations become neuron
populations, synaptic layers get counters, constant tensors are broadcast over time where
they meet time-varying ones. Coding-independent; each coding supplies its neurons."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import fx, nn

from isospike.conversion.graph import (
    calibrated_batch,
    input_nodes,
    is_tensor_node,
    keeps_samples_apart,
    module_of,
    time_varying_nodes,
)
from isospike.conversion.timefold import CountingSynapse, SpikingPopulation, TimeBroadcast, TimeFoldedNeuron
from isospike.neurons import IFNeuron

SYNAPSE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
POOL_TYPES = (
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
)
# Per-sample linear maps kept as they are (no synaptic work of their own counted).
PASSTHROUGH_TYPES = (
    nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
)
_SHAPE_ONLY_TYPES = (nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
_SHAPE_ONLY_METHODS = {"view", "reshape", "flatten", "contiguous"}


def shape_only(gm: fx.GraphModule, node: fx.Node) -> bool:
    """True when ``node`` only reshapes (or passes on) its first input."""
    return isinstance(module_of(gm, node), _SHAPE_ONLY_TYPES) or (
        node.op == "call_method" and node.target in _SHAPE_ONLY_METHODS
    ) or (node.op == "call_function" and getattr(node.target, "__name__", "") in ("flatten", "reshape"))


def _carries_spikes(gm: fx.GraphModule, node: fx.Node, neuron_nodes: set[fx.Node]) -> bool:
    """True when ``node``'s value is a neuron output, reshaped at most (still binary events)."""
    while True:
        if node in neuron_nodes:
            return True
        if not shape_only(gm, node) or not node.args or not isinstance(node.args[0], fx.Node):
            return False
        node = node.args[0]


def source_population(gm: fx.GraphModule, node: fx.Node | None, populations: set[str]) -> str | None:
    """Path of the population in ``populations`` whose output reaches ``node`` through shape-only
    operations (flatten, view, dropout...), or None."""
    while node is not None:
        if node.op == "call_module" and str(node.target) in populations:
            return str(node.target)
        if not shape_only(gm, node) or not node.args or not isinstance(node.args[0], fx.Node):
            return None
        node = node.args[0]
    return None


def synapses_fed_by(gm: fx.GraphModule, populations: set[str]) -> dict[str, str]:
    """For each counting synapse fed directly (up to reshapes) by one of ``populations``: synapse
    path -> population path."""
    out = {}
    for node in gm.graph.nodes:
        if node.op == "call_module" and isinstance(gm.get_submodule(str(node.target)), CountingSynapse):
            src = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
            pop = source_population(gm, src, populations)
            if pop is not None:
                out[str(node.target)] = pop
    return out


def _fold_batch_reshapes(gm: fx.GraphModule, varying: set[fx.Node]) -> None:
    """``x.view(batch, ...)`` / ``x.reshape(batch, ...)`` on a time-varying tensor would merge
    time into the features once time is folded into the batch: rewrite them as
    ``reshape(-1, *per-sample shape)`` from the shapes recorded at calibration (left alone when
    no shapes were recorded or dim 0 is neither the batch nor whole samples' rows)."""
    batch = calibrated_batch(gm.graph)
    if batch is None:
        return
    for node in gm.graph.nodes:
        is_reshape = (node.op == "call_method" and node.target in ("view", "reshape")) or (
            node.op == "call_function" and node.target is torch.reshape)
        if not is_reshape or node not in varying or "tensor_meta" not in node.meta:
            continue
        shape = tuple(node.meta["tensor_meta"].shape)
        if not keeps_samples_apart(shape, batch):
            continue
        src = node.args[0]
        node.op, node.target = "call_method", "reshape"
        node.args, node.kwargs = (src, -1, *shape[1:]), {}
    gm.graph.eliminate_dead_code()


def assemble_time_folded(gm: fx.GraphModule, neurons: Mapping[str, IFNeuron] | Mapping[str, Callable[[bool], nn.Module]],
                         reads_device: bool = False) -> None:
    """Replace each activation module whose path is in ``neurons`` by its neuron population
    (in place), wrap synaptic and pooling layers in counters, and broadcast constant tensors
    over time where they are combined with time-varying ones.

    ``neurons[path]`` is an IFNeuron (run time-folded) or a factory ``f(static_input) -> module``
    for other populations. ``reads_device``: synaptic events read a synapse device (TTFS)."""
    neuron_nodes = {n for n in gm.graph.nodes if n.op == "call_module" and str(n.target) in neurons}
    varying = time_varying_nodes(gm, neuron_nodes)

    populations: dict[str, nn.Module] = {}
    for node in neuron_nodes:
        src = node.args[0]
        static = not (isinstance(src, fx.Node) and src in varying)
        spec = neurons[str(node.target)]
        population = TimeFoldedNeuron(spec, static_input=static) if isinstance(spec, IFNeuron) else spec(static)
        gm.set_submodule(str(node.target), population)
        populations[str(node.target)] = population

    for node in list(gm.graph.nodes):
        if node.op != "call_module" or node in neuron_nodes:
            continue
        m = module_of(gm, node)
        if isinstance(m, SYNAPSE_TYPES + POOL_TYPES):
            src = node.args[0]
            static = not (isinstance(src, fx.Node) and src in varying)
            spikes = isinstance(src, fx.Node) and _carries_spikes(gm, src, neuron_nodes)
            reads = reads_device and spikes and isinstance(m, SYNAPSE_TYPES)
            feeder = source_population(gm, src if isinstance(src, fx.Node) else None, set(populations))
            pop = populations.get(feeder) if feeder is not None else None
            # what the synapse must know of the population feeding it (spike size, silent value)
            wiring = pop.receiver_wiring() if isinstance(pop, SpikingPopulation) else {}
            gm.set_submodule(str(node.target), CountingSynapse(m, spike_input=spikes, static_input=static,
                                                               reads_device=reads, **wiring))

    _fold_batch_reshapes(gm, varying)

    # only tensors with a batch dimension (computed from the input) need repeating over time;
    # parameters and constants broadcast by themselves
    batched = time_varying_nodes(gm, [n for n in gm.graph.nodes if n.op == "placeholder"])
    counter = 0
    for node in list(gm.graph.nodes):
        if node in neuron_nodes or node not in varying or node.op == "output":
            continue
        for src in input_nodes(node):
            if src in varying or src not in batched or not (is_tensor_node(src) or src.op == "placeholder"):
                continue
            if "tensor_meta" in src.meta and len(getattr(src.meta["tensor_meta"], "shape", ())) == 0:
                continue  # a scalar tensor broadcasts by itself
            name = f"time_broadcast_{counter}"
            counter += 1
            gm.add_submodule(name, TimeBroadcast())
            with gm.graph.inserting_before(node):
                b = gm.graph.call_module(name, args=(src,))
            node.replace_input_with(src, b)
    gm.graph.lint()
    gm.recompile()
