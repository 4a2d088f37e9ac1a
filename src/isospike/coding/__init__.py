"""Encoders and decoders between values and spikes, one module per coding."""

from isospike.coding import mttfs, rate, sigma_delta, spatial_bits, ttfs

__all__ = ["mttfs", "rate", "sigma_delta", "spatial_bits", "ttfs"]
