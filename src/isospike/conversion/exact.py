"""``isospike.convert(model, coding="exact")``: the bit-exact gate-circuit network of
:func:`isospike.exact.convert` as a registered coding, so every coding takes the same call.

Values travel as their IEEE-754 bits on parallel spike lines in one time step (spatial bit
coding), so ``timesteps`` is 1. Nothing is measured on data (the circuits are exact for every
input), so ``calibration`` is accepted for a uniform call and not needed. The network is an
:class:`isospike.exact.model_conversion.ExactNetwork` (a copy of the model, same call signature);
its guarantee is "bit-exact" against :func:`isospike.exact.reference`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from isospike.conversion.coding import Coding, CodingOptions, register
from isospike.exact.backends import BackendName
from isospike.guarantees import BIT_EXACT

CODING = "exact"


@dataclass(frozen=True)
class ExactOptions(CodingOptions):
    """Options of the exact coding (those of :func:`isospike.exact.convert`).

    timesteps: 1 (one time step: every bit on its own spike line).
    backend: "bitsliced" (numba on CPU, Triton on CUDA), "torch", "triton" or "neuron" (membrane-level).
    count: record per-module gate activity (``layer_counts()``, energy estimates).
    shard: split matrix products across the ranks of an initialized ``torch.distributed`` group.
    leak, noise, noise_model, generator: membrane leak (beta in (0, 1]), synaptic noise sigma,
        where the noise enters and its random generator -- ``backend="neuron"`` only.
    """

    timesteps: int = 1
    backend: BackendName = "bitsliced"
    count: bool = True
    shard: bool = False
    leak: float = 1.0
    noise: float = 0.0
    noise_model: Literal["synapse", "input", "threshold"] = "synapse"
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.timesteps != 1:
            raise ValueError(f"the exact coding computes in one time step (spatial bit coding); got timesteps="
                             f"{self.timesteps}: leave timesteps out or pass 1")
        if self.generator is not None and not isinstance(self.generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(self.generator).__name__}")

    def arith_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`isospike.exact.convert`."""
        return {k: v for k, v in self.as_dict().items() if k != "timesteps"}


def build_exact(model: nn.Module, options: ExactOptions, calibration: Any) -> nn.Module:
    """:func:`isospike.exact.convert` with the options (``calibration`` is not used)."""
    from isospike.conversion.pipeline import has_trained_threshold
    from isospike.errors import UnsupportedLayerError
    from isospike.exact import convert

    # known before the first call: the gates would refuse it there (aten.floor has no circuit)
    for path, m in model.named_modules():
        if has_trained_threshold(m):
            raise UnsupportedLayerError(type(m).__name__, path or "<model>", hint=(
                "an activation quantized for rate conversion (clamp and floor of its input over the trained "
                "threshold): aten.floor has no gate circuit; convert the ReLU ANN it was trained from, or use a "
                "spiking coding (rate, ttfs, mttfs, sigma_delta)"))
    return convert(model, **options.arith_options())


def _reference(net: nn.Module) -> nn.Module:
    """The pinned float32 reference an exact network equals bit for bit."""
    from isospike.exact.model_conversion import ExactNetwork

    assert isinstance(net, ExactNetwork)  # the exact coding's networks
    return net.reference()


def _verify(net: nn.Module, x: Any, tolerance: float) -> Any:
    """Every leaf module's output (each call) and the network's output, bit for bit against the
    reference (``tolerance`` does not apply: the guarantee is bit-exact)."""
    from isospike.certificate import verify_bit_exact

    return verify_bit_exact(net, _reference(net), x)


EXACT = register(Coding(
    CODING, ExactOptions, build_exact, guarantee=BIT_EXACT, needs_calibration=False,
    equivalent=_reference, verify=_verify, simulation_samples=16,
    summary="IEEE-754 bits on parallel spike lines, IF threshold-gate circuits: equal to the ANN bit for bit"))


def convert_exact(model: nn.Module, *, timesteps: int | None = None, calibration: Any = None,
                  **options: Any) -> nn.Module:
    """``isospike.convert(model, coding="exact", ...)``; options: :class:`ExactOptions`."""
    if timesteps is not None:
        options["timesteps"] = timesteps
    return EXACT.convert(model, calibration, **options)


__all__ = ["EXACT", "ExactOptions", "build_exact", "convert_exact"]
