"""Backends that evaluate gate netlists, and the options they take.

The registry :data:`BACKENDS` maps each name to a :class:`Backend`: ``"bitsliced"`` (packed words,
the numba kernel on CPU), ``"torch"`` (the same in plain PyTorch, any device), ``"triton"`` (one
fused kernel per circuit, CUDA) and ``"neuron"`` (membrane-level simulation with leak and noise).
A backend name is checked once, where a caller enters (:func:`gate_options`: a public operation,
:class:`~isospike.exact.arith.GateArith`, :func:`isospike.exact.convert`); after that the
:class:`GateOptions` carry the :class:`Backend` object itself.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch

from isospike.exact.backends import bitsliced, neuron
from isospike.exact.netlist import Netlist

BackendName = Literal["bitsliced", "torch", "triton", "neuron"]  # the one list of backend names
BACKEND_NAMES: tuple[str, ...] = get_args(BackendName)
Counts = tuple[int, int]  # (spikes fired by the gates, synaptic events)


@dataclass(frozen=True, eq=False)
class Backend:
    """One way of evaluating a netlist on N lanes.

    tensors: lane bit patterns are int64 tensors on the operands' own device (False: uint64 numpy
    arrays on the CPU). membrane: every gate's membrane is simulated, so leak and noise apply.
    evaluate(netlist, inputs, count, options) -> (outputs, (spikes, synaptic events)).
    place(device, api) -> the backend that runs for tensors on ``device`` (``api`` is named in
    errors)."""

    name: str
    tensors: bool
    membrane: bool
    evaluate: Callable[[Netlist, Any, bool, GateOptions], tuple[Any, Counts]]
    place: Callable[[Backend, torch.device, str], Backend]
    doc: str

    def on(self, device: torch.device, api: str) -> Backend:
        """The backend that evaluates for tensors on ``device`` (see :attr:`place`)."""
        return self.place(self, device, api)

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"


def _here(backend: Backend, device: torch.device, api: str) -> Backend:
    return backend


def _place_bitsliced(backend: Backend, device: torch.device, api: str) -> Backend:
    """The numba kernel on a CPU tensor; on any other device the fused Triton kernel where Triton
    can run there (CUDA), else the plain-torch evaluation, so values never leave their device."""
    if device.type == "cpu":
        return backend
    from isospike.exact.backends import triton_bitsliced

    return BACKENDS["triton" if triton_bitsliced.available(device) else "torch"]


def _place_triton(backend: Backend, device: torch.device, api: str) -> Backend:
    from isospike.exact.backends import triton_bitsliced

    if not triton_bitsliced.available(device):
        raise ValueError(f"{api}: backend='triton' needs Triton and a CUDA tensor (or TRITON_INTERPRET=1 for its CPU "
                         f"interpreter); got a {device.type} tensor{'' if triton_bitsliced._triton() else ' and no Triton'}: "
                         "use backend='bitsliced' (chooses for the device) or 'torch'")
    return backend


def _run_bitsliced(netlist: Netlist, inputs: Any, count: bool, options: GateOptions) -> tuple[Any, Counts]:
    return bitsliced.evaluate(netlist, inputs, count=count)


def _run_torch(netlist: Netlist, inputs: Any, count: bool, options: GateOptions) -> tuple[Any, Counts]:
    from isospike.exact.backends import torch_bitsliced

    return torch_bitsliced.evaluate(netlist, inputs, count=count)


def _run_triton(netlist: Netlist, inputs: Any, count: bool, options: GateOptions) -> tuple[Any, Counts]:
    from isospike.exact.backends import triton_bitsliced

    return triton_bitsliced.evaluate(netlist, inputs, count=count)


def _run_neuron(netlist: Netlist, inputs: Any, count: bool, options: GateOptions) -> tuple[Any, Counts]:
    return neuron.evaluate(netlist, inputs, leak=options.leak, noise=options.noise, noise_model=options.noise_model,
                           generator=options.generator)


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("bitsliced", False, False, _run_bitsliced, _place_bitsliced,
            "packed 64-lane words, the compiled numba kernel (CPU); Triton or torch on other devices"),
    Backend("torch", True, False, _run_torch, _here, "the bit-sliced evaluation in plain PyTorch, on any device"),
    Backend("triton", True, False, _run_triton, _place_triton, "one fused Triton kernel per circuit (CUDA)"),
    Backend("neuron", False, True, _run_neuron, _here, "every membrane simulated, with optional leak and noise"),
)}
assert tuple(BACKENDS) == BACKEND_NAMES, "one Backend per name of BackendName, in its order"


def _names(names: tuple[str, ...]) -> str:
    quoted = [repr(n) for n in names]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}"


def backend(name: Any, api: str = "isospike.exact") -> Backend:
    """The registered backend called ``name``; ValueError naming them otherwise."""
    found = BACKENDS.get(name) if isinstance(name, str) else None
    if found is None:
        raise ValueError(f"{api}: backend must be {_names(BACKEND_NAMES)}, got {name!r}")
    return found


@dataclass(frozen=True, eq=False)
class GateOptions:
    """Validated options of a gate operation: the backend object and the membrane simulation's
    leak (beta), noise (sigma), noise model and random generator (``backend="neuron"`` only)."""

    backend: Backend
    leak: float = 1.0
    noise: float = 0.0
    noise_model: neuron.NoiseModel = "synapse"
    generator: torch.Generator | None = None

    def on(self, device: torch.device, api: str) -> GateOptions:
        """These options with the backend that runs for tensors on ``device``."""
        placed = self.backend.on(device, api)
        return self if placed is self.backend else GateOptions(placed, self.leak, self.noise, self.noise_model,
                                                               self.generator)

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword form (``backend`` by name), as accepted by the public operations."""
        return {"backend": self.backend.name, "leak": self.leak, "noise": self.noise,
                "noise_model": self.noise_model, "generator": self.generator}


DEFAULTS: dict[str, Any] = {"backend": "bitsliced", "leak": 1.0, "noise": 0.0, "noise_model": "synapse",
                            "generator": None}


def gate_options(api: str, options: Mapping[str, Any]) -> GateOptions:
    """Validate the backend keywords of a gate operation (``api`` names the operation called, e.g.
    ``"isp.exact.mul"``, in every error) and resolve the backend by name, once."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"{api}() got unexpected keyword argument(s) {', '.join(unknown)}; "
                        f"accepted: {', '.join(DEFAULTS)}")
    opts = DEFAULTS | dict(options)
    leak, noise = opts["leak"], opts["noise"]
    chosen = backend(opts["backend"], api)
    if isinstance(leak, bool) or not isinstance(leak, numbers.Real) or not 0.0 < float(leak) <= 1.0:
        raise ValueError(f"{api}: leak (beta) must be a number in (0, 1], got {leak!r}")
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not math.isfinite(noise) or float(noise) < 0:
        raise ValueError(f"{api}: noise (sigma) must be a finite number >= 0, got {noise!r}")
    if opts["noise_model"] not in neuron.NOISE_MODELS:
        raise ValueError(f"{api}: noise_model must be one of {neuron.NOISE_MODELS}, got {opts['noise_model']!r}")
    if opts["generator"] is not None and not isinstance(opts["generator"], torch.Generator):
        raise TypeError(f"{api}: generator must be a torch.Generator or None, got {type(opts['generator']).__name__}")
    if not chosen.membrane and (noise != 0.0 or leak != 1.0):
        raise ValueError(f"{api}: leak and noise act only in the membrane simulation: pass backend='neuron'")
    if not chosen.membrane and (opts["noise_model"] != DEFAULTS["noise_model"] or opts["generator"] is not None):
        raise ValueError(f"{api}: noise_model and generator act only in the membrane simulation: pass "
                         "backend='neuron' (with noise > 0)")
    return GateOptions(chosen, float(leak), float(noise), opts["noise_model"], opts["generator"])
