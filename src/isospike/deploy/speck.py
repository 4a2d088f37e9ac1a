"""SynSense Speck (DYNAP-CNN cores), checked with sinabs' ``DynapcnnNetwork``.

The chip: 9 convolutional cores, each one convolution + integrate-and-fire layer (+ sum pooling)
with its own kernel, neuron and bias memory; int8 weights, int16 thresholds, biases and
membranes (lower bound ``min_v_mem``), reset by subtraction, no leak; dense layers run as
convolutions over the whole input. Average pooling is folded here into the next layer's
weights (sum pooling on the chip, 1/k^2 in the weights).

sinabs builds the chip layers, measures their memory and finds the core for each
(``get_valid_mapping`` over the chip's ``get_constraints()``) and simulates the integer network
(:meth:`SpeckDeployment.simulate_target`); isospike's own simulation
(:meth:`SpeckDeployment.simulate`) runs the same integers with its own code. sinabs' DYNAP-CNN
modules import ``samna`` (SynSense's device driver) at the top for the chip's configuration
objects and USB I/O, which none of this uses; when ``samna`` is not installed, isospike imports
them with an inert placeholder that raises if anything touches it, and removes it afterwards.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from isospike.deploy.common import (
    Deployment,
    DeploymentError,
    LayerPlan,
    Simulated,
    ToolchainMissingError,
    check_subtractive,
    graph_steps,
)

W_MAX = 127
S_MAX, S_MIN = 2**15 - 1, -(2**15)
THRESHOLD_TARGET = 2048
READOUT_THRESHOLD = 2**14
CORES = 9
DEVICE = "speck2fmodule"


@dataclass
class _Op:
    """One chip-side operation: a convolution / dense layer with neurons, or a sum pooling or a flatten."""

    path: str
    kind: str  # "conv", "linear", "pool", "flatten"
    weight: Tensor | None = None  # integer weights (float64 holding integers)
    bias: Tensor | None = None
    threshold: int = 0
    module: nn.Module | None = None


def _ops(snn: nn.Module) -> list[tuple[str, nn.Module, Any]]:
    """(path, layer, the IF neuron after it or None) in order; anything else is refused."""
    out: list[tuple[str, nn.Module, Any]] = []
    for path, m, layer, neuron in graph_steps(snn, "Speck", " (residual additions and other functions need a core "
                                              "of their own; Speck chains convolutional layers)"):
        if isinstance(m, nn.Flatten):
            out.append((path, m, None))
        elif isinstance(layer, (nn.Conv2d, nn.Linear)):
            if isinstance(layer, nn.Conv2d) and (layer.groups != 1 or layer.dilation != (1, 1)):
                raise DeploymentError(f"Speck: layer {path!r} (Conv2d) uses groups or dilation, which the cores lack")
            out.append((path, layer, None))
        elif isinstance(layer, nn.AvgPool2d):
            k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
            s = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
            if k != s or layer.padding not in (0, (0, 0)):
                raise DeploymentError(f"Speck: layer {path!r} (AvgPool2d) needs kernel = stride and no padding (the "
                                      "cores' sum pooling)")
            out.append((path, layer, None))
        elif neuron is not None and out and isinstance(out[-1][1], (nn.Conv2d, nn.Linear)) and out[-1][2] is None:
            check_subtractive(neuron, path, "Speck", "convert with reset='subtract'")
            out[-1] = (out[-1][0], out[-1][1], neuron)
        else:
            kind = type(layer).__name__ if isinstance(layer, nn.Module) else type(m).__name__
            raise DeploymentError(f"Speck: layer {path!r} ({kind}) cannot be placed: the cores run Conv2d / Linear "
                                  "layers with integrate-and-fire neurons and average (sum) pooling")
    if not out or not isinstance(out[-1][1], (nn.Conv2d, nn.Linear)):
        raise DeploymentError("Speck: the network must end with a Conv2d or Linear layer")
    return out


class SpeckDeployment(Deployment):
    target = "speck"
    simulator_name = f"sinabs DynapcnnNetwork ({DEVICE} constraints)"

    def __init__(self, snn: nn.Module, timesteps: int, ops: list[_Op], input_scale: float, input_levels: int,
                 input_shape: tuple[int, ...]) -> None:
        super().__init__(snn, timesteps)
        self.ops = ops
        self.input_scale = input_scale
        self.input_levels = input_levels
        self.input_shape = input_shape

    def encode(self, x: Tensor) -> Tensor:
        """Input events per step [N, C, H, W] (the same every step)."""
        x = x.to(torch.float64)
        if float(x.min()) < 0:
            raise DeploymentError(f"Speck: inputs are events (counts per pixel and step); this input has negative values "
                                  f"(min {float(x.min()):.3g}): shift or scale it to >= 0")
        return torch.clamp(torch.round(x / self.input_scale), 0, self.input_levels)

    def simulate(self, x: Tensor) -> Simulated:
        """isospike's simulation of the integer network: per step, each layer's integer synaptic
        input added to the membrane, floor(v / theta) spikes, v -= spikes * theta, v >= min_v_mem."""
        counts = self.encode(x)
        n = counts.shape[0]
        state: dict[int, Tensor] = {}
        totals: list[Tensor] = []
        trace = []
        for _ in range(self.timesteps):
            a = counts
            step_totals = []
            for i, op in enumerate(self.ops):
                if op.kind == "pool":
                    k = int(_k2(op.module) ** 0.5)
                    a = nn.functional.avg_pool2d(a, k) * (k * k)
                    continue
                if op.kind == "flatten":
                    a = a.reshape(n, -1)
                    continue
                assert op.weight is not None
                if op.kind == "conv":
                    conv = op.module
                    assert isinstance(conv, nn.Conv2d)
                    current = nn.functional.conv2d(a, op.weight, op.bias, conv.stride, conv.padding)
                else:
                    current = nn.functional.linear(a, op.weight, op.bias)
                v = state.get(i, torch.zeros_like(current)) + current
                spikes = torch.where(v >= op.threshold, torch.floor(v / op.threshold), torch.zeros_like(v))
                v = torch.clamp(v - spikes * op.threshold, min=S_MIN)
                state[i] = v
                a = spikes
                step_totals.append(spikes.reshape(n, -1))
            totals.append(torch.cat(step_totals, 1))
            trace.append(a.reshape(n, -1))
        last = next(i for i in reversed(range(len(self.ops))) if self.ops[i].kind in ("conv", "linear"))
        spikes_out = torch.stack(trace, 1)
        scores = spikes_out.sum(1) * self.ops[last].threshold + state[last].reshape(n, -1)
        return Simulated(scores, spikes_out, torch.stack(totals).sum(0))

    def sinabs_network(self) -> nn.Sequential:
        """The integer network as sinabs layers (the model DynapcnnNetwork maps)."""
        import sinabs.layers as sl

        layers: list[nn.Module] = []
        for op in self.ops:
            if op.kind == "pool":
                k = op.module.kernel_size  # type: ignore[union-attr]
                layers.append(sl.SumPool2d(k))
            elif op.kind == "flatten":
                layers.append(nn.Flatten())
            else:
                assert op.weight is not None and op.module is not None
                if op.kind == "conv":
                    c = op.module
                    assert isinstance(c, nn.Conv2d)
                    lin: nn.Conv2d | nn.Linear = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size,  # type: ignore[arg-type]
                                                           c.stride, c.padding, bias=op.bias is not None)  # type: ignore[arg-type]
                else:
                    lin = nn.Linear(op.weight.shape[1], op.weight.shape[0], bias=op.bias is not None)
                with torch.no_grad():
                    lin.weight.copy_(op.weight.to(torch.float32))
                    if op.bias is not None and lin.bias is not None:
                        lin.bias.copy_(op.bias.to(torch.float32))
                layers.append(lin)
                layers.append(sl.IAFSqueeze(batch_size=1, spike_threshold=float(op.threshold), min_v_mem=float(S_MIN)))
        return nn.Sequential(*layers)

    def dynapcnn(self) -> Any:
        """sinabs' ``DynapcnnNetwork`` of the integer network (no further discretization)."""
        DynapcnnNetwork = _sinabs_dynapcnn().DynapcnnNetwork
        return DynapcnnNetwork(self.sinabs_network(), input_shape=self.input_shape, discretize=False)

    def simulate_target(self, x: Tensor) -> Simulated:
        """sinabs' DYNAP-CNN simulation of the mapped network, one sample at a time."""
        net = self.dynapcnn()
        counts = self.encode(x).to(torch.float32)
        layers = net.dynapcnn_layers
        last = net.exit_layer_ids[-1] if net.exit_layer_ids else max(layers)
        traces, scores, totals = [], [], []
        for sample in counts:
            for k in layers:  # DynapcnnNetwork.reset_states fails in sinabs 3.1.3 (it reads a removed attribute)
                layers[k].spk.reset_states()
            inp = sample[None].expand(self.timesteps, *sample.shape).contiguous()
            recorded: list[Tensor] = []
            hooks = [layers[k].spk.register_forward_hook(lambda m, i, o, into=recorded: into.append(o.detach()))
                     for k in sorted(layers)]
            with torch.no_grad():
                out = net(inp)
            for h in hooks:
                h.remove()
            out = out.reshape(self.timesteps, -1).to(torch.float64)
            th = float(layers[last].spk.spike_threshold)
            v = layers[last].spk.v_mem.reshape(-1).to(torch.float64)
            traces.append(out)
            scores.append(out.sum(0) * th + v)
            totals.append(torch.cat([r.reshape(self.timesteps, -1).sum(0) for r in recorded]).to(torch.float64))
        return Simulated(torch.stack(scores), torch.stack(traces), torch.stack(totals))


def _k2(pool: Any) -> int:
    k = pool.kernel_size if isinstance(pool.kernel_size, int) else pool.kernel_size[0]
    return int(k * k)


class _Absent:
    """A stand-in for anything in ``samna``: harmless to import, an error to use."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ToolchainMissingError(f"{self._name}: samna (SynSense's device driver) is not installed; it is needed "
                                    "for the chip itself, not for mapping or simulation")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Absent(f"{self._name}.{name}")

    def __mro_entries__(self, bases: tuple) -> tuple:
        return (object,)


class _AbsentModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Absent(f"{self.__name__}.{name}")


class _AbsentFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    ROOTS = ("samna", "samnagui")

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in self.ROOTS:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _AbsentModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def _sinabs_dynapcnn() -> Any:
    """``sinabs.backend.dynapcnn``, imported with an inert ``samna`` when samna is absent (see
    the module docstring); the placeholder leaves ``sys.modules`` once sinabs is loaded."""
    if importlib.util.find_spec("sinabs") is None:
        raise ToolchainMissingError("sinabs is not installed; install it with `pip install --no-deps sinabs==3.1.3`")
    if "sinabs.backend.dynapcnn" in sys.modules:
        return sys.modules["sinabs.backend.dynapcnn"]
    if any(importlib.util.find_spec(root) is not None for root in _AbsentFinder.ROOTS):
        import sinabs.backend.dynapcnn as real  # a samna is installed: sinabs uses it

        return real
    finder = _AbsentFinder()
    sys.meta_path.insert(0, finder)
    try:
        import sinabs.backend.dynapcnn as dynapcnn
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n.split(".")[0] in _AbsentFinder.ROOTS]:
            del sys.modules[name]
    return dynapcnn


def deploy_speck(snn: nn.Module, calibration: Tensor, timesteps: int | None = None,
                 input_levels: int = 4) -> SpeckDeployment:
    """Quantize a rate network of convolutions, average pooling and dense layers for Speck (see
    the module docstring).

    Args:
        snn: a rate SpikingNetwork.
        calibration: inputs [N, C, H, W] >= 0; their maximum maps to ``input_levels`` events per
            pixel and step.
        timesteps: steps to run (default: the network's T plus one per layer).
        input_levels: events per pixel and step for the largest input.

    Raises :class:`~isospike.deploy.DeploymentError` naming the layer and the constraint
    (a layer whose kernel or neurons fit no core, more layers than cores, a bias beyond int16).
    """
    layers = _ops(snn)
    if calibration.dim() != 4:
        raise DeploymentError(f"Speck: inputs are images [N, C, H, W]; got a tensor of shape {tuple(calibration.shape)}")
    x = calibration.to(torch.float64)
    if float(x.min()) < 0:
        raise DeploymentError(f"Speck: inputs are events (counts per pixel and step); the calibration inputs go down "
                              f"to {float(x.min()):.3g}: shift or scale them to >= 0")
    input_scale = (float(x.max()) or 1.0) / input_levels
    value: Tensor | float = input_scale  # what one incoming event stands for (per channel / feature)
    pool_factor = 1.0
    ops: list[_Op] = []
    plans: list[LayerPlan] = []
    n_layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for _, m, _ in layers)
    if n_layers > CORES:
        raise DeploymentError(f"Speck: {n_layers} convolutional / dense layers; the chip has {CORES} cores (one layer each)")
    for path, m, neuron in layers:
        if isinstance(m, nn.AvgPool2d):
            ops.append(_Op(path, "pool", module=m))
            pool_factor /= _k2(m)
            continue
        if isinstance(m, nn.Flatten):
            ops.append(_Op(path, "flatten", module=m))
            if isinstance(value, Tensor) and value.numel() > 1:
                raise DeploymentError(f"Speck: per-channel thresholds before {path!r} (Flatten) are not supported here")
            continue
        assert isinstance(m, (nn.Conv2d, nn.Linear))
        w = m.weight.detach().to(torch.float64) * pool_factor
        w = w * (value if not isinstance(value, Tensor) else value.reshape(1, -1, *([1] * (w.dim() - 2))))
        pool_factor = 1.0
        if neuron is not None:
            theta = torch.as_tensor(neuron.threshold, dtype=torch.float64).flatten()
            if theta.numel() > 1:
                raise DeploymentError(f"Speck: neurons after {path!r} have per-channel thresholds; a core has one "
                                      "threshold per layer (convert with per_channel=False)")
            unit = max(float(theta) / THRESHOLD_TARGET, float(w.abs().max()) / W_MAX)
            threshold = int(min(max(round(float(theta) / unit), 1), S_MAX))
            value = float(torch.as_tensor(neuron.spike_value, dtype=torch.float64).flatten()[0])
        else:  # the read-out: neurons added on the chip, its total charge (spikes x theta + v) is the score
            unit = float(w.abs().max()) / W_MAX
            threshold = READOUT_THRESHOLD
        q = torch.clamp(torch.round(w / unit), -W_MAX, W_MAX)
        bias = None
        if m.bias is not None:
            bias = torch.round(m.bias.detach().to(torch.float64) / unit)
            if float(bias.abs().max()) > S_MAX:
                raise DeploymentError(f"Speck: layer {path!r} ({type(m).__name__}) needs a bias of {int(bias.abs().max())} "
                                      f"in its integer units; the cores hold int16 biases (|b| <= {S_MAX})")
        kind = "conv" if isinstance(m, nn.Conv2d) else "linear"
        ops.append(_Op(path, kind, q, bias, threshold, m))
        nonzero = w != 0
        zeroed = float(((q == 0) & nonzero).sum()) / max(int(nonzero.sum()), 1)
        fan_in = int(w[0].numel())
        plans.append(LayerPlan(path, f"{type(m).__name__} + IF neurons" + ("" if neuron is not None else " (read-out)"),
                               int(w.shape[0]), fan_in, 8, 0, threshold, zeroed))
    T = timesteps or int(getattr(snn, "timesteps", 8)) + n_layers
    dep = SpeckDeployment(snn, T, ops, input_scale, input_levels, tuple(calibration.shape[1:]))
    dep.layers = plans
    dep.spec = {"ops": ops, "input_scale": input_scale, "input_levels": input_levels}
    dep.notes.append(f"inputs: {input_levels} events per pixel and step stand for {float(x.max()):.4g}; membranes start "
                     "at 0 (the float SNN starts at v_init); average pooling folded as sum pooling (1/k^2 in the next "
                     f"weights); the read-out layer gets neurons with threshold {READOUT_THRESHOLD} and is scored by "
                     f"its total charge; {T} steps are run")
    _map(dep, plans)
    return dep


def _map(dep: SpeckDeployment, plans: list[LayerPlan]) -> None:
    """Place each layer on a core with sinabs' mapper and the chip's memory constraints; a layer
    that fits no core is refused, naming its memory against the largest core's."""
    try:
        dynapcnn = _sinabs_dynapcnn()
    except ToolchainMissingError as exc:
        dep.notes.append(f"not mapped to cores: {exc}")
        return
    from sinabs.backend.dynapcnn.chip_factory import ChipFactory
    from sinabs.backend.dynapcnn.mapping import get_valid_mapping

    net = dynapcnn.DynapcnnNetwork(dep.sinabs_network(), input_shape=dep.input_shape, discretize=False)
    constraints = ChipFactory(DEVICE).get_config_builder().get_constraints()
    memory = net.memory_summary()
    largest = {k: max(getattr(c, f"{k}_memory") for c in constraints) for k in ("kernel", "neuron", "bias")}
    for idx, plan in zip(sorted(net.dynapcnn_layers), plans):
        for k in ("kernel", "neuron", "bias"):
            need = int(memory[k][idx])
            if need > largest[k]:
                what = {"kernel": "kernel (weight) memory, i.e. its fan-in x output channels rounded up to powers of 2",
                        "neuron": "neuron memory, i.e. output channels x height x width",
                        "bias": "bias memory"}[k]
                raise DeploymentError(f"Speck: layer {plan.path!r} ({plan.kind}) needs {need:,} words of {what}; the "
                                      f"largest {DEVICE} core holds {largest[k]:,}")
    try:
        mapping = get_valid_mapping(net.dynapcnn_layers, constraints)
    except Exception as exc:  # sinabs raises its own errors when no assignment exists
        raise DeploymentError(f"Speck: the layers fit cores one by one but not all together ({exc}); the kernel "
                              f"memories are {dict(memory['kernel'])} words against the cores' "
                              f"{[c.kernel_memory for c in constraints]}") from None
    for idx, plan in zip(sorted(net.dynapcnn_layers), plans):
        plan.where = f"core {mapping[idx]}"
