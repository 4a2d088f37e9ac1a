"""Deployment to neuromorphic chips, checked in the vendor's own simulator.

``isp.deploy(snn, target="xylo" | "speck", calibration=x)`` quantizes a rate network from
:func:`isospike.convert` to the chip's integer formats, refuses what does not fit with the
constraint named (layer path, size, fan-in, weight bits), and returns a :class:`Deployment`:
the integer network (``.spec``), the vendor simulator built from it (``.simulator()``) and
isospike's own simulation of the same integer network (``.simulate(x)``).
``deployment.check(x, labels)`` runs both and reports how well they agree with each other and
with the floating-point SNN (see docs/deploy.md).

Targets and what they need (absent toolchains raise :class:`ToolchainMissingError` naming the
install command; the quantization, the constraints and isospike's own simulation work without):

- ``"xylo"``: SynSense Xylo (SYNS61300, Xylo v1): dense layers, 16 input channels, 1,000
  hidden neurons, 8 read-out neurons, int8 weights with a bit shift, int16 thresholds and
  states. Simulator: rockpool's ``XyloSim`` on the ``xylosim`` C++ core (``pip install
  xylosim``; ``samna`` is not needed).
- ``"speck"``: SynSense Speck / DYNAP-CNN: convolutional layers (pooling folded into the next
  layer), 9 cores with their kernel, neuron and bias memories, int8 weights, int16 thresholds.
  Mapping, constraints and simulation: sinabs' ``DynapcnnNetwork`` (``pip install sinabs``;
  its chip I/O needs ``samna``, which isospike does not import).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from torch import nn

from isospike.deploy.common import Agreement, Deployment, DeploymentError, ToolchainMissingError

TARGETS = ("xylo", "speck")


def deploy(snn: nn.Module, target: str = "xylo", calibration: Any = None, **options: Any) -> Deployment:
    """Quantize ``snn`` (a rate network from :func:`isospike.convert`, or a ReLU ANN with
    ``calibration``, converted here with the rate coding) for ``target`` (one of :data:`TARGETS`).

    Args:
        snn: the network to deploy.
        target: "xylo" or "speck".
        calibration: inputs (a tensor) that set the input scale and check the integer ranges;
            required.
        **options: the target's options (``timesteps``, ``input_levels``, see
            :func:`isospike.deploy.xylo.deploy_xylo` and :func:`isospike.deploy.speck.deploy_speck`).

    Raises :class:`DeploymentError` (a ValueError) naming the constraint a layer breaks.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown deployment target {target!r}; choose one of {', '.join(TARGETS)}")
    if calibration is None:
        raise ValueError("deploy needs calibration inputs (a tensor [N, ...]): they set the input spike scale and "
                         "check that every integer state stays in range")
    snn = _as_rate_network(snn, calibration)
    if target == "xylo":
        from isospike.deploy.xylo import deploy_xylo

        return deploy_xylo(snn, calibration, **options)
    from isospike.deploy.speck import deploy_speck

    return deploy_speck(snn, calibration, **options)


def _as_rate_network(net: nn.Module, calibration: Any) -> nn.Module:
    """A rate SpikingNetwork: ``net`` itself, or ``net`` converted when it is a plain ANN."""
    from isospike.conversion import convert

    coding = getattr(net, "coding", None)
    if coding is None:
        return convert(net, coding="rate", calibration=calibration)
    if coding != "rate":
        raise DeploymentError(f"the network is {coding}-coded; Xylo and Speck neurons integrate and fire with a "
                              "subtractive reset, which is the rate coding: deploy isospike.convert(ann, "
                              "coding='rate', ...)")
    return net


class _CallableModule(types.ModuleType):
    """``isospike.deploy`` is this package and, called, :func:`deploy`: ``isp.deploy(snn, target=...)``."""

    def __call__(self, snn: nn.Module, target: str = "xylo", calibration: Any = None, **options: Any) -> Deployment:
        return deploy(snn, target, calibration, **options)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["Agreement", "Deployment", "DeploymentError", "TARGETS", "ToolchainMissingError", "deploy"]
