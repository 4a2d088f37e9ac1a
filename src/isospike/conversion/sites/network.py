"""The network the site front end builds: a copy of any eager model, of the same class, whose
forward runs under :class:`~isospike.conversion.sites.capture.SiteCapture`.

    snn = isospike.convert(llm, coding="mttfs", calibration=[{"input_ids": ids}, ...])
    isinstance(snn, type(llm))            # True: same class, kwargs, generate(), KV cache
    snn.sites()                           # {site name: its population}
    isospike.equivalent(snn)              # the same class again, each site quantized (its QNN)

Nothing is traced: the converted copy's ``forward`` is the original one, so Python control flow,
``**kwargs``, decorators, caches and ``generate()`` behave as in the original; the capture routes
each weight-bearing operation's activation through its site's population.
"""

from __future__ import annotations

import copy
import functools
import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten

from isospike.activity import LayerActivity
from isospike.conversion.sites.capture import SiteCapture, active_site_capture, module_path_hooks
from isospike.observe import leading_samples

__all__ = ["CodedNetwork", "coded_copy"]


class CodedNetwork(nn.Module):
    """Base of the classes the site front end builds: ``Coded<Base>(CodedNetwork, Base)``, a copy
    of a model whose class derives from this one and from the original's, so it keeps the
    original's methods, attributes, call signature and return type.

    Attributes: ``coding`` (name), ``timesteps`` (each site's window), ``coded_products`` (the rule
    for products of two activations: "digital", "coded" or "binary"), ``info`` (conversion details, per site
    its scale and sign), ``quantized`` (True for the equivalent QNN: sites are quantizers),
    ``coding_options`` (the coding's options it was converted with; ``isospike.save`` stores them).
    :meth:`sites` gives each site's module by name."""

    _coded_base: type[nn.Module]
    coding: str
    timesteps: int
    coded_products: str
    quantized: bool
    info: dict[str, Any]
    coding_options: Any = None
    records_submodules = True  # isospike.counting: its sites report through it, named by site
    path_of: dict[int, str]
    _coded_sites: nn.ModuleList
    _coded_index: dict[str, int]
    _coded_sinks: list[Callable[[LayerActivity], None]]
    # set while calibrating: receives (site name, its channel axis, activation) instead of coding it
    _coded_record: Callable[[str, int | None, Tensor], None] | None = None

    # ------------------------------------------------------------------ sites
    def sites(self) -> dict[str, nn.Module]:
        """Each site's module (population, or quantizer in the equivalent network), by site name."""
        return {name: self._coded_sites[i] for name, i in self._coded_index.items()}

    def site_module(self, name: str) -> nn.Module:
        i = self._coded_index.get(name)
        if i is None:
            raise ValueError(f"the weight operation at {name!r} was not reached when this {self.coding} network was "
                             "calibrated, so it has no calibrated site; calibrate with inputs that take the same path "
                             "through the model (the same keyword arguments, e.g. attention_mask or use_cache)")
        return self._coded_sites[i]

    def set_sites(self, modules: dict[str, nn.Module]) -> None:
        """Place one module per site (calibration found the names). The sites are kept outside
        the model's module tree (a forward that iterates its children -- ``nn.Sequential`` --
        never meets them); they follow the model's ``.to()`` / ``.double()`` (:meth:`_apply`)."""
        self._coded_index = {name: i for i, name in enumerate(modules)}
        object.__setattr__(self, "_coded_sites", nn.ModuleList(modules.values()))

    def _apply(self, fn: Callable, recurse: bool = True) -> CodedNetwork:
        super()._apply(fn, recurse)
        if "_coded_sites" in self.__dict__:
            self._coded_sites._apply(fn, recurse)
        return self

    @property
    def source(self) -> str:
        return self._coded_base.__name__

    # ------------------------------------------------------------------ running
    def _run_coded(self, forward: Callable, args: tuple, kwargs: dict) -> Any:
        outer = active_site_capture()
        if outer is not None and outer.net is self:  # a nested call of its own forward: already captured
            return forward(self, *args, **kwargs)
        inputs = {id(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, Tensor)}
        self.path_of = module_path_hooks(self)  # submodules placed since conversion (crossbars) are adopted too
        record = self._coded_record
        rows = _Rows(self) if self._coded_sinks and record is None else None
        capture = SiteCapture(self, inputs, record=record, sink=rows.event if rows is not None else None)
        fast_path = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)  # nn.MultiheadAttention's fused kernel hides its linears
        try:
            with capture:
                out = forward(self, *args, **kwargs)
        except Exception:
            if capture.refused is not None:
                raise capture.refused from None
            raise
        finally:
            torch.backends.mha.set_fastpath_enabled(fast_path)
        if rows is not None:
            rows.emit(leading_samples((args, kwargs)) or 1)
        return out

    # ------------------------------------------------------------------ counting
    def attach_activity_sink(self, sink: Callable[[LayerActivity], None]) -> Callable[[], None]:
        """Send, after each call, its rows (see :class:`_Rows`) to ``sink``; returns the detacher
        (used by :func:`isospike.counting`)."""
        self._coded_sinks.append(sink)
        return lambda: self._coded_sinks.remove(sink)

    def extra_repr(self) -> str:
        kind = "quantized" if self.quantized else "spiking"
        return f"coding={self.coding}, sites={len(self._coded_index)} ({kind}), source={self.source}"


class _Rows:
    """One call's activity, gathered from the capture's events and sent to the sinks at the end:

    * ``<site>`` (kind "ac"): the site's weight operation driven by spikes -- synaptic events =
      spikes of each input neuron x its nonzero weights (``device_reads`` as many on a device);
    * ``<site>.input`` (kind "neuron"): the population coding the site's activation (once for
      sites fed the very same tensor by equal populations -- the Q, K, V projections of one input:
      one population drives them all, the row is the first site's);
    * ``<path>.product#k`` (kind "ac", products="binary"): the sign-selected additions each spike of
      the coded left operand drives (one per column of the binarized right operand);
    * ``<path>`` (kind "mac"): a weight operation fed the model's own input (direct coding);
    * ``<path>.digital`` (kind "mac"): the non-spiking work of the module at ``path``: products
      of two activations (multiply-accumulates) and every other operation that computes values
      (one per element produced: softmax, norms, GELU/SiLU, RoPE, residual additions)."""

    def __init__(self, net: CodedNetwork) -> None:
        self.net = net
        self.rows: dict[str, LayerActivity] = {}
        self.coded: list[tuple[Tensor, nn.Module]] = []  # (activation, population) of the sites run so far

    def _shared(self, x: Tensor, module: nn.Module) -> bool:
        """Whether an earlier site of this call coded the very same tensor with an equal population
        (the Q, K and V projections of one input): one population then drives every such site, and
        its neurons and spikes are counted once, at the first site."""
        for seen, population in self.coded:
            if seen is x and _same_population(population, module):
                return True
        self.coded.append((x, module))
        return False

    def _row(self, name: str, kind: str) -> LayerActivity:
        return self.rows.setdefault(name, LayerActivity(name, kind))

    def event(self, event: tuple) -> None:
        what = event[0]
        if what == "digital" or what == "product":
            _, path, ops, _rows = event
            row = self._row(f"{path or '<model>'}.digital", "mac")
            row.synaptic_ops += ops
            row.dense_ops += ops
        elif what == "site":
            _, name, module, x, coded, geometry, w, out = event
            if not hasattr(module, "activity"):  # a quantizer (the QNN): every quantized value is multiplied
                self._synapse(name, "mac", geometry, (coded.detach() != 0).to(torch.float64), x, w, out, reads=False)
                return
            if not self._shared(x, module):
                self._add(f"{name}.input", module.activity((x,), coded))
            self._synapse(name, "ac", geometry, module.events(x), x, w, out,
                          reads=getattr(module, "device", None) is not None)
        elif what == "operand":
            _, name, module, x, coded = event
            if hasattr(module, "activity"):
                self._add(f"{name}.input", module.activity((x,), coded))
        elif what == "binary":  # Otters' product: spikes of the coded left operand, sign-selected additions
            _, name, module, a, coded, b, out, path = event
            columns = int(b.shape[-1]) if b.dim() else 1
            if hasattr(module, "activity"):
                self._add(f"{name}.input", module.activity((a,), coded))
                events = module.events(a)
            else:  # a quantizer (the QNN): every nonzero quantized value is added
                events = (coded.detach() != 0).to(torch.float64)
            spiking = hasattr(module, "activity")
            ops = float(events.sum()) * columns
            row = LayerActivity(name.removesuffix(".a"), "ac" if spiking else "mac", synaptic_ops=ops,
                                dense_ops=float(a.numel() * columns), input_events=float(events.sum()),
                                outputs=out.numel(), samples=a.shape[0] if a.dim() else 1,
                                device_reads=ops if spiking and getattr(module, "device", None) is not None else 0)
            self._add(row.name, row)
            digital = self._row(f"{path or '<model>'}.digital", "mac")  # the binarization: |b|, its mean, the signs
            digital.synaptic_ops += b.numel()
            digital.dense_ops += b.numel()
        elif what == "input":
            _, path, geometry, x, w, out = event
            self._synapse(path or "<model>", "mac", geometry, (x.detach() != 0).to(torch.float64), x, w, out,
                          reads=False)

    def _add(self, name: str, row: LayerActivity) -> None:
        row.name = name
        if name in self.rows:
            self.rows[name].add(row)
        else:
            self.rows[name] = row

    def _synapse(self, name: str, kind: str, geometry: tuple, events: Tensor, x: Tensor, w: Tensor, out: Tensor,
                 reads: bool) -> None:
        with torch.no_grad():
            ops, dense = _connections(geometry, events, x, w)
        row = LayerActivity(name, kind, synaptic_ops=ops, dense_ops=dense, input_events=float(events.sum()),
                            outputs=out.numel(), parameters=w.numel(), samples=x.shape[0] if x.dim() else 1,
                            device_reads=ops if reads else 0)
        self._add(name, row)

    def emit(self, samples: int) -> None:
        for row in self.rows.values():
            if row.kind == "mac" and row.name.endswith(".digital"):
                row.samples = samples
            for sink in list(self.net._coded_sinks):
                sink(row)


def _same_population(a: nn.Module, b: nn.Module) -> bool:
    """Same type, settings, buffers and synapse device, submodules included."""
    plain = (int, float, bool, str, type(None))
    for (na, ma), (nb, mb) in zip(a.named_modules(), b.named_modules()):
        if na != nb or type(ma) is not type(mb) or getattr(ma, "device", None) is not getattr(mb, "device", None):
            return False
        if {k: v for k, v in vars(ma).items() if isinstance(v, plain)} != \
                {k: v for k, v in vars(mb).items() if isinstance(v, plain)}:
            return False
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa) and \
        len(list(a.modules())) == len(list(b.modules()))


def _connections(geometry: tuple, events: Tensor, x: Tensor, w: Tensor) -> tuple[float, float]:
    """(effective, dense) synaptic operations of a weight operation whose input neurons send
    ``events`` spikes each (NeuroBench's conventions: an event x each nonzero weight it reaches;
    dense: every input x every weight it meets)."""
    nz = (w.detach() != 0).to(torch.float64)
    if geometry[0] == "conv":
        _, stride, padding, dilation, groups = geometry
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[w.dim() - 2]
        if events.dim() == w.dim() - 1:  # an unbatched input
            events = events.unsqueeze(0)
        eff = conv(events, nz, None, stride, padding, dilation, groups).sum()
        dense = conv(torch.ones_like(events), torch.ones_like(nz), None, stride, padding, dilation, groups).sum()
        return float(eff), float(dense)
    if geometry[0] == "left":  # W @ x: input i of each column of x reaches the nonzero weights of column i of W
        fan = nz.reshape(-1, nz.shape[-2], nz.shape[-1]).sum((0, 1)) if nz.dim() > 2 else nz.sum(0)
        k = fan.numel()
        per_input = events.movedim(-2, -1).reshape(-1, k)
        out_rows = w.shape[-2]
        return float((per_input @ fan).sum()), float(per_input.shape[0] * k * out_rows)
    # x [..., in] times W: Linear's weight is [out, in]; x @ W's (and Conv1D's) is [..., in, out]
    k = x.shape[-1]
    if geometry[0] == "linear":
        fan, outs = nz.sum(0), w.shape[0]
    else:
        fan, outs = nz.reshape(-1, nz.shape[-2], nz.shape[-1]).sum((0, 2)), w.shape[-1]
    per_input = events.reshape(-1, k)
    return float((per_input @ fan).sum()), float(per_input.shape[0] * k * outs)


_CLASSES: dict[type, type] = {}


def _coded_class(base: type[nn.Module]) -> type:
    """``Coded<base>``: ``base`` whose forward runs under the site capture (signature kept for
    ``inspect``, which Hugging Face's generate() consults)."""
    if base not in _CLASSES:
        original = base.forward

        @functools.wraps(original)
        def forward(self: CodedNetwork, *args: Any, **kwargs: Any) -> Any:
            return self._run_coded(original, args, kwargs)

        _CLASSES[base] = type(f"Coded{base.__name__}", (CodedNetwork, base),
                              {"forward": forward, "__module__": __name__, "_coded_base": base})
    return _CLASSES[base]


def _carry_output_recording(source: type, coded: type) -> None:
    """transformers records hidden states and attentions for the classes in its output-capturing
    registry, keyed by class name: the Coded class gets its base's entry."""
    capturing = sys.modules.get("transformers.utils.output_capturing")
    registry = getattr(capturing, "_CAN_RECORD_REGISTRY", None)
    if isinstance(registry, dict) and str(source) in registry:
        dict.__setitem__(registry, str(coded), dict.__getitem__(registry, str(source)))


def coded_copy(model: nn.Module, coding: str, timesteps: int, products: str) -> CodedNetwork:
    """A copy of ``model`` (eval mode) of class ``Coded<type(model)>`` with no sites yet."""
    base = model._coded_base if isinstance(model, CodedNetwork) else type(model)
    net = copy.deepcopy(model)
    already = isinstance(net, CodedNetwork)
    net.__class__ = _coded_class(base)
    _carry_output_recording(base, net.__class__)
    assert isinstance(net, CodedNetwork)  # its class now derives from CodedNetwork
    net.coding = coding
    net.timesteps = int(timesteps)
    net.coded_products = products
    net.quantized = False
    net.info = {}
    net._coded_sinks = []
    if not already:
        module_path_hooks(net)
        net.set_sites({})
    return net.eval()
