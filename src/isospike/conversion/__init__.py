"""ANN -> SNN conversion: tracing, calibration, per-coding layer maps, the spiking network."""

from isospike.conversion.network import LayerStats, SpikingNetwork
from isospike.conversion.rate import convert_rate
from isospike.conversion.registry import codings, convert, get_converter, register_coding
from isospike.conversion.simulation import SimulationResult, simulate

register_coding("rate", convert_rate)

__all__ = [
    "LayerStats", "SimulationResult", "SpikingNetwork", "codings", "convert", "convert_rate",
    "get_converter", "register_coding", "simulate",
]
