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
from torch import Tensor, nn

from isospike.conversion.coding import Coding, CodingOptions, register
from isospike.exact.backends import BackendName
from isospike.guarantees import BIT_EXACT, Certificate, LayerCertificate
from isospike.metrics import ulp_distance

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
    return verify_bit_exact(net, _reference(net), x)


def _float_leaves(value: Any) -> list[Tensor]:
    """The floating tensors of a module output (tensor, tuple, list, dict / ModelOutput), in order."""
    if isinstance(value, Tensor):
        return [value.detach()] if value.is_floating_point() else []
    if isinstance(value, dict):
        return [t for v in value.values() for t in _float_leaves(v)]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _float_leaves(v)]
    return []


def verify_bit_exact(net: nn.Module, ref: nn.Module, x: Any) -> Certificate:
    """Run a network and its reference on ``x`` (a tensor, a tuple of positional inputs or a dict of
    keyword inputs) and compare, bit for bit, the output of every module without children (each
    call of it) and the network's output: the check of the exact coding."""
    args, kwargs = (x, {}) if not isinstance(x, (tuple, dict)) else ((x, {}) if isinstance(x, tuple) else ((), x))
    if not isinstance(args, tuple):
        args = (args,)

    def run(model: nn.Module) -> list[tuple[str, list[Tensor]]]:
        records: list[tuple[str, list[Tensor]]] = []
        hooks = []
        for name, m in model.named_modules():
            if name and not any(True for _ in m.children()):
                hooks.append(m.register_forward_hook(
                    lambda mod, i, o, name=name: records.append((name, _float_leaves(o)))))
        try:
            with torch.no_grad():
                out = model(*args, **kwargs)
        finally:
            for h in hooks:
                h.remove()
        records.append(("output", _float_leaves(out)))
        return records

    got, want = run(net), run(ref)
    first = args[0] if args else next(iter(kwargs.values()), None)
    cert = Certificate("exact", int(first.shape[0]) if torch.is_tensor(first) and first.dim() else 1)
    calls: dict[str, int] = {}
    for (label, a_list), (_, b_list) in zip(got, want):
        calls[label] = calls.get(label, 0) + 1
        name = label if calls[label] == 1 else f"{label} (call {calls[label]})"
        for j, (a, b) in enumerate(zip(a_list, b_list)):
            ulp = ulp_distance(a, b) if a.dtype == torch.float32 else (a != b).to(torch.int64)
            worst = int(ulp.max()) if ulp.numel() else 0
            diff = (a.double() - b.double()).abs()
            finite = torch.isfinite(diff)
            bad = int((ulp > 0).sum())
            cert.layers.append(LayerCertificate(name if len(a_list) == 1 else f"{name} [{j}]", BIT_EXACT,
                                                float(diff[finite].max()) if finite.any() else 0.0, 0.0, bad == 0,
                                                bad, int(ulp.numel()), worst))
    return cert


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
