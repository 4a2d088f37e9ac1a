"""Rate coding: ReLU -> integrate-and-fire neurons with reset by subtraction.

Each ReLU becomes an IF population whose threshold theta is a robust maximum of that ReLU's
activations on calibration data (a high percentile, Rueckauer et al. 2017), whose membrane
starts at ``v_init * theta`` (0.5: the half-step shift that makes spike counts round instead of
floor), and whose spikes carry the value theta, so the next layer keeps the ANN's weights.
Linear, convolution, average pooling, flatten, dropout and BatchNorm (folded into the preceding
synapse where possible) are kept. The analog input is applied at every step (direct coding);
the output is the time average of the last layer's currents.

Over T steps the firing rate of a neuron approximates clip(z, 0, theta) of its ANN activation
z with an error of at most theta / T per layer for constant inputs.

Activations trained for conversion (any module with a ``spike_threshold`` attribute, such as
isospike.train.NoisyQCFS) keep their trained threshold and need no calibration data.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeGuard

from torch import nn

from isospike.conversion.assemble import PASSTHROUGH_TYPES, POOL_TYPES, SYNAPSE_TYPES, assemble_time_folded
from isospike.conversion.calibration import activation_spans, first_batch
from isospike.conversion.graph import (
    check_linear_glue,
    fold_batchnorm,
    module_of,
    propagate_shapes,
    relu_functions_to_modules,
    trace,
)
from isospike.conversion.network import SpikingNetwork
from isospike.errors import UnsupportedLayerError
from isospike.neurons import IFNeuron
from isospike.neurons.integrate_fire import ResetMode

CODING = "rate"

_HINTS = {
    "MaxPool1d": "the max of spike trains is not the max of their rates; use average pooling "
    "(e.g. isospike.models with pool='avg') and retrain",
    "MaxPool2d": "the max of spike trains is not the max of their rates; use average pooling "
    "(e.g. isospike.models with pool='avg') and retrain",
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


def check_rate_graph(gm, activation_types: tuple[type, ...], ttfs: bool = False, coding: str = CODING) -> list[str]:
    """Check that every node is supported; return the paths of the activation modules
    (trained-threshold activations included; ``ttfs``: TTFS-quantized ones too)."""
    activations = []
    for node in gm.graph.nodes:
        if node.op == "call_module":
            m = module_of(gm, node)
            assert m is not None  # a call_module node's module
            trained = has_trained_threshold(m) or (ttfs and hasattr(type(m), "ttfs_timesteps"))
            if isinstance(m, activation_types) or trained:
                activations.append(str(node.target))
            elif not isinstance(m, SYNAPSE_TYPES + POOL_TYPES + PASSTHROUGH_TYPES):
                name = type(m).__name__
                hint = _HINTS.get(name, "no spiking equivalent in this coding")
                raise UnsupportedLayerError(name, str(node.target), coding, hint)
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                if m.running_mean is None:
                    raise UnsupportedLayerError(
                        type(m).__name__, str(node.target), coding,
                        "without running statistics (track_running_stats=False) it normalizes with the statistics "
                        "of each batch, so a sample's output depends on the others; train it with running "
                        "statistics or replace it by its fixed affine map")
                m.eval()
        elif node.op in ("call_function", "call_method"):
            check_linear_glue(node, coding)
    return activations


def convert_rate(
    model: nn.Module,
    *,
    timesteps: int = 8,
    calibration: Any = None,
    percentile: float = 99.9,
    v_init: float = 0.5,
    reset: ResetMode = "subtract",
    fold_bn: bool = True,
    calibration_batch_size: int = 256,
) -> SpikingNetwork:
    """Convert a ReLU network to a rate-coded IF network (see the module docstring).

    Args:
        model: the ANN (not modified; a copy is converted).
        timesteps: default simulation length T (8 unless given).
        calibration: input data for the thresholds (tensor, (x, y) pair or iterable of batches).
        percentile: percentile (0-100] of each ReLU's activations used as its threshold; 100 = max.
        v_init: initial membrane as a fraction of the threshold.
        reset: "subtract" (default) or "zero".
        fold_bn: fold BatchNorm into the preceding Conv/Linear.
    """
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    gm = trace(model, CODING)
    relu_functions_to_modules(gm)
    folded = fold_batchnorm(gm) if fold_bn else []
    if calibration is not None:
        propagate_shapes(gm, first_batch(calibration))
    activations = check_rate_graph(gm, (nn.ReLU,))
    modules = {p: gm.get_submodule(p) for p in activations}
    trained = {p: m.spike_threshold for p, m in modules.items() if has_trained_threshold(m)}
    relus = [p for p in activations if p not in trained]
    if relus and calibration is None:
        raise ValueError(
            "rate conversion sets each ReLU neuron's threshold from activation statistics: pass "
            "calibration=<a few hundred training inputs> (tensor, (x, y) pair or DataLoader)"
        )
    thresholds: dict[str, float] = {}
    dead: list[str] = []
    if relus:
        thresholds, dead = activation_spans(gm, relus, calibration, percentile, CODING, calibration_batch_size)
    for path, theta in trained.items():
        if not theta > 0.0:
            raise ValueError(f"activation at '{path}' has a non-positive trained threshold {theta}")
        thresholds[path] = float(theta)
    thresholds = {p: thresholds[p] for p in activations}  # graph order
    neurons = {
        path: IFNeuron(threshold=th, reset=reset, v_init=v_init * th, spike_value=th)
        for path, th in thresholds.items()
    }
    assemble_time_folded(gm, neurons)
    info = {
        "thresholds": thresholds,
        "trained_thresholds": sorted(trained),
        "percentile": percentile,
        "v_init": v_init,
        "reset": reset,
        "folded_batchnorm": folded,
        "never_active_on_calibration": dead,
    }
    return SpikingNetwork(gm, timesteps, CODING, info)
