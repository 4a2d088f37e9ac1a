"""isospike: turn neural networks into spiking neural networks that compute the same thing,
prove how close they are, train them, and estimate their cost on neuromorphic hardware."""

from isospike import coding, data, devices, energy, exact, metrics, models, neurons, nir, train
from isospike.certificate import Certificate, verify
from isospike.conversion import LayerStats, SimulationResult, SpikingNetwork, codings, convert, simulate
from isospike.conversion.equivalent import equivalent
from isospike.errors import DatasetNotFoundError, IsospikeError, UnsupportedLayerError
from isospike.observe import Counting, counting
from isospike.serialize import load, save


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("isospike")
    except PackageNotFoundError:  # a source tree that was not installed
        return "0.2.0"


__version__ = _version()

__all__ = [
    "Certificate", "Counting", "DatasetNotFoundError", "IsospikeError", "LayerStats", "SimulationResult",
    "SpikingNetwork", "UnsupportedLayerError", "coding", "codings", "convert", "counting", "data", "devices", "energy",
    "exact", "metrics", "models", "equivalent", "load", "neurons", "nir", "save", "simulate", "train", "verify",
]
