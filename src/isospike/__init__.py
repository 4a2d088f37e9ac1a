"""isospike: turn neural networks into spiking neural networks that compute the same thing,
prove how close they are, train them, and estimate their cost on neuromorphic hardware."""

from isospike import coding, data, devices, energy, exact, metrics, models, neurons, nir, train
from isospike.conversion import LayerStats, SimulationResult, SpikingNetwork, codings, convert, simulate
from isospike.errors import DatasetNotFoundError, IsospikeError, UnsupportedLayerError
from isospike.conversion.equivalent import equivalent
from isospike.serialize import load, save
from isospike.certificate import Certificate, verify

__version__ = "0.1.0"

__all__ = [
    "Certificate", "DatasetNotFoundError", "IsospikeError", "LayerStats", "SimulationResult", "SpikingNetwork",
    "UnsupportedLayerError", "coding", "codings", "convert", "data", "devices", "energy", "exact", "metrics", "models",
    "equivalent", "load", "neurons", "nir", "save", "simulate", "train", "verify",
]
