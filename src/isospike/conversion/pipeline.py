"""The conversion pipeline every time-coded coding shares, with the coding's steps plugged in:

    prepared = prepare(model, calibration, fold_bn=...)     # trace -> fold -> shapes -> check
    spans = activation_spans(prepared, paths, ...)           # measure (the coding decides what)
    gm = assemble(prepared, populations)                     # populations + counting synapses

A coding's converter is then: prepare, decide each activation's population from the options
and the measurements, assemble, wrap in a :class:`SpikingNetwork`. Errors raised here do not
name the coding: :meth:`isospike.conversion.coding.Coding.convert` adds it once, at the entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

from torch import fx, nn

from isospike.conversion import calibration as _calibration
from isospike.conversion.assemble import PASSTHROUGH_TYPES, POOL_TYPES, SYNAPSE_TYPES, assemble_time_folded
from isospike.conversion.graph import (
    BN_TYPES,
    check_linear_glue,
    fold_batchnorm,
    module_of,
    propagate_shapes,
    relu_functions_to_modules,
    trace,
)
from isospike.errors import UnsupportedLayerError
from isospike.neurons import IFNeuron

_MAX_POOL = ("the max of spike trains is not the max of the values they carry (rates, spike times, counts); use "
             "average pooling (e.g. isospike.models with pool='avg') and retrain")
_HINTS = {
    "MaxPool1d": _MAX_POOL,
    "MaxPool2d": _MAX_POOL,
    "Sigmoid": "its neurons represent ReLU-like activations only; use ReLU",
    "Tanh": "its neurons represent ReLU-like activations only; use ReLU",
    "GELU": "its neurons represent ReLU-like activations only; use ReLU, "
    "or isospike.exact.convert for a bit-exact spiking version",
}


class _TrainedActivation(Protocol):
    """An activation trained for conversion: its class exposes the spiking threshold."""

    @property
    def spike_threshold(self) -> float: ...


def has_trained_threshold(m: nn.Module) -> TypeGuard[_TrainedActivation]:
    """Activations that carry their own spiking threshold (e.g. the trained clip lambda of
    isospike.train.NoisyQCFS) expose it as ``spike_threshold``."""
    return hasattr(type(m), "spike_threshold") and not isinstance(m, nn.ReLU)


def trained_threshold(m: nn.Module) -> float:
    """The spiking threshold an activation trained for conversion carries."""
    if not has_trained_threshold(m):
        raise TypeError(f"{type(m).__name__} carries no trained spiking threshold")
    return float(m.spike_threshold)


def is_ttfs_quantizer(m: nn.Module) -> bool:
    """A TTFS-quantized activation (isospike.train.TTFSQuant): it carries its own window and step."""
    return hasattr(type(m), "ttfs_timesteps")


@dataclass
class PreparedGraph:
    """An ANN traced and checked for a time-coded coding.

    graph: the traced copy (functional ReLUs as modules, BatchNorm folded where asked, shapes
        recorded when calibration data was given); activations: paths of the activation
        modules, in graph order; modules: those modules by path; folded_batchnorm: the
        BatchNorm layers folded into the synapse before them."""

    graph: fx.GraphModule
    activations: list[str]
    modules: dict[str, nn.Module]
    folded_batchnorm: list[tuple[str, str]]

    def split(self, *kinds: Callable[[nn.Module], bool]) -> list[list[str]]:
        """The activation paths sorted by the first of ``kinds`` they satisfy, then the rest (in
        graph order within each group)."""
        groups: list[list[str]] = [[] for _ in range(len(kinds) + 1)]
        for p in self.activations:
            m = self.modules[p]
            groups[next((i for i, k in enumerate(kinds) if k(m)), len(kinds))].append(p)
        return groups


def prepare(model: nn.Module, calibration: Any, *, fold_bn: bool = True,
            keep: Callable[[nn.Module], bool] = has_trained_threshold) -> PreparedGraph:
    """Trace ``model`` (a copy), turn functional ReLUs into modules, fold BatchNorm, record shapes on
    the first calibration batch, and check every node: ReLUs and the activations ``keep`` accepts
    become populations; synapses (Linear, Conv), average pooling and per-sample linear glue are
    kept; anything else raises :class:`UnsupportedLayerError` with its path and a hint."""
    gm = trace(model)
    relu_functions_to_modules(gm)
    folded = fold_batchnorm(gm) if fold_bn else []
    if calibration is not None:
        propagate_shapes(gm, _calibration.first_batch(calibration))
    activations = []
    for node in gm.graph.nodes:
        if node.op == "call_module":
            m = module_of(gm, node)
            assert m is not None  # a call_module node's module
            if isinstance(m, nn.ReLU) or keep(m):
                activations.append(str(node.target))
            elif not isinstance(m, SYNAPSE_TYPES + POOL_TYPES + PASSTHROUGH_TYPES):
                name = type(m).__name__
                raise UnsupportedLayerError(name, str(node.target), hint=_HINTS.get(name, "no spiking equivalent in this coding"))
            if isinstance(m, BN_TYPES):
                if m.running_mean is None:
                    raise UnsupportedLayerError(
                        type(m).__name__, str(node.target), hint="without running statistics (track_running_stats="
                        "False) it normalizes with the statistics of each batch, so a sample's output depends on the "
                        "others; train it with running statistics or replace it by its fixed affine map")
                m.eval()
        elif node.op in ("call_function", "call_method"):
            check_linear_glue(node)
    return PreparedGraph(gm, activations, {p: gm.get_submodule(p) for p in activations}, folded)


def require_calibration(calibration: Any, what: str) -> None:
    """ValueError saying what the coding measures when calibration data is missing."""
    if calibration is None:
        raise ValueError(f"{what}: pass calibration=<a few hundred training inputs> (tensor, (x, y) pair or DataLoader)")


def activation_spans(prepared: PreparedGraph, paths: list[str], calibration: Any, percentile: float,
                     batch_size: int = 256, max_at_100: bool = True) -> tuple[dict[str, float], list[str]]:
    """Each activation's span on the calibration data (the ``percentile``-th percentile of its
    outputs; 1.0, warned, for those never positive): ({path: span}, never-positive paths)."""
    if not paths:
        return {}, []
    return _calibration.activation_spans(prepared.graph, paths, calibration, percentile, "conversion", batch_size,
                                         max_at_100=max_at_100)


PopulationFactory = Callable[[bool], nn.Module]  # static_input -> population


def assemble(prepared: PreparedGraph, populations: Mapping[str, IFNeuron] | Mapping[str, PopulationFactory],
             reads_device: bool = False) -> fx.GraphModule:
    """Place each activation's population (an IFNeuron, run time-folded, or a factory
    ``f(static_input)``), wrap the synapses in counters wired to the population feeding them,
    broadcast constants over time; returns the graph (``prepared.graph``, changed in place)."""
    assemble_time_folded(prepared.graph, populations, reads_device=reads_device)
    return prepared.graph
