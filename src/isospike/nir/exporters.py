"""What each operation of a converted network becomes in NIR: one entry per module type or function.

:func:`isospike.nir.export` walks the network's fx graph and, for each node, calls the entry that
:func:`exporter_for` finds in these tables:

* ``GRAPH``: the graph's input (``placeholder``) and ``output``;
* ``MODULES``: a called module's type (its most specific class in the table, so subclasses are
  covered); ``CountingSynapse`` hands its layer on to ``LAYERS`` (Linear, Conv1d/2d, pooling);
* ``FUNCTIONS``: a called function (``operator.add``, ``F.avg_pool2d``...), ``FUNCTION_NAMES``
  by its name; ``METHODS``: a tensor method by name (``x.flatten(1)``).

An entry takes the walk's state (:class:`Export`) and the fx node; it adds the node's NIR node with
:meth:`Export.emit` (or passes its input on with :meth:`Export.alias`) and records the value a
spike of its output carries. Exporting a new module type is one function and one table entry.

NIR's spikes carry 1, isospike's carry the population's spike value (theta): the weights a
population drives are multiplied by it (:func:`_scale_for`), and spikes that reach a sum or the
output go through an explicit ``nir.Scale`` (:meth:`Export.valued`).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import nir
import numpy as np
import torch
from torch import fx, nn

from isospike.conversion.coding import population_codecs
from isospike.conversion.graph import node_path
from isospike.conversion.timefold import CountingSynapse, TimeBroadcast
from isospike.neurons.populations import SpikingPopulation, TimeFoldedNeuron
from isospike.nir.tables import META, by_class
from isospike.serialize.modules import write_module

NO_NODE_FIX = "isospike.save keeps any converted network exactly; NIR covers Linear, Conv1d/2d, AvgPool2d, Flatten, sums"

Scale = float | torch.Tensor  # the value each spike of a tensor carries (per channel for a tensor)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


@dataclass
class Export:
    """The NIR graph under construction while :func:`isospike.nir.export` walks ``gm``."""

    gm: fx.GraphModule
    coding: str
    nodes: dict[str, Any] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    producers: dict[fx.Node, list[str]] = field(default_factory=dict)  # the NIR nodes computing an fx node
    spike_scale: dict[fx.Node, Scale] = field(default_factory=dict)  # value each spike of this tensor carries
    approximate: bool = False  # a population without a NIR primitive was exported as an IF node
    foreign_differs: list[str] = field(default_factory=list)  # IF nodes a standard NIR reader runs differently

    def module(self, node: fx.Node) -> nn.Module:
        return self.gm.get_submodule(str(node.target))

    def scale(self, node: fx.Node) -> Scale:
        return self.spike_scale.get(node, 1.0)

    @staticmethod
    def sample_shape(node: fx.Node) -> tuple[int, ...] | None:
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape[1:]) if meta is not None and hasattr(meta, "shape") else None

    def connect(self, name: str, node: fx.Node) -> None:
        """Edges into NIR node ``name`` from what computes each tensor argument of ``node``."""
        for src in node.args:
            if isinstance(src, fx.Node):
                for p in self.producers.get(src, []):
                    self.edges.append((p, name))

    def emit(self, node: fx.Node, name: str, nir_node: Any, scale: Scale | None = None) -> None:
        """``nir_node`` (named ``name``) computes ``node`` from its arguments; a spike of its output
        carries ``scale`` (None: 1, the value of a NIR spike or of a non-spike value)."""
        self.nodes[name] = nir_node
        if scale is not None:
            self.spike_scale[node] = scale
        self.connect(name, node)
        self.producers[node] = [name]

    def alias(self, node: fx.Node, src: fx.Node) -> None:
        """``node`` computes what ``src`` does (no NIR node of its own)."""
        self.producers[node] = self.producers.get(src, [])
        self.spike_scale[node] = self.scale(src)

    def valued(self, node: fx.Node, tag: str) -> list[str]:
        """Producers of ``node`` in value units: NIR spikes carry 1, so spikes worth theta that
        reach a sum or the output go through an explicit nir.Scale."""
        sc = self.scale(node)
        if not isinstance(sc, torch.Tensor) and sc == 1.0:
            return list(self.producers.get(node, []))
        shape = self.sample_shape(node) or ()
        factor = np.broadcast_to(np.asarray(sc.detach().cpu() if isinstance(sc, torch.Tensor) else sc,
                                            dtype=np.float32).reshape(_broadcastable(sc, shape)), shape).copy()
        name = f"scale_{tag}"
        self.nodes[name] = nir.Scale(scale=factor)
        self.edges.extend((p, name) for p in self.producers.get(node, []))
        return [name]


Exporter = Callable[[Export, fx.Node], None]
LayerExporter = Callable[[Export, fx.Node, Any], None]


def _module_name(node: fx.Node) -> str:
    return str(node.target).replace(".", "_")


def _source(node: fx.Node) -> fx.Node:
    """The tensor a node computes from (a module's checked by :func:`exporter_for`)."""
    return cast(fx.Node, node.args[0])


# ------------------------------------------------------------------ the graph's ends
def _input(ex: Export, node: fx.Node) -> None:
    shape = ex.sample_shape(node)
    if shape is None:
        raise ValueError("the network has no recorded input shape: convert it with calibration data "
                         "(isospike.convert(..., calibration=x)) before exporting to NIR")
    ex.nodes["input"] = nir.Input(input_type={"input": np.array(shape)})
    ex.producers[node] = ["input"]


def _output(ex: Export, node: fx.Node) -> None:
    out = node.args[0]
    if not isinstance(out, fx.Node):
        raise TypeError(f"NIR graphs have one output tensor; this network returns a {type(out).__name__}: "
                        "export a model whose forward returns a single tensor")
    ex.nodes["output"] = nir.Output(output_type={"output": np.array(ex.sample_shape(out) or ())})
    for p in ex.valued(out, "output"):
        ex.edges.append((p, "output"))


# ------------------------------------------------------------------ modules
def _pass_through(ex: Export, node: fx.Node) -> None:
    """Modules that change nothing NIR sees (time broadcast, Identity, Dropout in eval)."""
    ex.alias(node, _source(node))


def _synapse(ex: Export, node: fx.Node) -> None:
    """A synapse layer: its layer's entry in ``LAYERS``."""
    layer = cast(CountingSynapse, ex.module(node)).layer
    exporter = by_class(LAYERS, type(layer))
    if exporter is None:
        raise TypeError(f"no NIR node for {type(layer).__name__} at '{node.target}'; " + NO_NODE_FIX)
    exporter(ex, node, layer)


def _if_population(ex: Export, node: fx.Node) -> None:
    """Rate coding's IF neurons -> nir.IF; reset by subtraction, the initial membrane, the spike
    value and the leak in the node's metadata (a standard reader resets to 0, from 0)."""
    n = cast(TimeFoldedNeuron, ex.module(node)).neuron
    name = _module_name(node)
    shape = ex.sample_shape(node) or tuple(n.threshold.shape)
    th = np.broadcast_to(_np(n.threshold), shape).copy()
    meta = {"coding": "rate", "reset": n.reset_mode, "v_init": _np(n.v_init).tolist(),
            "spike_value": _np(n.spike_value).tolist(), "leak": n.leak}
    ex.emit(node, name, nir.IF(r=np.ones(shape, np.float32), v_threshold=th, v_reset=np.zeros(shape, np.float32),
                               metadata={META: json.dumps(meta)}), scale=n.spike_value.detach().clone())
    if n.reset_mode == "subtract" or bool((n.v_init != 0).any()) or n.leak != 1.0:
        ex.foreign_differs.append(name)


def _coded_population(ex: Export, node: fx.Node) -> None:
    """A registered coding's population (TTFS, M-TTFS, sigma-delta...): no NIR primitive; an IF
    node standard readers approximate it with, its metadata holding the population as a saved
    file does."""
    m = cast(SpikingPopulation, ex.module(node))
    if type(m).__name__ not in population_codecs():
        raise TypeError(f"no NIR node for {type(m).__name__} at '{node.target}'; " + NO_NODE_FIX)
    ex.approximate = True
    shape = ex.sample_shape(node) or ()
    spec = write_module(m, {})
    buffers = {k: v.tolist() for k, v in m.state_dict().items()}
    level = m.nir_threshold()
    ex.emit(node, _module_name(node), nir.IF(
        r=np.ones(shape, np.float32), v_threshold=np.full(shape, level, np.float32), v_reset=np.zeros(shape, np.float32),
        metadata={META: json.dumps({"coding": ex.coding, "population": spec, "buffers": buffers})}), scale=1.0)


def _flatten_module(ex: Export, node: fx.Node) -> None:
    m = cast(nn.Flatten, ex.module(node))
    src = _source(node)
    ex.emit(node, _module_name(node), nir.Flatten(input_type={"input": np.array(ex.sample_shape(src) or ())},
                                                  start_dim=m.start_dim - 1,
                                                  end_dim=m.end_dim if m.end_dim < 0 else m.end_dim - 1),
            scale=ex.scale(src))


# ------------------------------------------------------------------ a synapse's layer
def _linear(ex: Export, node: fx.Node, layer: nn.Linear) -> None:
    w = layer.weight * _scale_for(ex.scale(_source(node)), layer.weight, dim=1)
    ex.emit(node, _module_name(node),
            nir.Affine(_np(w), _np(layer.bias)) if layer.bias is not None else nir.Linear(_np(w)))


def _conv(ex: Export, node: fx.Node, layer: nn.Conv1d | nn.Conv2d) -> None:
    src = _source(node)
    w = layer.weight * _scale_for(ex.scale(src), layer.weight, dim=1)
    cls = nir.Conv2d if isinstance(layer, nn.Conv2d) else nir.Conv1d
    bias = _np(layer.bias) if layer.bias is not None else np.zeros(layer.out_channels, np.float32)
    in_shape = ex.sample_shape(src)
    spatial = None if not in_shape else (int(in_shape[-1]) if cls is nir.Conv1d else np.array(in_shape[1:]))
    padding = np.array(_conv_padding(layer, str(node.target)))
    ex.emit(node, _module_name(node), cls(input_shape=spatial, weight=_np(w), stride=np.array(layer.stride),
                                          padding=padding, dilation=np.array(layer.dilation), groups=layer.groups,
                                          bias=bias))


def _avg_pool(ex: Export, node: fx.Node, layer: nn.AvgPool2d | nn.AdaptiveAvgPool2d) -> None:
    src = _source(node)
    # averaging keeps the units of its input
    ex.emit(node, _module_name(node), _avg_pool_node(layer, ex.sample_shape(src), str(node.target)),
            scale=ex.scale(src))


# ------------------------------------------------------------------ functions and methods
def _avg_pool_function(ex: Export, node: fx.Node) -> None:
    """``F.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)``."""
    src = _source(node)
    kernel = node.args[1] if len(node.args) > 1 else node.kwargs["kernel_size"]
    stride = node.args[2] if len(node.args) > 2 else node.kwargs.get("stride")
    padding = node.args[3] if len(node.args) > 3 else node.kwargs.get("padding", 0)
    options = [node.args[i] if len(node.args) > i else node.kwargs.get(k, d)
               for i, k, d in ((4, "ceil_mode", False), (5, "count_include_pad", True), (6, "divisor_override", None))]
    layer = nn.AvgPool2d(kernel, stride, padding, *options)  # type: ignore[arg-type]  # fx arguments, checked there
    ex.emit(node, f"avgpool_{node.name}", _avg_pool_node(layer, ex.sample_shape(src), node.name), scale=ex.scale(src))


def _sum(ex: Export, node: fx.Node) -> None:
    """NIR sums converging edges; spikes fed straight into the sum need their value (theta) as an
    explicit nir.Scale, since NIR spikes carry 1."""
    ex.producers[node] = []
    for i, a in enumerate(x for x in node.args if isinstance(x, fx.Node)):
        ex.producers[node].extend(ex.valued(a, f"{node.name}_{i}"))
    ex.spike_scale[node] = 1.0


def _flatten_function(ex: Export, node: fx.Node) -> None:
    """``torch.flatten(x, 1)``, ``x.flatten(1)``, ``x.view(n, -1)``, ``x.reshape(n, -1)``: one
    sample flattened."""
    src = _source(node)
    ex.emit(node, f"flatten_{node.name}",
            nir.Flatten(input_type={"input": np.array(ex.sample_shape(src) or ())}, start_dim=0, end_dim=-1),
            scale=ex.scale(src))


# ------------------------------------------------------------------ the tables
GRAPH: dict[str, Exporter] = {"placeholder": _input, "output": _output}

MODULES: dict[type, Exporter] = {
    TimeBroadcast: _pass_through,
    nn.Identity: _pass_through,
    nn.Dropout: _pass_through,
    CountingSynapse: _synapse,
    TimeFoldedNeuron: _if_population,
    SpikingPopulation: _coded_population,
    nn.Flatten: _flatten_module,
}

LAYERS: dict[type, LayerExporter] = {
    nn.Linear: _linear,
    nn.Conv1d: _conv,
    nn.Conv2d: _conv,
    nn.AvgPool2d: _avg_pool,
    nn.AdaptiveAvgPool2d: _avg_pool,
}

FUNCTIONS: dict[Any, Exporter] = {
    torch.nn.functional.avg_pool2d: _avg_pool_function,
    operator.add: _sum,
    torch.add: _sum,
}
FUNCTION_NAMES: dict[str, Exporter] = {"flatten": _flatten_function}  # torch.flatten, Tensor.flatten
METHODS: dict[str, Exporter] = {"flatten": _flatten_function, "view": _flatten_function, "reshape": _flatten_function}

def exporter_for(ex: Export, node: fx.Node) -> Exporter:
    """The table entry that exports ``node``; a TypeError naming it and the fix when none does."""
    if node.op == "call_module":
        return _module_exporter(ex, node)
    found: Exporter | None
    if node.op == "call_function":
        found = FUNCTIONS.get(node.target) or FUNCTION_NAMES.get(getattr(node.target, "__name__", ""))
    elif node.op == "call_method":
        found = METHODS.get(str(node.target))
    else:
        found = GRAPH.get(node.op)
    if found is None:
        what = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
        raise TypeError(f"NIR has no node for the operation {what!r} at '{node_path(node)}' ({node.op}); NIR export "
                        "takes Linear/Conv/AvgPool layers, populations, additions and flattening: convert a model "
                        "without it to export, or save the network with isospike.save instead")
    return found


def _module_exporter(ex: Export, node: fx.Node) -> Exporter:
    m = ex.module(node)
    if not node.args or not isinstance(node.args[0], fx.Node):
        raise TypeError(f"module '{node.target}' takes no tensor input; NIR nodes take one")
    found = by_class(MODULES, type(m))
    if found is None:
        raise TypeError(f"no NIR node for {type(m).__name__} at '{node.target}'; " + NO_NODE_FIX)
    return found


# ------------------------------------------------------------------ helpers of the entries
def _broadcastable(scale: Scale, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape that broadcasts a scalar or per-channel factor over a sample of ``shape``."""
    if not isinstance(scale, torch.Tensor) or scale.numel() == 1:
        return ()
    return (scale.numel(),) + (1,) * (len(shape) - 1)


def _conv_padding(layer: nn.Conv1d | nn.Conv2d, where: str) -> tuple[int, ...]:
    """Explicit zero padding of a convolution ('same' / 'valid' resolved); other padding modes
    have no NIR form."""
    if layer.padding_mode != "zeros":
        raise TypeError(f"convolution at '{where}' pads with {layer.padding_mode!r}; NIR convolutions pad with zeros "
                        "only; " + NO_NODE_FIX)
    kernel, dilation = tuple(int(k) for k in layer.kernel_size), tuple(int(d) for d in layer.dilation)
    if layer.padding == "valid":
        return (0,) * len(kernel)
    if layer.padding == "same":
        totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
        if any(t % 2 for t in totals):
            raise TypeError(f"convolution at '{where}' uses padding='same' with an even kernel (asymmetric padding), "
                            "which NIR cannot express; " + NO_NODE_FIX)
        return tuple(t // 2 for t in totals)
    return tuple(int(p) for p in layer.padding)


def _avg_pool_node(layer: nn.Module, in_shape: tuple[int, ...] | None, where: str) -> Any:
    """nir.AvgPool2d for an average pooling (adaptive ones when the output divides the input)."""

    def pair(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    if isinstance(layer, nn.AdaptiveAvgPool2d):
        out = pair(layer.output_size)
        if in_shape is None or any(o is None for o in out) or any(i % o for i, o in zip(in_shape[-2:], out)):
            raise TypeError(f"adaptive average pooling at '{where}' has no fixed NIR kernel for input {in_shape} -> {out}")
        k = tuple(i // o for i, o in zip(in_shape[-2:], out))
        return nir.AvgPool2d(kernel_size=np.array(k), stride=np.array(k), padding=np.array((0, 0)))
    padded = any(pair(layer.padding))
    if layer.ceil_mode or layer.divisor_override is not None or (padded and not layer.count_include_pad):
        raise TypeError(f"average pooling at '{where}' uses ceil_mode, divisor_override or count_include_pad=False, "
                        "which NIR's AvgPool2d cannot express; " + NO_NODE_FIX)
    k = pair(layer.kernel_size)
    st = pair(layer.stride if layer.stride is not None else layer.kernel_size)
    return nir.AvgPool2d(kernel_size=np.array(k), stride=np.array(st), padding=np.array(pair(layer.padding)))


def _scale_for(scale: Scale, weight: torch.Tensor, dim: int) -> torch.Tensor | float:
    """Per-input-channel spike values broadcast over a weight's input dimension."""
    if not isinstance(scale, torch.Tensor) or scale.numel() == 1:
        return float(scale) if not isinstance(scale, torch.Tensor) else float(scale.reshape(()))
    s = scale.reshape(-1)
    if weight.dim() == 2 and weight.shape[1] != s.numel():  # flattened feature maps: repeat per position
        s = s.repeat_interleave(weight.shape[1] // s.numel())
    shape = [1] * weight.dim()
    shape[dim] = -1
    return s.reshape(shape)
