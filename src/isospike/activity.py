"""One record of what a network did, layer by layer: :class:`LayerActivity`.

Whatever the network -- a converted :class:`~isospike.SpikingNetwork`, any model converted by the
site front end (the TTFS transformer of :func:`isospike.train.ttfs_bert.ttfs_bert`), an exact gate network from
:func:`isospike.exact.convert`, a plain ANN (kind "ann") -- one observer collects these rows:

    with isospike.counting(net) as c:
        y = net(x)
    rows = c.layers                          # {layer path: LayerActivity}

``isospike.simulate(net, x).layers`` holds these rows, and ``isospike.energy`` prices them (one
record type, whatever the network).

Units. A row holds **totals** over the ``samples`` samples it saw and over all its time steps;
``row.per_inference()`` is the same row for one sample (counts divided by ``samples``), the view the
energy model prices. Sizes (``neurons``, ``parameters``, ``timesteps``) are never totals.

This module is a leaf: it imports nothing from isospike.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field, replace

KINDS = ("ann", "mac", "ac", "neuron", "gates")

# counts that add up over samples (per_inference divides them, add sums them)
_TOTALS = ("neuron_updates", "spikes", "synaptic_ops", "dense_ops", "input_events", "outputs", "device_reads",
           "gate_evaluations")


@dataclass
class LayerActivity:
    """What one layer did: totals over ``samples`` samples and all ``timesteps`` steps.

    name: dotted path of the layer (``"<model>"`` for operations of an exact network's root).
    kind: "ann" (a layer of a non-spiking network, every value computed), "mac" (synapses driven
        by analog values, e.g. a spiking network's input layer), "ac" (synapses driven by
        spikes), "neuron" (a spiking population) or "gates" (the threshold-gate circuits an exact
        network evaluated for one module: each gate is an IF neuron that fires once or not).

    Totals (whole numbers; fractions only in :meth:`per_inference` rows):
    neuron_updates: neuron x step updates (neuron layers); gates: gate evaluations, each one
        neuron update.
    spikes: spikes emitted (neuron layers; gates: gates that fired, the 1 bits produced).
    synaptic_ops: effective synaptic operations: nonzero input x nonzero weight for synapse
        layers ("ann"/"mac": multiply-accumulates, "ac": accumulates), spikes x fan-out for gates
        (input spikes included). Read as :attr:`macs` or :attr:`acs` by kind.
    dense_ops: the layer's operations if every input were nonzero (the ANN's MACs), all steps.
    input_events: nonzero inputs that reached the layer (spikes arriving at synapses).
    outputs: values the layer produced, all steps (exact networks: values computed, "lanes").
    device_reads: synapse-device reads (TTFS with optoelectronic synapses: one per synaptic event).
    gate_evaluations: threshold gates evaluated (kind "gates").
    by_step: entry t is the spikes (neuron layers) or synaptic operations (synapse layers) at
        step t, summed over the samples.

    Sizes: neurons (neurons of the population per sample; 0 for synapse and gate layers),
    parameters (weights stored by the layer), timesteps (time steps per sample: 1 for layers that
    compute once, e.g. a synapse layer fed a constant input or an exact network).
    samples: how many samples the totals cover (1 in a :meth:`per_inference` row).

    ``isospike.LayerStats`` is this class (the name ``SpikingNetwork.layer_stats()`` rows had before
    the records were merged).
    """

    name: str
    kind: str
    _: KW_ONLY
    neurons: int = 0
    neuron_updates: float = 0
    spikes: float = 0
    synaptic_ops: float = 0
    dense_ops: float = 0
    timesteps: int = 1
    samples: int = 0
    by_step: list[float] = field(default_factory=list)
    input_events: float = 0
    outputs: float = 0
    parameters: int = 0
    device_reads: float = 0
    gate_evaluations: float = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"LayerActivity kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    # ------------------------------------------------------------------ views
    @property
    def macs(self) -> float:
        """Multiply-accumulates: the synaptic operations of "ann" and "mac" layers (else 0)."""
        return self.synaptic_ops if self.kind in ("ann", "mac") else 0

    @property
    def acs(self) -> float:
        """Accumulates: the synaptic operations of "ac" and "gates" layers (else 0)."""
        return self.synaptic_ops if self.kind in ("ac", "gates") else 0

    @property
    def spikes_by_step(self) -> list[float]:
        """Spikes at each step (neuron layers; empty otherwise)."""
        return list(self.by_step) if self.kind == "neuron" else []

    @property
    def spikes_per_neuron_step(self) -> float:
        """Firing rate in spikes per neuron update (gates: per gate evaluation); 0 without updates."""
        return self.spikes / self.neuron_updates if self.neuron_updates else 0.0

    def per_inference(self, samples: int | None = None) -> LayerActivity:
        """This row for one sample: every total divided by ``samples`` (default: the samples it
        covers; a network normalizes by the batch it was called on). Sizes are kept."""
        n = self.samples if samples is None else samples
        if n <= 0:
            raise ValueError(f"per-inference activity needs at least one sample, layer {self.name!r} covers {n}")
        scaled = {k: getattr(self, k) / n for k in _TOTALS}
        return replace(self, samples=1, by_step=[v / n for v in self.by_step], **scaled)

    def alongside(self, other: LayerActivity) -> LayerActivity:
        """One row for two populations of the same layer on the same samples and window (a split
        channel's two populations): neurons, parameters and every total add; ``by_step`` adds step
        by step."""
        if (other.kind, other.samples, other.timesteps) != (self.kind, self.samples, self.timesteps):
            raise ValueError(f"cannot place a {other.kind} row of {other.samples} samples x {other.timesteps} steps "
                             f"beside a {self.kind} row of {self.samples} x {self.timesteps}")
        steps = [a + b for a, b in zip(self.by_step, other.by_step, strict=True)]
        totals = {k: getattr(self, k) + getattr(other, k) for k in _TOTALS}
        return replace(self, neurons=self.neurons + other.neurons, parameters=self.parameters + other.parameters,
                       by_step=steps, **totals)

    def add(self, other: LayerActivity) -> None:
        """Add the counts of ``other`` (the same layer on more samples, e.g. another chunk of a batch)."""
        if (other.name, other.kind) != (self.name, self.kind):
            raise ValueError(f"cannot add layer {other.name!r} ({other.kind}) to {self.name!r} ({self.kind})")
        for k in _TOTALS:
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.samples += other.samples
        a, b = self.by_step, other.by_step
        self.by_step = [x + y for x, y in zip(a, b)] + a[len(b):] + b[len(a):]
        self.neurons = max(self.neurons, other.neurons)
        self.parameters = max(self.parameters, other.parameters)
        self.timesteps = max(self.timesteps, other.timesteps)


#: The record's former name (``SpikingNetwork.layer_stats()`` and ``isospike.simulate(...).layers``
#: rows): the same class.
LayerStats = LayerActivity
