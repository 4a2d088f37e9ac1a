"""The converted spiking network: an fx graph with neurons, run over T time steps."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, fx, nn
from torch.utils._pytree import tree_map

from isospike.activity import LayerActivity
from isospike.activity import LayerStats as LayerStats  # the record's former name, still importable from here
from isospike.conversion.graph import calibrated_batch, parameter_dtype
from isospike.conversion.timefold import CountingSynapse, SpikingPopulation, TimeFolded
from isospike.errors import check_count
from isospike.resources import available_bytes, check_fits


class SpikingNetwork(nn.Module):
    """A spiking network produced by :func:`isospike.convert`.

    ``snn(x)`` runs a full simulation of ``timesteps`` steps from the reset state and returns the
    decoded output, shaped like the ANN's output: time-varying outputs are averaged over the
    steps (``readout="mean"``: rate decoding of the output layer's currents or spikes) or taken at
    the last step (``readout="last"``: codings whose output settles, such as sigma-delta).

    Attributes: ``graph_module`` (the fx graph with spiking modules), ``timesteps``, ``coding``
    (name of the coding), ``info`` (conversion details: thresholds, folded layers, ...),
    ``crossbar`` (the memristive crossbar its synapses run on, or None).
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
        self.graph_module = graph_module
        self.timesteps = int(timesteps)
        self.coding = coding
        self.info = info
        # rate-like codings fold T steps into the batch; TTFS layers resolve their window inside
        # each population (one pass through the graph)
        self.fold_time = fold_time
        self.steps_run = self.timesteps  # steps of the last simulation (forward may choose others)
        self.samples_run = 0  # input samples since reset_counts (layers may see several rows each)
        self._probed_sizes: dict[tuple[int, ...], dict[str, int]] = {}  # population sizes by input shape
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
    def neurons(self) -> Iterator[tuple[str, SpikingPopulation]]:
        for name, m in self.graph_module.named_modules():
            if isinstance(m, SpikingPopulation):
                yield name, m

    def synapses(self) -> Iterator[tuple[str, CountingSynapse]]:
        for name, m in self.graph_module.named_modules():
            if isinstance(m, CountingSynapse):
                yield name, m

    def reset(self) -> None:
        """Reset every neuron's membrane to its initial value."""
        for _, m in self.neurons():
            m.reset()

    def set_counting(self, enabled: bool) -> SpikingNetwork:
        """Turn the per-layer synaptic-operation counts on (default) or off. Off, a simulation
        gives the same outputs and spike counts, without the event counting that energy
        estimates need (about half the work of a spiking convolution). Returns the network."""
        for _, m in self.synapses():
            m.counting = bool(enabled)
        return self

    @contextlib.contextmanager
    def counting_on(self) -> Iterator[SpikingNetwork]:
        """Counts on inside the block (simulate and energy estimates need them), as before after."""
        before = {name: m.counting for name, m in self.synapses()}
        self.set_counting(True)
        try:
            yield self
        finally:
            for name, m in self.synapses():
                m.counting = before.get(name, True)

    def reset_counts(self) -> None:
        self.samples_run = 0
        for _, pop in self.neurons():
            pop.reset_counts()
        for _, syn in self.synapses():
            syn.reset_counts()

    # ------------------------------------------------------------------ simulation
    def forward_steps(self, x: Tensor, timesteps: int | None = None) -> Any:
        """Simulate and return the raw output at every step, ``[T, batch, ...]`` per output
        tensor (an output that does not depend on time is repeated)."""
        T = self.timesteps if timesteps is None else check_count(timesteps, "timesteps")
        if not self.fold_time:
            if timesteps is not None and T != self.timesteps:
                raise ValueError(f"this {self.coding} network has a fixed window of {self.timesteps} steps")
            T = 1
        if not isinstance(x, Tensor):
            raise TypeError(f"input must be a tensor, got {type(x).__name__}")
        batch = x.shape[0] if x.dim() else 1
        for m in self.graph_module.modules():
            if isinstance(m, TimeFolded):
                m.timesteps = T
        calibrated = next((n.meta.get("tensor_meta") for n in self.graph_module.graph.nodes if n.op == "placeholder"), None)
        ndim = len(calibrated.shape) if calibrated is not None and hasattr(calibrated, "shape") else None
        if ndim is not None and calibrated is not None and x.dim() == ndim - 1:
            sample = tuple(calibrated.shape[1:])
            hint = (" If its first dimension is the batch instead, the NIR file's Input node declared a batch of its "
                    f"own: load it with isospike.nir.load(path, input_shape={sample[1:]})"
                    if self.info.get("source") == "nir" and len(sample) > 1 else "")
            raise ValueError(f"input of shape {tuple(x.shape)} has no batch dimension (the network takes "
                             f"[batch, {', '.join(map(str, sample))}]): if it is one sample, pass x.unsqueeze(0).{hint}")
        expected = parameter_dtype(self.graph_module)
        if x.is_floating_point() and expected is not None and x.dtype != expected:
            raise TypeError(f"input dtype {x.dtype} differs from the network's {expected}: pass x.to({expected})")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ValueError(f"input holds {int((~torch.isfinite(x)).sum())} NaN/inf values: {self.coding} spikes carry "
                             "finite values only (isospike.exact.convert carries IEEE-754 specials); clean the input "
                             "with torch.nan_to_num or drop those samples")
        self.check_memory(x, T)
        self.reset()
        try:
            with torch.no_grad():
                out = self.graph_module(x)
        except RuntimeError as exc:
            if not x.is_floating_point():
                raise TypeError(f"the {self.coding} network cannot run on {x.dtype} input ({exc}); pass floating "
                                f"inputs scaled like the calibration data, e.g. x.float()") from exc
            raise ValueError(f"the {self.coding} network cannot run on an input of shape {tuple(x.shape)} and dtype "
                             f"{x.dtype} ({exc}); pass a batch shaped like the calibration data") from exc
        self.steps_run = T if self.fold_time else self.timesteps
        self.samples_run += batch

        def unfold(y: Any) -> Any:
            if not isinstance(y, Tensor):
                return y
            if T > 1 and y.dim() and y.shape[0] == T * batch:
                return y.reshape(T, batch, *y.shape[1:])
            return y.unsqueeze(0).expand(T, *y.shape)  # constant over time (or T == 1)

        return tree_map(unfold, out)

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
        probe = copy.deepcopy(self.graph_module)
        for m in probe.modules():
            if isinstance(m, TimeFolded):
                m.timesteps = 1 if self.fold_time else m.timesteps
            if isinstance(m, (SpikingPopulation, CountingSynapse)):
                m.reset_counts()
        try:
            with torch.no_grad():
                probe(one)
        except Exception:  # noqa: BLE001 - the real run reports its own error
            return None
        return {name: m.neurons_per_sample * max(m.samples, 1) for name, m in probe.named_modules()
                if isinstance(m, SpikingPopulation)}

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

    # ------------------------------------------------------------------ statistics
    def _rows_per_sample(self, rows_seen: int) -> tuple[int, int]:
        """(rows per input sample, input samples) for a layer that counted ``rows_seen`` rows."""
        samples = self.samples_run
        if samples and rows_seen > samples and rows_seen % samples == 0:
            return rows_seen // samples, samples
        return 1, rows_seen

    def layer_stats(self) -> dict[str, LayerActivity]:
        """Per-layer :class:`~isospike.activity.LayerActivity` since :meth:`reset_counts`, in graph
        order: totals over the samples simulated. Layers that see several rows per sample
        (``[B, tokens, F]`` reshaped to ``[B * tokens, F]``) count per input sample."""
        stats: dict[str, LayerActivity] = {}
        for name, m in self.graph_module.named_modules():
            if isinstance(m, SpikingPopulation):
                rows, samples = self._rows_per_sample(m.samples)
                stats[name] = LayerActivity(
                    name, "neuron", neurons=m.neurons_per_sample * rows,
                    neuron_updates=m.neuron_updates, spikes=m.spikes,
                    timesteps=self.steps_run, samples=samples, by_step=list(m.spikes_by_step),
                )
            elif isinstance(m, CountingSynapse):
                rows, samples = self._rows_per_sample(m.samples)
                steps = 1 if (m.static_input or not self.fold_time) else self.steps_run
                stats[name] = LayerActivity(
                    name, m.kind, synaptic_ops=m.synaptic_ops, dense_ops=m.dense_ops, timesteps=steps, samples=samples,
                    by_step=list(m.ops_by_step), input_events=m.input_events,
                    outputs=m.outputs_per_sample * rows * samples * steps, parameters=m.parameters_stored,
                    device_reads=m.synaptic_ops if m.reads_device else 0,
                )
        return stats
