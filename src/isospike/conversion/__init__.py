"""ANN -> SNN conversion: the registry of codings (:mod:`isospike.conversion.coding`), the shared
pipeline (tracing, checks, calibration, assembly), one module per coding, the spiking network."""

from isospike.conversion.coding import Coding, CodingOptions, codings, convert, get_coding, register
from isospike.conversion.exact import ExactOptions, convert_exact
from isospike.conversion.mttfs import MTTFSOptions, convert_mttfs
from isospike.conversion.network import LayerStats, SpikingNetwork
from isospike.conversion.rate import RateOptions, convert_rate
from isospike.conversion.sigma_delta import SigmaDeltaOptions, SigmaDeltaPopulation, convert_sigma_delta
from isospike.conversion.simulation import SimulationResult, simulate
from isospike.conversion.ttfs import TTFSOptions, TTFSPopulation, convert_ttfs

__all__ = [
    "Coding", "CodingOptions", "ExactOptions", "LayerStats", "MTTFSOptions", "RateOptions", "SigmaDeltaOptions",
    "SigmaDeltaPopulation", "SimulationResult", "SpikingNetwork", "TTFSOptions", "TTFSPopulation", "codings", "convert",
    "convert_exact", "convert_mttfs", "convert_rate", "convert_sigma_delta", "convert_ttfs", "get_coding",
    "register", "simulate",
]
