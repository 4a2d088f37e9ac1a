"""Encoders and decoders between values and spikes, one module per coding."""

from isospike.coding import sigma_delta, spatial_bits, ttfs

__all__ = ["sigma_delta", "spatial_bits", "ttfs"]
