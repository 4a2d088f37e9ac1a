"""One scoped observer of what a network does, layer by layer:

    with isospike.counting(net) as c:
        y = net(x)
    c.layers        # {layer path: LayerActivity}, totals over c.samples samples
    c.spikes, c.synaptic_ops, c.per_inference()

Counting is off by default and costs nothing then: the observer attaches forward hooks for the
duration of the block and removes them after, and no module keeps a counter. What a module did in
one call is computed from that call's inputs and output by the module itself
(:class:`Countable`: spiking populations, synapses of converted networks, exact gate networks,
TTFS quantizers). Modules that count work only they can see during their forward (the TTFS
transformer's attention) take a sink for the block (:class:`RecordsActivity`). A network with no
countable module is counted as an ANN: its Linear, convolution and average-pooling layers, with
NeuroBench's conventions (effective operations = nonzero input x nonzero weight).

Rows name their layer by module path (a module's own rows may add a sub-path, e.g. the modules of
an exact network). Each row holds totals over the samples it saw; a layer that sees several rows
per input sample (``[batch, tokens, features]`` reshaped to ``[batch * tokens, features]``)
is normalized to the samples the network was called on, its neurons counted per sample.

This module imports only the activity record and the operation counts (both leaves).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten

from isospike.activity import LayerActivity
from isospike.opcount import connection_count, dense_connections, inner_padding

__all__ = ["ANN_LAYERS", "Countable", "Counting", "RecordsActivity", "counting", "leading_samples"]

# the layers of a plain ANN whose operations are counted (their own work is a weighted sum)
ANN_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
              nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)

ROOT = "<model>"  # the name of rows a network's root module reports about itself


@runtime_checkable
class Countable(Protocol):
    """A module that says what one of its calls did, from that call's positional inputs and
    output: rows whose ``samples`` are the rows the call processed (leading dimension, one step),
    named relative to the module ("" for itself)."""

    def activity(self, args: tuple, output: Any) -> LayerActivity | Iterable[LayerActivity] | None: ...


@runtime_checkable
class RecordsActivity(Protocol):
    """A module that records rows during its forward (work only its forward sees): it sends them
    to every attached sink, and records nothing while none is attached. Returns the detacher."""

    def attach_activity_sink(self, sink: Callable[[LayerActivity], None]) -> Callable[[], None]: ...


def leading_samples(args: Any) -> int:
    """The samples of a call: the leading size of its first tensor input (1 for a scalar; 0 when
    it has no tensor input)."""
    first = next((v for v in tree_flatten(args)[0] if isinstance(v, Tensor)), None)
    if first is None:
        return 0
    return int(first.shape[0]) if first.dim() else 1


@dataclass
class Counting:
    """What a network did inside a :func:`counting` block.

    samples: input samples the network was called on (summed over calls; the leading size of
    its first tensor input). calls: calls of the network. layers: per layer path, its
    :class:`~isospike.activity.LayerActivity`, totals over the samples (read it after the block;
    sizes per sample, see the module docstring)."""

    samples: int = 0
    calls: int = 0
    _rows: dict[str, LayerActivity] = field(default_factory=dict, repr=False)
    _order: dict[str, int] = field(default_factory=dict, repr=False)

    def add(self, row: LayerActivity, rank: int = 0) -> None:
        """Add one call's row (``row.samples``: the rows it processed)."""
        if row.name in self._rows:
            self._rows[row.name].add(row)
        else:
            self._rows[row.name] = replace(row, by_step=list(row.by_step))
            self._order[row.name] = rank

    @property
    def layers(self) -> dict[str, LayerActivity]:
        out = {}
        for name in sorted(self._rows, key=lambda n: self._order[n]):
            row = self._rows[name]
            rows_seen, samples = row.samples, self.samples
            if samples and rows_seen > samples and rows_seen % samples == 0:  # several rows per sample
                per = rows_seen // samples
                row = replace(row, neurons=row.neurons * per, samples=samples, by_step=list(row.by_step))
            else:
                row = replace(row, by_step=list(row.by_step))
            out[name] = row
        return out

    def per_inference(self) -> list[LayerActivity]:
        """Each row for one sample (counts divided by :attr:`samples`)."""
        if self.samples <= 0:
            raise ValueError("per-inference activity needs at least one input sample; the network saw none")
        return [row.per_inference(self.samples) for row in self.layers.values()]

    @property
    def spikes(self) -> int:
        """Spikes of every neuron layer (gates: gates that fired)."""
        return int(sum(r.spikes for r in self._rows.values() if r.kind in ("neuron", "gates")))

    @property
    def synaptic_ops(self) -> int:
        return int(sum(r.synaptic_ops for r in self._rows.values()))


def _full_name(path: str, relative: str) -> str:
    if not path:
        return relative or ROOT
    return path if relative in ("", ROOT) else f"{path}.{relative}"


def _ann_row(m: nn.Module, args: tuple, y: Any) -> LayerActivity | None:
    """A plain layer's call (kind "ann"): every value computed, effective = nonzero inputs."""
    x = args[0] if args else None
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        return None
    with torch.no_grad():
        active = (x != 0).to(torch.float64)
        pad = inner_padding(m, x, y)  # a convolution that pads inside its own forward
        if pad:
            active = F.pad(active, pad)
        w = getattr(m, "weight", None)
        return LayerActivity("", "ann", synaptic_ops=float(connection_count(m, active).sum()),
                             dense_ops=dense_connections(m, x, pad) * (x.shape[0] if x.dim() else 1),
                             input_events=float(active.sum()), outputs=y.numel(),
                             parameters=int(w.numel()) if isinstance(w, Tensor) else 0,
                             samples=x.shape[0] if x.dim() else 1)


def _activity(m: Any, args: tuple, out: Any) -> Any:
    return m.activity(args, out)


def _sink(record: Counting, path: str, rank: int) -> Callable[[LayerActivity], None]:
    return lambda row: record.add(replace(row, name=_full_name(path, row.name)), rank)


def _unwrap(net: Any) -> nn.Module:
    """The module whose calls are observed: the one a ``torch.compile`` wrapper runs, and within
    it the module a network names as its ``observed_root`` (a converted network's graph, whose
    calls carry the samples and whose paths name the layers)."""
    net = getattr(net, "_orig_mod", net)
    return getattr(net, "observed_root", net)


@contextlib.contextmanager
def counting(net: nn.Module) -> Iterator[Counting]:
    """Count what ``net`` does inside the block (see the module docstring). ``net``: any module
    (a converted or exact network, the TTFS transformer, a plain ANN, or a ``torch.compile``
    wrapper of one: observed calls of a compiled wrapper run its module eagerly, since the counts
    are Python-side work a compiled graph would skip; the outputs are the same). Nested blocks on
    the same network each get the full counts."""
    root = _unwrap(net)
    if not isinstance(root, nn.Module):
        raise TypeError(f"isospike.counting observes an nn.Module, got {type(net).__name__}")
    record = Counting()
    modules = list(root.named_modules())
    for _, m in modules:
        check = getattr(m, "check_counting", None)
        if callable(check):
            check()  # a network that cannot count says so before any costly run
    countable = {path for path, m in modules if isinstance(m, Countable)}
    reporters = [(path, m) for path, m in modules if isinstance(m, RecordsActivity)]
    # countable modules inside another countable one are its business (an exact network's copies),
    # and so are those inside a module that records for its submodules (a site-coded network's sites)
    owners = countable | {p for p, m in reporters if getattr(m, "records_submodules", False)}
    inside = {p for p in countable if any(c != p and (c == "" or p.startswith(c + ".")) for c in owners)}
    rank = {path: i for i, (path, _) in enumerate(modules)}
    handles: list[Any] = []
    detachers: list[Callable[[], None]] = []
    compiled_forward = vars(net).get("forward") if hasattr(net, "_orig_mod") else None

    def hook(path: str, fn: Callable[[nn.Module, tuple, Any], Any]) -> Callable:
        def observe(m: nn.Module, args: tuple, out: Any) -> None:
            rows = fn(m, args, out)
            if rows is None:
                return
            for row in [rows] if isinstance(rows, LayerActivity) else rows:
                record.add(replace(row, name=_full_name(path, row.name)), rank[path])
        return observe

    def root_call(_m: nn.Module, args: tuple, kwargs: dict) -> None:
        record.samples += leading_samples((args, kwargs))
        record.calls += 1

    try:
        handles.append(root.register_forward_pre_hook(root_call, with_kwargs=True))
        if countable or reporters:
            for path, m in modules:
                if path in countable and path not in inside:
                    handles.append(m.register_forward_hook(hook(path, _activity)))
        else:  # a plain ANN
            for path, m in modules:
                if isinstance(m, ANN_LAYERS):
                    handles.append(m.register_forward_hook(hook(path, _ann_row)))
        if compiled_forward is not None:  # a torch.compile wrapper: its calls run the module eagerly, hooks firing
            eager: Any = net._orig_mod
            net.forward = eager.__call__
        for path, m in reporters:
            detachers.append(m.attach_activity_sink(_sink(record, path, rank[path])))
        yield record
    finally:
        if compiled_forward is not None:
            net.forward = compiled_forward
        for h in handles:
            h.remove()
        for detach in detachers:
            detach()
