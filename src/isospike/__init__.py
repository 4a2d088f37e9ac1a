"""isospike: turn neural networks into spiking neural networks that compute the same thing,
prove how close they are, train them, and estimate their cost on neuromorphic hardware.

The names below are imported on first use (PEP 562), so ``import isospike`` -- and the command
line's ``--help`` -- start without loading torch; ``isospike.convert`` and the others behave as if
imported here."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it (a subpackage is its own module)
_NAMES = {
    "Certificate": "isospike.certificate", "verify": "isospike.certificate",
    "LayerStats": "isospike.conversion", "SimulationResult": "isospike.conversion",
    "SpikingNetwork": "isospike.conversion", "codings": "isospike.conversion", "convert": "isospike.conversion",
    "simulate": "isospike.conversion", "equivalent": "isospike.conversion.equivalent",
    "DatasetNotFoundError": "isospike.errors", "IsospikeError": "isospike.errors",
    "UnsupportedLayerError": "isospike.errors", "Counting": "isospike.observe", "counting": "isospike.observe",
    "load": "isospike.serialize", "save": "isospike.serialize",
}
_SUBPACKAGES = ("coding", "conversion", "data", "deploy", "devices", "energy", "exact", "metrics", "models", "neurons",
                "nir", "train")

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from isospike import coding, conversion, data, devices, energy, exact, metrics, models, neurons, nir, train
    from isospike.certificate import Certificate, verify
    from isospike.conversion import LayerStats, SimulationResult, SpikingNetwork, codings, convert, simulate
    from isospike.conversion.equivalent import equivalent
    from isospike.deploy import deploy  # the package, callable: isp.deploy(snn, target=...)
    from isospike.errors import DatasetNotFoundError, IsospikeError, UnsupportedLayerError
    from isospike.observe import Counting, counting
    from isospike.serialize import load, save


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"isospike.{name}")
    else:
        raise AttributeError(f"module 'isospike' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_NAMES, *_SUBPACKAGES})


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("isospike")
    except PackageNotFoundError:  # a source tree that was not installed
        return "0.2.0"


__version__ = _version()

__all__ = [
    "Certificate", "Counting", "DatasetNotFoundError", "IsospikeError", "LayerStats", "SimulationResult",
    "SpikingNetwork", "UnsupportedLayerError", "coding", "codings", "conversion", "convert", "counting", "data", "deploy",
    "devices", "energy",
    "exact", "metrics", "models", "equivalent", "load", "neurons", "nir", "save", "simulate", "train", "verify",
]
