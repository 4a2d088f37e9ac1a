"""NIR graphs that other tools run as they are: one profile per reader.

NIR names neurons and layers, but each library reads them its own way (measured on snnTorch 1.0,
Norse 1.1, sinabs 3.1, rockpool 3.1, nirtorch 2.6):

* snnTorch maps ``nir.IF`` to a leaky ``Leaky(beta=0.9)`` whose tuple output breaks the next layer;
  its ``nir.LIF`` is ``Leaky(beta = 1 - 1e-4 / tau)`` resetting to zero. Its Flatten takes NIR's
  per-sample dimensions as torch's (``start_dim=0`` flattens the batch).
* Norse runs ``nir.IF`` as NIR defines it (reset to ``v_reset``, from 0) but drops ``nir.AvgPool2d``
  and ``nir.Scale`` silently.
* sinabs runs ``nir.IF`` as ``IAF`` resetting by subtraction, several spikes per step, membrane
  clipped at ``-v_threshold``; its ``nir.LIF`` (``alpha = exp(-1 / tau)``) is the same without the
  clip. It reads no ``nir.Linear``, ``AvgPool2d`` or ``Scale``.
* rockpool reads ``Linear``/``Affine`` and ``CubaLIF`` only (its ``nir.LIF`` needs a ``tau_mem``
  field the node has not): ``LIFTorch``, exponential decays with ``dt = tau_mem / (1 + r)``,
  ``I <- exp(-dt / tau_syn) (I + x)``, reset by subtraction, several spikes per step.
* Norse, sinabs and rockpool run the graph with ``nirtorch.load``, which orders nodes depth
  first: a node reached along one branch before the other branch is computed reads that branch's
  value of the previous step.
* none of them builds a grouped convolution (they take ``weight.shape[1]`` as the input channels).

:func:`for_reader` rewrites a standard export (:func:`isospike.nir.export`) into the nodes a
reader maps to the dynamics of the exported network, exactly where the reader allows it: average
pooling as a convolution with a diagonal kernel, the spike value of spikes entering a sum folded
into the sum's neuron (threshold and other inputs divided by it) instead of a ``nir.Scale``,
Flatten with negative dimensions (right in both conventions), ``Linear`` as ``Affine``, and each
IF population as the neuron node the reader runs as that population: IF (Norse, nirtorch), a
``LIF`` whose leak underflows to none (snnTorch; sinabs, where it also avoids IAF's clip), or a
``CubaLIF`` whose synapse passes the input on (rockpool, with every layer unrolled into
``Affine``). Networks the reader would run differently are refused, naming the ``convert``
options that give a network it runs exactly (reset to zero or by subtraction, V(0) = 0).

Every node keeps isospike's metadata (``threshold`` added, in the node's units), so
:func:`isospike.nir.load` reads each reader's file back as the exported network.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np
import torch

from isospike.nir.tables import META

SNNTORCH_DT = 1e-4  # the time step snnTorch's NIR importer and exporter assume
NO_LEAK_TAU = 1e30  # seconds: 1 - dt / tau rounds to exactly 1 for any reader's dt (no leak)
ROCKPOOL_R = 1e12  # rockpool: dt = tau_mem / (1 + r) makes exp(-dt / tau_mem) exactly 1 in float32
ROCKPOOL_SYN_DECAY_LOG = 40 * math.log(2)  # dt / tau_syn: exp(-40 ln 2) = 2**-40, the synapse forgets


def _zeros(th: np.ndarray) -> np.ndarray:
    return np.zeros_like(th, dtype=np.float32)


def _if_node(th: np.ndarray) -> Any:
    return nir.IF(r=np.ones_like(th, dtype=np.float32), v_threshold=th, v_reset=_zeros(th))


def _snntorch_node(th: np.ndarray) -> Any:
    tau = np.full_like(th, NO_LEAK_TAU, dtype=np.float32)
    return nir.LIF(tau=tau, r=tau / np.float32(SNNTORCH_DT), v_leak=_zeros(th), v_threshold=th, v_reset=_zeros(th))


def _sinabs_node(th: np.ndarray) -> Any:
    # sinabs tests ``any(v_leak)``, which fails on a feature map: a map's neurons sharing one
    # threshold are written as one value each field (NIR broadcasts them)
    if th.ndim > 1:
        return nir.IF(r=np.ones_like(th, dtype=np.float32), v_threshold=th, v_reset=_zeros(th))
    tau = np.full_like(th, NO_LEAK_TAU, dtype=np.float32)
    return nir.LIF(tau=tau, r=np.ones_like(th, dtype=np.float32), v_leak=_zeros(th), v_threshold=th,
                   v_reset=_zeros(th))


def rockpool_synapse_decay() -> float:
    """The synaptic decay rockpool computes for :func:`_rockpool_node`'s time constants (float32,
    as ``rockpool.nn.modules.torch.nir.from_nir`` and ``LIFTorch`` compute it)."""
    one = np.float32(1.0)
    dt = float(np.min(one / (one + np.float32(ROCKPOOL_R))))
    tau_syn = torch.tensor(dt / ROCKPOOL_SYN_DECAY_LOG, dtype=torch.float32)
    return float(torch.exp(-dt / tau_syn))


def _rockpool_node(th: np.ndarray) -> Any:
    """rockpool's LIFTorch: I <- beta (I + x), V <- alpha V + I. alpha = 1 and beta = 2**-40:
    I = beta x to float32 precision, so V is the IF membrane times beta and the threshold is
    theta x beta."""
    one = np.ones_like(th, dtype=np.float32)
    dt = float(np.float32(1.0) / (np.float32(1.0) + np.float32(ROCKPOOL_R)))
    return nir.CubaLIF(tau_syn=one * np.float32(dt / ROCKPOOL_SYN_DECAY_LOG), tau_mem=one, r=one * np.float32(ROCKPOOL_R),
                       v_leak=_zeros(th), v_threshold=(th * np.float32(rockpool_synapse_decay())).astype(np.float32),
                       v_reset=_zeros(th), w_in=one)


@dataclass(frozen=True)
class Reader:
    """How a NIR reader runs isospike's rate populations.

    reset: the isospike populations it runs exactly ("zero": reset to 0; "subtract"), from V(0) = 0.
    neuron: the NIR node (from the population's threshold) that the reader maps to those dynamics.
    runs: what the reader runs, in words (errors and docs).
    dense: every layer unrolled into nir.Affine (rockpool reads no convolution, pooling or flatten).
    depth_first: it runs nodes in nirtorch.load's depth-first order (checked).
    multi_spike: it emits several spikes per step where the membrane holds several thresholds
      (isospike's IF neurons emit one; counts differ only for neurons driven above 1 spike per step).
    """

    name: str
    reset: str
    neuron: Callable[[np.ndarray], Any]
    runs: str
    dense: bool = False
    depth_first: bool = False
    multi_spike: bool = False


READERS: dict[str, Reader] = {r.name: r for r in (
    Reader("nirtorch", "zero", _if_node, "nir.IF with the IF module the user maps it to (NIR's own dynamics: "
           "reset to v_reset, V(0) = 0)"),
    Reader("norse", "zero", _if_node, "nir.IF as IAFCell: reset to 0, V(0) = 0", depth_first=True),
    Reader("snntorch", "zero", _snntorch_node, "nir.LIF as Leaky(beta = 1 - 1e-4 / tau = 1): reset to 0, V(0) = 0"),
    Reader("sinabs", "subtract", _sinabs_node, "nir.LIF as LIFSqueeze(alpha = exp(-1 / tau) = 1): reset by "
           "subtraction, V(0) = 0, several spikes per step", depth_first=True, multi_spike=True),
    Reader("rockpool", "subtract", _rockpool_node, "nir.CubaLIF as LIFTorch (synapse passing the input on, no "
           "leak): reset by subtraction, V(0) = 0, several spikes per step; layers as Affine", dense=True,
           depth_first=True, multi_spike=True),
)}


def convert_options(reset: str) -> str:
    return f"isospike.convert(model, coding='rate', reset={reset!r}, v_init=0.0)"


def _meta(node: Any) -> dict[str, Any]:
    text = (node.metadata or {}).get(META)
    return json.loads(text) if isinstance(text, str) else {}


def _check_populations(graph: Any, reader: Reader) -> None:
    """Every neuron node an IF population of rate coding that ``reader`` runs exactly."""
    for key, node in graph.nodes.items():
        if not isinstance(node, nir.IF):
            continue
        meta = _meta(node)
        if "population" in meta:
            raise ValueError(f"{reader.name} reads NIR neurons as IF/LIF neurons; the {meta.get('coding')} population "
                             f"{key!r} has no NIR neuron it runs: export a rate-coded network for {reader.name}, or "
                             "use isospike.nir.load / isospike.save for this one")
        v_init = np.asarray(meta.get("v_init", 0.0), dtype=np.float64)
        reset, leak = meta.get("reset", "zero"), float(meta.get("leak", 1.0))
        if reset != reader.reset or bool((v_init != 0).any()) or leak != 1.0:
            have = f"reset={reset!r}, V(0)={'0' if not (v_init != 0).any() else 'v_init x theta'}" \
                + (f", leak={leak}" if leak != 1.0 else "")
            raise ValueError(f"{reader.name} runs {reader.runs}; population {key!r} has {have}, so {reader.name} would "
                             f"run a different network. Convert for it: {convert_options(reader.reset)} "
                             "(docs/verification.md, 'Exports other tools run', states the accuracy cost at low T)")


def _edges_into(edges: list[tuple[str, str]], key: str) -> list[str]:
    return [a for a, b in edges if b == key]


def _edges_from(edges: list[tuple[str, str]], key: str) -> list[str]:
    return [b for a, b in edges if a == key]


def _uniform(values: Any) -> float | None:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    return float(arr[0]) if arr.size and bool((arr == arr[0]).all()) else None


LAYER_NODES = (nir.Affine, nir.Linear, nir.Conv1d, nir.Conv2d)


def _fold_scales(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> None:
    """Spikes worth theta entering a neuron's sum through ``nir.Scale`` nodes: their edges go
    straight into the neuron, whose threshold and other inputs (layers feeding only it) are
    divided by theta -- the same spikes, and no node on the skip branch (which depth-first readers
    would run a step late). Sums this does not fit keep their Scale (written as a layer)."""
    for target in [k for k, n in nodes.items() if isinstance(n, nir.IF)]:
        preds = _edges_into(edges, target)
        scales = [p for p in preds if isinstance(nodes[p], nir.Scale)]
        if not scales:
            continue
        sigmas = {_uniform(nodes[s].scale) for s in scales}
        sigma = next(iter(sigmas))
        if len(sigmas) != 1 or sigma is None or sigma <= 0 or any(
                len(_edges_into(edges, s)) != 1 or _edges_from(edges, s) != [target] for s in scales):
            continue
        layers = [p for p in preds if p not in scales]
        if not all(isinstance(nodes[p], LAYER_NODES) and _edges_from(edges, p) == [target] for p in layers):
            continue
        factor = np.float32(sigma)
        for p in layers:
            layer = nodes[p]
            layer.weight = (np.asarray(layer.weight, np.float32) / factor).astype(np.float32)
            if getattr(layer, "bias", None) is not None:
                layer.bias = (np.asarray(layer.bias, np.float32) / factor).astype(np.float32)
        neuron = nodes[target]
        neuron.v_threshold = (np.asarray(neuron.v_threshold, np.float32) / factor).astype(np.float32)
        for s in scales:
            src = _edges_into(edges, s)[0]
            edges[:] = [(src, target) if (a, b) == (src, s) else (a, b) for a, b in edges if (a, b) != (s, target)]
            del nodes[s]


def _conv_of_pool(pool: Any, channels: int, spatial: np.ndarray) -> Any:
    """nir.AvgPool2d as a convolution whose kernel averages each channel on its own (readers take
    a grouped convolution's input channels wrongly, so the kernel is diagonal over channels)."""
    kh, kw = (int(k) for k in np.broadcast_to(np.asarray(pool.kernel_size), (2,)))
    w = np.zeros((channels, channels, kh, kw), np.float32)
    w[np.arange(channels), np.arange(channels)] = np.float32(1.0 / (kh * kw))
    return nir.Conv2d(input_shape=tuple(int(s) for s in spatial), weight=w,
                      stride=np.broadcast_to(np.asarray(pool.stride), (2,)).copy(),
                      padding=np.broadcast_to(np.asarray(pool.padding), (2,)).copy(), dilation=np.array([1, 1]),
                      groups=1, bias=np.zeros(channels, np.float32))


def _diagonal(scale: np.ndarray, shape: tuple[int, ...]) -> Any:
    """nir.Scale as a layer every reader builds: a diagonal Affine (vectors) or 1x1 convolution
    (images, one factor per channel)."""
    s = np.broadcast_to(np.asarray(scale, np.float32), shape)
    if len(shape) == 1:
        return nir.Affine(weight=np.diag(s).astype(np.float32), bias=np.zeros(shape[0], np.float32))
    if len(shape) == 3 and bool((s == s[:, :1, :1]).all()):
        c = shape[0]
        w = np.zeros((c, c, 1, 1), np.float32)
        w[np.arange(c), np.arange(c), 0, 0] = s[:, 0, 0]
        return nir.Conv2d(input_shape=shape[1:], weight=w, stride=np.array([1, 1]), padding=np.array([0, 0]),
                          dilation=np.array([1, 1]), groups=1, bias=np.zeros(c, np.float32))
    raise ValueError(f"a spike value varying within a channel (shape {shape}) has no layer NIR readers build")


def _torch_of(node: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function of a linear NIR node on a batch (float64), for unrolling it into a matrix."""
    f = torch.nn.functional
    if isinstance(node, nir.Conv2d):
        w = torch.as_tensor(np.asarray(node.weight), dtype=torch.float64)
        b = torch.as_tensor(np.asarray(node.bias), dtype=torch.float64)
        pair = (lambda v: tuple(int(i) for i in np.broadcast_to(np.asarray(v), (2,))))  # noqa: E731
        return lambda x: f.conv2d(x, w, b, pair(node.stride), pair(node.padding), pair(node.dilation), int(node.groups))
    if isinstance(node, nir.Conv1d):
        w = torch.as_tensor(np.asarray(node.weight), dtype=torch.float64)
        b = torch.as_tensor(np.asarray(node.bias), dtype=torch.float64)
        one = (lambda v: int(np.asarray(v).reshape(-1)[0]))  # noqa: E731
        return lambda x: f.conv1d(x, w, b, one(node.stride), one(node.padding), one(node.dilation), int(node.groups))
    if isinstance(node, nir.AvgPool2d):
        pair = (lambda v: tuple(int(i) for i in np.broadcast_to(np.asarray(v), (2,))))  # noqa: E731
        return lambda x: f.avg_pool2d(x, pair(node.kernel_size), pair(node.stride), pair(node.padding))
    if isinstance(node, nir.Scale):
        s = torch.as_tensor(np.asarray(node.scale), dtype=torch.float64)
        return lambda x: x * s
    raise AssertionError(type(node))


MAX_DENSE_VALUES = 2**26  # an unrolled layer's matrix entries (256 MiB in float32)


def _dense(node: Any, key: str, in_shape: tuple[int, ...]) -> Any:
    """A linear node on samples of ``in_shape`` as the nir.Affine computing the same on the
    flattened sample (rockpool reads no other layer)."""
    n = math.prod(in_shape)
    fn = _torch_of(node)
    with torch.no_grad():
        zero = fn(torch.zeros(1, *in_shape, dtype=torch.float64)).reshape(-1)
        if n * zero.numel() > MAX_DENSE_VALUES:
            raise ValueError(f"layer {key!r} unrolled into a matrix would hold {n * zero.numel():,} values (more than "
                             f"{MAX_DENSE_VALUES:,}); rockpool reads dense layers only, so this network is too large "
                             "for it")
        cols = fn(torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)).reshape(n, -1) - zero
    return nir.Affine(weight=cols.T.numpy().astype(np.float32), bias=zero.numpy().astype(np.float32))


def _shape(node: Any, field: str) -> tuple[int, ...]:
    types = getattr(node, field, None) or {}
    value = next(iter(types.values()), None) if isinstance(types, dict) else None
    return tuple(int(v) for v in np.asarray(value).reshape(-1)) if value is not None else ()


def for_reader(graph: Any, reader_name: str) -> Any:
    """The NIR graph ``reader_name`` runs as the network of ``graph`` (a standard export with
    inferred shapes); see the module docstring."""
    reader = READERS[reader_name]
    if any(getattr(n, "groups", 1) != 1 for n in graph.nodes.values()):
        raise ValueError(f"{reader.name} builds no grouped convolution (NIR readers take weight.shape[1] as the input "
                         "channels); export a network without groups for it")
    _check_populations(graph, reader)
    in_shapes = {k: _shape(n, "input_type") for k, n in graph.nodes.items()}
    nodes = copy.deepcopy(dict(graph.nodes))
    edges = [(str(a), str(b)) for a, b in graph.edges]
    _fold_scales(nodes, edges)
    out: dict[str, Any] = {}
    for key, node in nodes.items():
        shape = in_shapes[key]
        if isinstance(node, nir.IF):
            th = np.asarray(node.v_threshold, np.float32)
            if reader.dense:
                th = th.reshape(-1)
            new = reader.neuron(th)
            meta = dict(_meta(node), threshold=th.tolist(), reader=reader.name)
            new.metadata = {META: json.dumps(meta)}
            out[key] = new
        elif reader.dense and isinstance(node, (nir.Conv1d, nir.Conv2d, nir.AvgPool2d, nir.Scale)):
            out[key] = _dense(node, key, shape)
        elif reader.dense and isinstance(node, nir.Flatten):
            out[key] = None  # a flat sample is already flat: removed below
        elif isinstance(node, nir.AvgPool2d):
            out[key] = _conv_of_pool(node, shape[0], np.asarray(shape[1:]))
        elif isinstance(node, nir.Scale):
            out[key] = _diagonal(np.asarray(node.scale), shape)
        elif isinstance(node, nir.Linear) and not isinstance(node, nir.Affine):
            w = np.asarray(node.weight, np.float32)
            out[key] = nir.Affine(weight=w, bias=np.zeros(w.shape[0], np.float32))
        elif isinstance(node, nir.Flatten):
            ndim = len(shape)
            start, end = int(node.start_dim), int(node.end_dim)
            out[key] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=start - ndim if start >= 0 else start,
                                   end_dim=end - ndim if end >= 0 else end)
        elif reader.dense and isinstance(node, nir.Input):
            out[key] = nir.Input(input_type={"input": np.array([math.prod(shape)])})
        elif reader.dense and isinstance(node, nir.Output):
            out[key] = nir.Output(output_type={"output": np.array([math.prod(shape)])})
        else:
            out[key] = node
    for key in [k for k, v in out.items() if v is None]:  # removed nodes: their inputs feed their outputs
        srcs, dsts = _edges_into(edges, key), _edges_from(edges, key)
        rewired: list[tuple[str, str]] = []
        for a, b in edges:
            if b == key:
                rewired.extend((a, d) for d in dsts)
            elif a != key:
                rewired.append((a, b))
        edges = rewired
        del out[key]
        assert srcs  # a flatten has an input
    metadata = dict(graph.metadata or {})
    metadata.pop("isospike_standard_readers", None)
    metadata["isospike_reader"] = reader.name
    result = nir.NIRGraph(nodes=out, edges=[(a, b) for a, b in edges], metadata=metadata)
    if reader.depth_first:
        _check_depth_first(result, reader)
    return result


def depth_first_order(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> list[str]:
    """The order nirtorch.load's GraphExecutor runs ``nodes`` in: depth first from the Input,
    children in the order of their edges."""
    after: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        after[a].append(b)
    start = next(k for k, n in nodes.items() if isinstance(n, nir.Input))
    order: list[str] = []
    seen: set[str] = set()
    stack = [start]
    while stack:  # iterative preorder, children left to right
        k = stack.pop()
        if k in seen:
            continue
        seen.add(k)
        order.append(k)
        stack.extend(reversed([c for c in after[k] if c not in seen]))
    return order


def _check_depth_first(graph: Any, reader: Reader) -> None:
    order = depth_first_order(graph.nodes, graph.edges)
    position = {k: i for i, k in enumerate(order)}
    for a, b in graph.edges:
        if position.get(a, -1) > position.get(b, -1):
            raise ValueError(f"{reader.name} runs NIR nodes depth first (nirtorch.load), which reaches {b!r} before its "
                             f"input {a!r} is computed: it would read {a!r} one step late. Branches that both hold layers "
                             "(a projection shortcut) have no order it runs right; identity shortcuts do")
