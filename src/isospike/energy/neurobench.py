"""NeuroBench's view of a converted network, made to agree with isospike's counts.

NeuroBench counts a synaptic operation as an accumulate (AC) only when the layer's input holds
nothing but 0 and 1; a rate-coded population whose spikes carry its threshold theta != 1 looks
like an analog activation to it, so its work is counted as multiply-accumulates (MACs), while
isospike counts accumulates (a spike is one event, whatever value it carries). The
:func:`neurobench_model` copy folds each population's spike value into the weights its spikes
drive (w * theta, the same function: ``SpikingNetwork.with_unit_spikes``; through flattening and
average pooling, with an explicit scale where spikes enter a residual sum) so the spikes are 0/1,
and registers isospike's neuron populations as NeuroBench activation modules, so its
``SynapticOperations`` split and ``ActivationSparsity`` read the network as isospike does.

Where the two conventions count different things, :func:`neurobench_differences` names the
layer and both conventions (tested against NeuroBench 2.3):

* average pooling: isospike counts its additions (ACs on spikes); NeuroBench's
  ``SynapticOperations`` reads Linear, convolution and recurrent layers only;
* layers fed by TTFS / M-TTFS populations: each spike reaches the layer as its decoded value (the
  population emits one tensor per inference, not T steps of 0/1), so NeuroBench counts one MAC
  per spike and fan-out where isospike counts one AC: the same number of operations, split
  differently;
* layers fed by sigma-delta populations: a change of k quantization levels is k spikes to
  isospike (k ACs per synapse) and one nonzero input (one MAC per synapse) to NeuroBench;
* those populations' activation sparsity: isospike divides spikes by neuron updates (neurons x T,
  several spikes per update for sigma-delta), NeuroBench counts the zero entries of the
  population's output (one per neuron).
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

from torch import fx, nn

from isospike.neurons.populations import SpikingPopulation, TimeFoldedNeuron


def neurobench_model(snn: nn.Module) -> Any:
    """A ``neurobench.models.TorchModel`` of ``snn`` (a network from :func:`isospike.convert`)
    whose synaptic-operation split (MACs vs ACs) and activation sparsity agree with isospike's
    counts: spikes made binary (see the module docstring) and the populations registered. Layers
    where the two conventions differ are listed by :func:`neurobench_differences`."""
    from neurobench.models import TorchModel

    unit_spikes = getattr(snn, "with_unit_spikes", None)  # a converted network (energy imports no converter)
    if not callable(unit_spikes):
        raise TypeError(f"neurobench_model takes a network from isospike.convert, got {type(snn).__name__}")
    net = unit_spikes() if getattr(snn, "coding", None) == "rate" else copy.deepcopy(snn)
    model = TorchModel(net)
    model.add_activation_module(SpikingPopulation)
    return model


class Difference(NamedTuple):
    """A layer that isospike and NeuroBench count by different conventions."""

    layer: str  # the module's path in the converted network
    metric: str  # "SynapticOperations" or "ActivationSparsity"
    isospike: str
    neurobench: str


CONNECTION_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.RNNBase)  # what NeuroBench counts
_RESHAPES = (nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout)


def _source(gm: fx.GraphModule, node: Any) -> Any:
    """The node whose value reaches ``node`` through reshapes only."""
    while isinstance(node, fx.Node):
        reshapes = (node.op == "call_method" and node.target in ("view", "reshape", "flatten", "contiguous")) or (
            node.op == "call_function" and getattr(node.target, "__name__", "") in ("flatten", "reshape")) or (
            node.op == "call_module" and isinstance(gm.get_submodule(str(node.target)), _RESHAPES))
        if not reshapes or not node.args:
            return node
        node = node.args[0]
    return node


def _coded(pop: nn.Module) -> tuple[str, str] | None:
    """(isospike's count, NeuroBench's) of a layer fed by ``pop`` where its spikes do not reach
    it as 0/1 (None: they do)."""
    if isinstance(pop, TimeFoldedNeuron):
        return None  # made 0/1 by neurobench_model
    if "SigmaDelta" in type(pop).__name__:
        return ("sigma-delta: a change of k levels is k spikes (k ACs per synapse)",
                "one nonzero input of value k levels: one MAC per synapse")
    return ("one AC per spike and synapse", "one MAC per spike and synapse: the population emits each spike as its "
            "decoded value (one tensor per inference, not T steps of 0/1)")


def neurobench_differences(snn: nn.Module) -> list[Difference]:
    """The layers of ``snn`` (a network from :func:`isospike.convert`) that NeuroBench counts by
    another convention than isospike (see the module docstring); on every other layer
    :func:`neurobench_model` gives NeuroBench isospike's counts."""
    gm = getattr(snn, "graph_module", None)
    if not isinstance(gm, fx.GraphModule):
        raise TypeError(f"neurobench_differences takes a network from isospike.convert, got {type(snn).__name__}")
    out: list[Difference] = []
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        m = gm.get_submodule(str(node.target))
        path = str(node.target)
        if isinstance(m, SpikingPopulation):
            if _coded(m) is not None:
                out.append(Difference(path, "ActivationSparsity", "1 - spikes / (neurons x T steps)",
                                      "zero entries of the population's output (one per neuron)"))
            continue
        layer = getattr(m, "layer", None)
        if not isinstance(layer, nn.Module):
            continue
        if not isinstance(layer, CONNECTION_LAYERS):
            out.append(Difference(path, "SynapticOperations", f"counts the {type(layer).__name__}'s additions",
                                  "not counted (SynapticOperations reads Linear, convolution and recurrent layers)"))
            continue
        src = _source(gm, node.args[0] if node.args else None)
        pop = gm.get_submodule(str(src.target)) if isinstance(src, fx.Node) and src.op == "call_module" else None
        coded = _coded(pop) if isinstance(pop, SpikingPopulation) else None
        if coded is not None:
            ours, theirs = coded
            out.append(Difference(path, "SynapticOperations", ours, theirs))
    return out


__all__ = ["Difference", "neurobench_differences", "neurobench_model"]
