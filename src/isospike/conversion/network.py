"""The converted spiking network: an fx graph with neurons, run over T time steps."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, fx, nn
from torch.utils._pytree import tree_map

from isospike.activity import LayerStats as LayerStats  # the record's former name, still importable from here
from isospike.conversion.graph import calibrated_batch, parameter_dtype
from isospike.conversion.timefold import CountingSynapse, SpikingPopulation, TimeFolded
from isospike.conversion.unit_spikes import unit_spike_copy
from isospike.errors import check_count
from isospike.resources import available_bytes, check_fits

TIMESTEPS_INPUT = "timesteps"  # the graph input that carries the steps of the current run


def thread_timesteps(gm: fx.GraphModule) -> fx.GraphModule:
    """Give ``gm``'s graph a second input, ``timesteps``, and pass it to every time-folded module
    (populations, synapses, broadcasts) as its second argument, so the steps of a run are passed in,
    never stored. Idempotent; recompiles ``gm``."""
    graph = gm.graph
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    steps = next((n for n in placeholders if n.target == TIMESTEPS_INPUT), None)
    if steps is None:
        with graph.inserting_after(placeholders[-1] if placeholders else None):
            steps = graph.placeholder(TIMESTEPS_INPUT)
    for node in graph.nodes:
        if node.op == "call_module" and isinstance(gm.get_submodule(str(node.target)), TimeFolded) \
                and len(node.args) == 1:
            node.args = (node.args[0], steps)
    graph.lint()
    gm.recompile()
    return gm


def unthread_timesteps(gm: fx.GraphModule) -> fx.GraphModule:
    """Undo :func:`thread_timesteps` on ``gm`` (in place): one input, modules called on one tensor
    (for the time-free equivalents of populations). Recompiles ``gm``."""
    graph = gm.graph
    steps = next((n for n in graph.nodes if n.op == "placeholder" and n.target == TIMESTEPS_INPUT), None)
    if steps is None:
        return gm
    for node in list(steps.users):
        node.args = tuple(a for a in node.args if a is not steps)
    graph.erase_node(steps)
    graph.lint()
    gm.recompile()
    return gm


class SpikingNetwork(nn.Module):
    """A spiking network produced by :func:`isospike.convert`.

    ``snn(x)`` runs a full simulation of ``timesteps`` steps from the initial state and returns
    the decoded output, shaped like the ANN's output: time-varying outputs are averaged over the
    steps (``readout="mean"``: rate decoding of the output layer's currents or spikes) or taken at
    the last step (``readout="last"``: codings whose output settles, such as sigma-delta). Each
    call is a pure function of ``x`` and the network's tensors: its populations keep no state
    between calls and nothing is counted (:func:`isospike.counting` observes a call). Under
    autograd the output is differentiable (surrogate gradients through IF spikes,
    straight-through gradients through TTFS and sigma-delta levels); call it inside
    ``torch.no_grad()`` for inference.

    Attributes: ``graph_module`` (the fx graph with spiking modules; its second input is the
    number of steps folded into the batch), ``timesteps``, ``coding`` (name of the coding),
    ``info`` (conversion details: thresholds, folded layers, ...), ``crossbar`` (the memristive
    crossbar its synapses run on, or None).
    """

    def __init__(self, graph_module: fx.GraphModule, timesteps: int, coding: str, info: dict[str, Any],
                 fold_time: bool = True, readout: str = "mean", crossbar: Any = None) -> None:
        super().__init__()
        # the memristive crossbar its synapses are placed on (isospike.devices.MemristiveCrossbar.place), if any
        self.crossbar = crossbar
        if timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {timesteps}")
        if readout not in ("mean", "last"):
            raise ValueError(f"readout must be 'mean' or 'last', got {readout!r}")
        self.readout = readout
        self.graph_module = thread_timesteps(graph_module)
        self.timesteps = int(timesteps)
        self.coding = coding
        self.info = info
        # rate-like codings fold T steps into the batch; TTFS layers resolve their window inside
        # each population (one pass through the graph)
        self.fold_time = fold_time
        self._probed_sizes: dict[tuple[int, ...], dict[str, int]] = {}  # population sizes by input shape (a cache)
        self.train(False)

    def train(self, mode: bool = True) -> SpikingNetwork:
        """Sets the flag only: a converted network computes its inference function in either mode
        (Dropout off, BatchNorm statistics frozen), also inside a larger model put in training mode.
        Returns the network."""
        self.training = bool(mode)
        for m in self.graph_module.modules():
            m.training = False
        return self

    # ------------------------------------------------------------------ structure
    @property
    def observed_root(self) -> fx.GraphModule:
        """What :func:`isospike.counting` observes: the graph (layers are named by their path in it)."""
        return self.graph_module

    def neurons(self) -> Iterator[tuple[str, SpikingPopulation]]:
        for name, m in self.graph_module.named_modules():
            if isinstance(m, SpikingPopulation):
                yield name, m

    def synapses(self) -> Iterator[tuple[str, CountingSynapse]]:
        for name, m in self.graph_module.named_modules():
            if isinstance(m, CountingSynapse):
                yield name, m

    def with_unit_spikes(self) -> SpikingNetwork:
        """A copy whose rate populations emit 1 per spike, each spike value folded into the weights
        it drives: the same function, with 0/1 spikes (the form NeuroBench reads spikes in)."""
        return unit_spike_copy(self)

    def steps_of(self, timesteps: int | None = None) -> int:
        """The steps a call simulates: ``timesteps`` (default: the converted ``timesteps``); a
        coding with a fixed window (``fold_time`` False) refuses any other value."""
        T = self.timesteps if timesteps is None else check_count(timesteps, "timesteps")
        if not self.fold_time and T != self.timesteps:
            raise ValueError(f"this {self.coding} network has a fixed window of {self.timesteps} steps")
        return T

    # ------------------------------------------------------------------ simulation
    def forward_steps(self, x: Tensor, timesteps: int | None = None) -> Any:
        """Simulate and return the raw output at every step, ``[T, batch, ...]`` per output
        tensor (an output that does not depend on time is repeated)."""
        T = self.steps_of(timesteps)
        folded = T if self.fold_time else 1  # steps folded into the batch dimension
        if not isinstance(x, Tensor):
            raise TypeError(f"input must be a tensor, got {type(x).__name__}")
        batch = x.shape[0] if x.dim() else 1
        self._check_call(x, T)
        try:
            out = self.graph_module(x, folded)
        except RuntimeError as exc:
            if not x.is_floating_point():
                raise TypeError(f"the {self.coding} network cannot run on {x.dtype} input ({exc}); pass floating "
                                f"inputs scaled like the calibration data, e.g. x.float()") from exc
            raise ValueError(f"the {self.coding} network cannot run on an input of shape {tuple(x.shape)} and dtype "
                             f"{x.dtype} ({exc}); pass a batch shaped like the calibration data") from exc

        def unfold(y: Any) -> Any:
            if not isinstance(y, Tensor):
                return y
            if folded > 1 and y.dim() and y.shape[0] == folded * batch:
                return y.reshape(folded, batch, *y.shape[1:])
            return y.unsqueeze(0).expand(folded, *y.shape)  # constant over time (or one folded step)

        return tree_map(unfold, out)

    @torch.compiler.disable  # host-side checks: run eagerly, never guarded on by a compiled caller
    def _check_call(self, x: Tensor, timesteps: int) -> None:
        self._check_input(x)
        self.check_memory(x, timesteps)

    def _check_input(self, x: Tensor) -> None:
        """Refuse an input without a batch dimension (or with one dimension more than the network
        takes: multi-step input is not guessed from a shape), of another dtype, or holding NaN/inf."""
        calibrated = next((n.meta.get("tensor_meta") for n in self.graph_module.graph.nodes if n.op == "placeholder"), None)
        ndim = len(calibrated.shape) if calibrated is not None and hasattr(calibrated, "shape") else None
        if ndim is not None and calibrated is not None and x.dim() == ndim - 1:
            sample = tuple(calibrated.shape[1:])
            hint = (" If its first dimension is the batch instead, the NIR file's Input node declared a batch of its "
                    f"own: load it with isospike.nir.load(path, input_shape={sample[1:]})"
                    if self.info.get("source") == "nir" and len(sample) > 1 else "")
            raise ValueError(f"input of shape {tuple(x.shape)} has no batch dimension (the network takes "
                             f"[batch, {', '.join(map(str, sample))}]): if it is one sample, pass x.unsqueeze(0).{hint}")
        if ndim is not None and calibrated is not None and x.dim() == ndim + 1 and tuple(x.shape[2:]) == tuple(
                calibrated.shape[1:]):
            raise ValueError(f"input of shape {tuple(x.shape)} has one dimension more than the network takes ([batch, "
                             f"{', '.join(map(str, calibrated.shape[1:]))}]): a converted network reads one static input "
                             "per sample and drives every step with it (direct coding), the number of steps given by "
                             "timesteps=; it does not take a [T, batch, ...] sequence. Pass x[t] for one step's input, "
                             "or fold the steps into the batch (x.flatten(0, 1)) to simulate each as its own sample")
        expected = parameter_dtype(self.graph_module)
        if x.is_floating_point() and expected is not None and x.dtype != expected:
            raise TypeError(f"input dtype {x.dtype} differs from the network's {expected}: pass x.to({expected})")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ValueError(f"input holds {int((~torch.isfinite(x)).sum())} NaN/inf values: {self.coding} spikes carry "
                             "finite values only (isospike.exact.convert carries IEEE-754 specials); clean the input "
                             "with torch.nan_to_num or drop those samples")

    def forward(self, x: Tensor, *args: Any, timesteps: int | None = None, **kwargs: Any) -> Any:
        """Simulate ``timesteps`` steps (default: the converted ``timesteps``) and return the
        output averaged over time (or at the last step, see ``readout``), shaped like the ANN output.

        Takes the one input tensor: arguments the source model's forward took after its input were
        fixed at their defaults when it was converted, and passing them here raises."""
        if args or kwargs:
            given = [f"{len(args)} more positional argument(s)" if args else "",
                     f"the keyword(s) {', '.join(sorted(kwargs))}" if kwargs else ""]
            raise TypeError(f"this {self.coding} network takes one input tensor (and timesteps=), not "
                            f"{' and '.join(g for g in given if g)}: the source model's other forward arguments "
                            "were fixed at their defaults when it was converted; convert a model whose forward fixes "
                            "the values you need")
        steps = self.forward_steps(x, timesteps)
        if self.readout == "last":
            return tree_map(lambda y: y[-1] if isinstance(y, Tensor) else y, steps)
        return tree_map(lambda y: y.mean(0) if isinstance(y, Tensor) else y, steps)

    # ------------------------------------------------------------------ resources
    def population_sizes(self, x: Tensor) -> dict[str, int] | None:
        """Values each neuron population holds per input sample and step for inputs shaped like
        ``x`` (from the shapes recorded at calibration, else from a one-sample, one-step run of a
        copy); None when they cannot be found."""
        sample_shape = tuple(x.shape[1:])
        if sample_shape in self._probed_sizes:
            return self._probed_sizes[sample_shape]
        gm = self.graph_module
        batch = calibrated_batch(gm.graph)
        placeholder = next((n for n in gm.graph.nodes if n.op == "placeholder"), None)
        recorded = getattr(placeholder.meta.get("tensor_meta"), "shape", None) if placeholder is not None else None
        sizes: dict[str, int] | None = None
        if batch and recorded is not None and tuple(recorded[1:]) == sample_shape:
            found: dict[str, int] = {}
            for node in gm.graph.nodes:
                if node.op == "call_module" and isinstance(gm.get_submodule(str(node.target)), SpikingPopulation):
                    shape = getattr(node.meta.get("tensor_meta"), "shape", None)
                    if shape is None:
                        break
                    found[str(node.target)] = max(math.prod(shape) // batch, 1)
            else:
                sizes = found
        if sizes is None and x.dim() and x.shape[0] > 0:
            sizes = self._probe_sizes(x[:1])
        if sizes is not None:
            self._probed_sizes[sample_shape] = sizes
        return sizes

    def _probe_sizes(self, one: Tensor) -> dict[str, int] | None:
        """Population sizes from a one-sample, one-step run of a copy (without the hooks anyone
        attached to the network: the probe is not a call they should see)."""
        probe = copy.deepcopy(self.graph_module)
        for m in probe.modules():
            m._forward_hooks.clear()
            m._forward_pre_hooks.clear()
        sizes: dict[str, int] = {}
        for name, m in probe.named_modules():
            if isinstance(m, SpikingPopulation):
                m.register_forward_hook(lambda _m, _a, out, name=name: sizes.__setitem__(
                    name, sizes.get(name, 0) + (math.prod(out.shape) if isinstance(out, Tensor) else 0)))
        try:
            with torch.no_grad():
                probe(one, 1)
        except Exception:  # noqa: BLE001 - the real run reports its own error
            return None
        return sizes

    def memory_needed(self, x: Tensor, timesteps: int | None = None) -> tuple[int, str] | None:
        """A lower bound of the bytes a simulation of ``x`` holds at once, and the population that
        sets it: the largest population's values over all steps, as its input and its output
        (time-folded codings), or its first-crossing table of T entries per neuron (TTFS)."""
        sizes = self.population_sizes(x)
        if not sizes:
            return None
        T = self.timesteps if timesteps is None else int(timesteps)
        batch = x.shape[0] if x.dim() else 1
        name, per_sample = max(sizes.items(), key=lambda kv: kv[1])
        per_value = 2 * x.element_size() * T if self.fold_time else T + 8 + x.element_size()
        return per_sample * batch * per_value, name

    def check_memory(self, x: Tensor, timesteps: int | None = None) -> None:
        """Raise :class:`isospike.errors.SimulationTooLargeError` (a ValueError and a
        MemoryError) before anything is allocated when simulating ``x`` cannot fit in memory."""
        need = self.memory_needed(x, timesteps)
        if need is None:
            return
        needed, layer = need
        T = self.timesteps if timesteps is None else int(timesteps)
        batch = max(x.shape[0] if x.dim() else 1, 1)
        free = available_bytes(x.device)
        fitting = max(int((free or 0) // max(needed // batch, 1)), 0)
        advice = (f"use fewer timesteps, a smaller batch, or isospike.simulate(snn, x, batch_size={fitting}), which "
                  "runs the batch in chunks that fit") if fitting >= 1 else \
            f"even one sample does not fit at {T} steps: use fewer timesteps"
        check_fits(needed, f"simulating {batch} samples for {T} steps (population '{layer}' holds "
                           f"{needed // batch // max(T, 1)} bytes per sample and step)", advice, x.device)
