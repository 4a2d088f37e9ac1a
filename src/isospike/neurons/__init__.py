"""Spiking neuron models: IF (reset by subtraction / to zero), LIF, and SpikingGamma's sigma-delta
neurons with gamma-memory synapses (``gamma``).

Each model is a pure step function (``if_step``) plus a stateful module that loops over time,
keeps its membrane explicit (``.v``, ``.reset()``) and counts its spikes and updates.
"""

from isospike.neurons.gamma import GammaLayer, GammaState
from isospike.neurons.integrate_fire import (
    IFNeuron,
    IFParameters,
    IFState,
    LIFNeuron,
    if_step,
    initial_state,
)

__all__ = ["GammaLayer", "GammaState", "IFNeuron", "IFParameters", "IFState", "LIFNeuron", "if_step", "initial_state"]
