"""What every deployment target shares: the errors, the integer-network record and the check
of the vendor simulator against isospike's own simulation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from isospike.errors import IsospikeError
from isospike.tables import text_table


class DeploymentError(IsospikeError, ValueError):
    """The network does not fit the target: the message names the layer (its path), the
    constraint (size, fan-in, weight bits, memory) and what would fit."""


class ToolchainMissingError(IsospikeError, ModuleNotFoundError):
    """The vendor toolchain a step needs is not installed (the message gives the command)."""


@dataclass
class LayerPlan:
    """One layer as placed on the chip: its path in the isospike network, what it is, its size,
    fan-in, the integer formats chosen and how many weights rounded to zero."""

    path: str
    kind: str
    neurons: int
    fan_in: int
    weight_bits: int
    weight_shift: int
    threshold: int | None
    zeroed_weights: float  # share of nonzero float weights that became 0 in the integer network
    where: str = ""  # the core / block it is placed on

    def row(self) -> list[Any]:
        return [self.path, self.kind, self.neurons, self.fan_in, f"int{self.weight_bits} << {self.weight_shift}",
                "-" if self.threshold is None else self.threshold, f"{100 * self.zeroed_weights:.1f}%", self.where or "-"]


LAYER_HEADERS = ["layer", "kind", "neurons", "fan-in", "weights", "threshold (int)", "weights rounded to 0", "placed on"]


@dataclass
class Agreement:
    """The vendor simulator against isospike's simulation of the same integer network, and both
    against the floating-point SNN (and the labels, when given), on ``samples`` inputs over
    ``timesteps`` steps."""

    target: str
    simulator: str
    samples: int
    timesteps: int
    decisions_equal: float  # vendor simulator vs isospike's integer simulation
    spike_counts_equal: float  # share of (sample, neuron) spike totals that are identical
    outputs_identical: bool  # read-out values equal bit for bit at every step
    float_snn_decisions_equal: float  # vendor simulator vs isospike's floating-point SNN
    accuracy: dict[str, float] = field(default_factory=dict)  # name -> accuracy on the labels

    def table(self) -> str:
        rows = [["vendor simulator vs isospike (same integer network): decisions", f"{100 * self.decisions_equal:.2f}%"],
                ["  spike totals per neuron identical", f"{100 * self.spike_counts_equal:.2f}%"],
                ["  read-out identical at every step", "yes" if self.outputs_identical else "no"],
                ["vendor simulator vs isospike's float SNN: decisions", f"{100 * self.float_snn_decisions_equal:.2f}%"]]
        rows += [[f"accuracy, {name}", f"{100 * acc:.2f}%"] for name, acc in self.accuracy.items()]
        head = f"{self.target} ({self.simulator}): {self.samples} samples, {self.timesteps} steps"
        return head + "\n" + text_table(["check", "value"], rows)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Simulated:
    """One simulation of the integer network: read-out scores [N, classes] (their argmax is the
    decision), the read-out trace [N, T, classes] and spike totals per neuron [N, neurons]."""

    scores: Tensor
    trace: Tensor
    spikes: Tensor


class Deployment:
    """A network quantized for a target. Subclasses fill :attr:`layers`, :attr:`spec` and
    implement :meth:`simulate` (isospike's own integer simulation) and :meth:`simulate_target`
    (the vendor's simulator)."""

    target = ""
    simulator_name = ""

    def __init__(self, snn: nn.Module, timesteps: int) -> None:
        self.snn = snn
        self.timesteps = timesteps
        self.layers: list[LayerPlan] = []
        self.spec: dict[str, Any] = {}
        self.notes: list[str] = []

    def simulate(self, x: Tensor) -> Simulated:  # pragma: no cover - abstract
        raise NotImplementedError

    def simulate_target(self, x: Tensor) -> Simulated:  # pragma: no cover - abstract
        raise NotImplementedError

    def table(self) -> str:
        """The layers as placed, their integer formats and notes."""
        out = f"{self.target}: {len(self.layers)} layers, {self.timesteps} steps\n"
        out += text_table(LAYER_HEADERS, [layer.row() for layer in self.layers])
        return out + "".join(f"\nnote: {n}" for n in self.notes)

    def check(self, x: Tensor, labels: Tensor | None = None) -> Agreement:
        """Run the vendor simulator and isospike's simulation of the same integer network on
        ``x`` and compare them, and with the floating-point SNN (its own T steps)."""
        ours = self.simulate(x)
        theirs = self.simulate_target(x)
        with torch.no_grad():
            float_out = self.snn(x)
        d_target, d_ours, d_float = theirs.scores.argmax(-1), ours.scores.argmax(-1), float_out.argmax(-1)
        accuracy: dict[str, float] = {}
        if labels is not None:
            accuracy = {f"{self.target} simulator": _mean(d_target == labels), "isospike float SNN": _mean(d_float == labels)}
        return Agreement(self.target, self.simulator_name, int(x.shape[0]), self.timesteps, _mean(d_target == d_ours),
                         _mean(theirs.spikes == ours.spikes), bool(torch.equal(theirs.trace, ours.trace)),
                         _mean(d_target == d_float), accuracy)


def _mean(mask: Tensor) -> float:
    return float(mask.float().mean()) if mask.numel() else 1.0


def require(module: str, install: str, why: str) -> None:
    """Raise :class:`ToolchainMissingError` unless ``module`` can be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ToolchainMissingError(f"{module} is not installed ({why}); install it with `{install}`")


def graph_steps(snn: nn.Module, target: str, why: str) -> Iterator[tuple[str, nn.Module, Any, Any]]:
    """(path, module, its ``layer``, its ``neuron``) of each step of a rate network's graph, in
    order. Anything but a converted network is refused, and so is a step that is not a module
    call, with ``why`` (the chip's reason) after "has no place on the chip"."""
    from isospike.conversion.network import SpikingNetwork

    if not isinstance(snn, SpikingNetwork):
        raise DeploymentError(f"{target} deployment takes a rate network from isospike.convert, got {type(snn).__name__}")
    gm = snn.graph_module
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        path = str(node.target)
        if node.op != "call_module":
            raise DeploymentError(f"{target}: the operation {path} ({node.op}) has no place on the chip{why}")
        m = gm.get_submodule(path)
        yield path, m, getattr(m, "layer", None), getattr(m, "neuron", None)


def check_subtractive(neuron: Any, path: str, target: str, advice: str) -> None:
    """Refuse neurons that reset to zero or leak: the chips' integrate-and-fire neurons subtract
    the threshold. ``advice`` follows "reset to zero or leak; "."""
    if getattr(neuron, "reset_mode", "subtract") != "subtract" or float(getattr(neuron, "leak", 1.0)) != 1.0:
        raise DeploymentError(f"{target}: neurons {path!r} reset to zero or leak; {advice}")
