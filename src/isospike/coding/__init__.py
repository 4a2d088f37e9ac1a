"""Encoders and decoders between values and spikes, one module per coding."""

from isospike.coding import spatial_bits

__all__ = ["spatial_bits"]
