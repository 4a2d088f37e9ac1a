"""NeuroBench's view of a converted network, made to agree with isospike's counts.

NeuroBench counts a synaptic operation as an accumulate (AC) only when the layer's input holds
nothing but 0 and 1; a rate-coded population whose spikes carry its threshold theta != 1 looks
like an analog activation to it, so its work is counted as multiply-accumulates (MACs), while
isospike counts accumulates (a spike is one event, whatever value it carries). The
:func:`neurobench_model` copy folds each population's spike value into the weights its spikes
drive (w * theta, the same function: ``SpikingNetwork.with_unit_spikes``) so the spikes are 0/1, and
registers isospike's neuron populations as NeuroBench activation modules, so its
``SynapticOperations`` split and ``ActivationSparsity`` read the network as isospike does.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from isospike.neurons.populations import SpikingPopulation


def neurobench_model(snn: nn.Module) -> Any:
    """A ``neurobench.models.TorchModel`` of ``snn`` (a network from :func:`isospike.convert`)
    whose synaptic-operation split (MACs vs ACs) and activation sparsity agree with isospike's
    counts: spikes made binary (see the module docstring) and the populations registered."""
    from neurobench.models import TorchModel

    unit_spikes = getattr(snn, "with_unit_spikes", None)  # a converted network (energy imports no converter)
    if not callable(unit_spikes):
        raise TypeError(f"neurobench_model takes a network from isospike.convert, got {type(snn).__name__}")
    net = unit_spikes() if getattr(snn, "coding", None) == "rate" else copy.deepcopy(snn)
    model = TorchModel(net)
    model.add_activation_module(SpikingPopulation)
    return model


__all__ = ["neurobench_model"]
