"""Counting what the gate circuits do, for the energy model.

    with isospike.exact.counting() as counts:
        y = isospike.exact.mul(a, b)
    counts.spikes, counts.gate_evaluations, counts.by_op["mul"]

Counters are explicit and scoped: only code inside the ``with`` block is counted, and
counting (a population count per gate) is off otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from isospike.activity import LayerActivity


@dataclass
class OpCounts:
    """Activity of one kind of operation.

    calls: calls made; lanes: values computed (elements); gate_evaluations: neurons evaluated
    (gates x lanes); spikes: gates that fired (1 bits produced); synaptic_events: spikes x
    fan-out (input spikes included): the synaptic operations the spikes cause."""

    calls: int = 0
    lanes: int = 0
    gate_evaluations: int = 0
    spikes: int = 0
    synaptic_events: int = 0

    def add(self, other: OpCounts) -> None:
        self.calls += other.calls
        self.lanes += other.lanes
        self.gate_evaluations += other.gate_evaluations
        self.spikes += other.spikes
        self.synaptic_events += other.synaptic_events

    def activity(self, name: str, samples: int) -> LayerActivity:
        """These counts as the common activity record: a row of kind "gates" holding the gates
        evaluated (``gate_evaluations``, and as ``neuron_updates``: each gate is one IF neuron updated
        once), the gates that fired (``spikes``), the synaptic events (``synaptic_ops``) and the values
        computed (``outputs``), totals over ``samples`` samples in one time step."""
        return LayerActivity(name, "gates", neuron_updates=self.gate_evaluations, spikes=self.spikes,
                             synaptic_ops=self.synaptic_events, outputs=self.lanes, samples=samples,
                             gate_evaluations=self.gate_evaluations)


@dataclass
class ExactCounts(OpCounts):
    """Totals over all operations, plus ``by_op``: operation name -> :class:`OpCounts`."""

    by_op: dict[str, OpCounts] = field(default_factory=dict)

    def record(self, op: str, counts: OpCounts) -> None:
        self.add(counts)
        self.by_op.setdefault(op, OpCounts()).add(counts)


_local = threading.local()


def active_counters() -> list[ExactCounts]:
    return getattr(_local, "stack", [])


@contextmanager
def counting() -> Iterator[ExactCounts]:
    """Count the gate activity of every exact operation run inside the block (this thread)."""
    counts = ExactCounts()
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(counts)
    try:
        yield counts
    finally:
        # by identity: two counters with equal totals are equal dataclasses, and list.remove
        # would take the first of them (an enclosing counter) out of the stack
        del stack[next(i for i, c in enumerate(stack) if c is counts)]
