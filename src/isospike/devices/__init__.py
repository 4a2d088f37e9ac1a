"""Device models: optoelectronic decay synapses (TTFS) and memristive crossbars (CIM)."""

from isospike.devices.arguments import resolve_synapse
from isospike.devices.memristive import MemristiveCrossbar, crossbar_layer
from isospike.devices.optoelectronic import IN2O3_FIT, DeviceVariation, OptoelectronicSynapse

__all__ = ["DeviceVariation", "IN2O3_FIT", "MemristiveCrossbar", "OptoelectronicSynapse", "crossbar_layer",
           "resolve_synapse"]
