"""Device models: optoelectronic decay synapses (TTFS) and memristive crossbars (CIM)."""

from isospike.devices.optoelectronic import IN2O3_FIT, DeviceVariation, OptoelectronicSynapse

__all__ = ["DeviceVariation", "IN2O3_FIT", "OptoelectronicSynapse"]
