"""ANN -> SNN conversion: tracing, calibration, per-coding layer maps, the spiking network."""

from isospike.conversion.exact import convert_exact
from isospike.conversion.mttfs import convert_mttfs
from isospike.conversion.network import LayerStats, SpikingNetwork
from isospike.conversion.rate import convert_rate
from isospike.conversion.registry import codings, convert, get_converter, register_coding
from isospike.conversion.sigma_delta import SigmaDeltaPopulation, convert_sigma_delta
from isospike.conversion.simulation import SimulationResult, simulate
from isospike.conversion.ttfs import TTFSPopulation, convert_ttfs

register_coding("rate", convert_rate)
register_coding("ttfs", convert_ttfs)
register_coding("sigma_delta", convert_sigma_delta)
register_coding("mttfs", convert_mttfs)
register_coding("exact", convert_exact)

__all__ = [
    "LayerStats", "SigmaDeltaPopulation", "SimulationResult", "SpikingNetwork", "TTFSPopulation", "codings", "convert",
    "convert_exact", "convert_mttfs", "convert_rate", "convert_sigma_delta", "convert_ttfs",
    "get_converter", "register_coding", "simulate",
]
