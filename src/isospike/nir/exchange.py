"""Exchange with the Neuromorphic Intermediate Representation (NIR, the ``nir`` package).

    isospike.nir.export(snn, "model.nir")     # a NIR graph in HDF5
    snn2 = isospike.nir.load("model.nir")     # the same network back (outputs equal up to float rounding)

Mapping (rate coding, the one NIR describes natively):
* each IF population -> ``nir.IF`` (r = 1, v_threshold = theta). NIR's IF resets to v_reset; our
  neurons reset by subtraction and start at v_init: both are kept in the node's metadata
  (``isospike``) and restored by :func:`load`; another reader sees an IF with reset to zero.
* spikes in NIR carry 1, ours carry theta: the weights a population drives are multiplied by its
  theta on export (the network computes the same function).
* Linear -> ``nir.Affine`` (or ``nir.Linear`` without bias), Conv1d/Conv2d -> ``nir.Conv1d/2d``,
  average pooling -> ``nir.AvgPool2d``, flatten -> ``nir.Flatten``, additions -> converging edges
  (NIR sums a node's inputs), the analog input -> ``nir.Input``, the read-out -> ``nir.Output``.

TTFS, M-TTFS and sigma-delta populations have no NIR primitive: they are exported as ``nir.IF``
nodes whose metadata holds the full population (window, level table, silent level, spike size),
which :func:`load` restores exactly; other readers see an approximation (an IF neuron) and a
warning is issued on export.
"""

from __future__ import annotations

import collections
import copy
import json
import math
import operator
import os
import re
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import fx, nn

from isospike._io import atomic_write, regular_file, remove_stale_temporaries
from isospike.conversion.coding import population_codecs
from isospike.conversion.graph import node_path
from isospike.errors import FileFormatError, IsospikeError, one_line
from isospike.schema import Field, is_module_path, parse_json
from isospike.serialize import RAW_ERRORS
from isospike.serialize.modules import read_module

_META = "isospike"


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


_NO_NODE_FIX = "isospike.save keeps any converted network exactly; NIR covers Linear, Conv1d/2d, AvgPool2d, Flatten, sums"


def export(snn: nn.Module, path: str | Path | None = None):
    """The NIR graph of a network from :func:`isospike.convert` (written to ``path`` when given)."""
    import nir

    from isospike.conversion.network import SpikingNetwork, unthread_timesteps
    from isospike.conversion.timefold import CountingSynapse, SpikingPopulation, TimeBroadcast, TimeFoldedNeuron
    from isospike.serialize.modules import write_module

    if not isinstance(snn, SpikingNetwork):
        raise TypeError(f"isospike.nir.export expects a network from isospike.convert, got {type(snn).__name__}")
    gm = unthread_timesteps(copy.deepcopy(snn.graph_module))  # NIR nodes take one tensor
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    producers: dict[fx.Node, list[str]] = {}
    spike_scale: dict[fx.Node, float | torch.Tensor] = {}  # value each spike of this tensor carries
    approximate = False
    foreign_differs: list[str] = []  # IF populations a standard NIR reader runs with other dynamics

    def sample_shape(node: fx.Node) -> tuple[int, ...] | None:
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape[1:]) if meta is not None and hasattr(meta, "shape") else None

    def valued(node: fx.Node, tag: str) -> list[str]:
        """Producers of ``node`` in value units: NIR spikes carry 1, so spikes worth theta that
        reach a sum or the output go through an explicit nir.Scale."""
        sc = spike_scale.get(node, 1.0)
        if not isinstance(sc, torch.Tensor) and sc == 1.0:
            return list(producers.get(node, []))
        shape = sample_shape(node) or ()
        factor = np.broadcast_to(np.asarray(sc.detach().cpu() if isinstance(sc, torch.Tensor) else sc,
                                            dtype=np.float32).reshape(_broadcastable(sc, shape)), shape).copy()
        name = f"scale_{tag}"
        nodes[name] = nir.Scale(scale=factor)
        edges.extend((p, name) for p in producers.get(node, []))
        return [name]

    def connect(name: str, node: fx.Node) -> None:
        for src in node.args:
            if isinstance(src, fx.Node):
                for p in producers.get(src, []):
                    edges.append((p, name))

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            shape = sample_shape(node)
            if shape is None:
                raise ValueError("the network has no recorded input shape: convert it with calibration data "
                                 "(isospike.convert(..., calibration=x)) before exporting to NIR")
            nodes["input"] = nir.Input(input_type={"input": np.array(shape)})
            producers[node] = ["input"]
        elif node.op == "output":
            out = node.args[0]
            if not isinstance(out, fx.Node):
                raise TypeError(f"NIR graphs have one output tensor; this network returns a {type(out).__name__}: "
                                "export a model whose forward returns a single tensor")
            nodes["output"] = nir.Output(output_type={"output": np.array(sample_shape(out) or ())})
            for p in valued(out, "output"):
                edges.append((p, "output"))
        elif node.op == "call_module":
            m = gm.get_submodule(str(node.target))
            name = str(node.target).replace(".", "_")
            if not node.args or not isinstance(node.args[0], fx.Node):
                raise TypeError(f"module '{node.target}' takes no tensor input; NIR nodes take one")
            src = node.args[0]
            scale = spike_scale.get(src, 1.0)
            if isinstance(m, TimeBroadcast):
                producers[node] = producers.get(src, [])
                spike_scale[node] = scale
                continue
            if isinstance(m, CountingSynapse):
                layer = m.layer
                if isinstance(layer, nn.Linear):
                    w = layer.weight * _scale_for(scale, layer.weight, dim=1)
                    nodes[name] = nir.Affine(_np(w), _np(layer.bias)) if layer.bias is not None else nir.Linear(_np(w))
                elif isinstance(layer, (nn.Conv1d, nn.Conv2d)):
                    w = layer.weight * _scale_for(scale, layer.weight, dim=1)
                    cls = nir.Conv2d if isinstance(layer, nn.Conv2d) else nir.Conv1d
                    bias = _np(layer.bias) if layer.bias is not None else np.zeros(layer.out_channels, np.float32)
                    in_shape = sample_shape(src)
                    spatial = None if not in_shape else (int(in_shape[-1]) if cls is nir.Conv1d else np.array(in_shape[1:]))
                    padding = np.array(_conv_padding(layer, str(node.target)))
                    nodes[name] = cls(input_shape=spatial,
                                      weight=_np(w), stride=np.array(layer.stride), padding=padding,
                                      dilation=np.array(layer.dilation), groups=layer.groups, bias=bias)
                elif isinstance(layer, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
                    nodes[name] = _avg_pool_node(layer, sample_shape(src), str(node.target))
                    spike_scale[node] = scale  # averaging keeps the units of its input
                else:
                    raise TypeError(f"no NIR node for {type(layer).__name__} at '{node.target}'; " + _NO_NODE_FIX)
            elif isinstance(m, TimeFoldedNeuron):
                n = m.neuron
                shape = sample_shape(node) or tuple(n.threshold.shape)
                th = np.broadcast_to(_np(n.threshold), shape).copy()
                meta = {"coding": "rate", "reset": n.reset_mode, "v_init": _np(n.v_init).tolist(),
                        "spike_value": _np(n.spike_value).tolist(), "leak": n.leak}
                nodes[name] = nir.IF(r=np.ones(shape, np.float32), v_threshold=th, v_reset=np.zeros(shape, np.float32),
                                     metadata={_META: json.dumps(meta)})
                spike_scale[node] = n.spike_value.detach().clone()
                if n.reset_mode == "subtract" or bool((n.v_init != 0).any()) or n.leak != 1.0:
                    foreign_differs.append(name)
            elif isinstance(m, SpikingPopulation) and type(m).__name__ in population_codecs():
                # no NIR primitive: an IF node standard readers approximate it with; its metadata
                # holds the population as a saved file does
                approximate = True
                shape = sample_shape(node) or ()
                spec = write_module(m, {})
                buffers = {k: v.tolist() for k, v in m.state_dict().items()}
                level = m.nir_threshold()
                nodes[name] = nir.IF(r=np.ones(shape, np.float32), v_threshold=np.full(shape, level, np.float32),
                                     v_reset=np.zeros(shape, np.float32),
                                     metadata={_META: json.dumps({"coding": snn.coding, "population": spec, "buffers": buffers})})
                spike_scale[node] = 1.0
            elif isinstance(m, nn.Flatten):
                nodes[name] = nir.Flatten(input_type={"input": np.array(sample_shape(src) or ())}, start_dim=m.start_dim - 1,
                                          end_dim=m.end_dim if m.end_dim < 0 else m.end_dim - 1)
                spike_scale[node] = scale
            elif isinstance(m, (nn.Identity, nn.Dropout)):
                producers[node] = producers.get(src, [])
                spike_scale[node] = scale
                continue
            else:
                raise TypeError(f"no NIR node for {type(m).__name__} at '{node.target}'; " + _NO_NODE_FIX)
            connect(name, node)
            producers[node] = [name]
        elif node.op == "call_function" and node.target is torch.nn.functional.avg_pool2d:
            src = node.args[0]
            kernel = node.args[1] if len(node.args) > 1 else node.kwargs["kernel_size"]
            stride = node.args[2] if len(node.args) > 2 else node.kwargs.get("stride")
            padding = node.args[3] if len(node.args) > 3 else node.kwargs.get("padding", 0)
            options = [node.args[i] if len(node.args) > i else node.kwargs.get(k, d)
                       for i, k, d in ((4, "ceil_mode", False), (5, "count_include_pad", True), (6, "divisor_override", None))]
            name = f"avgpool_{node.name}"
            nodes[name] = _avg_pool_node(nn.AvgPool2d(kernel, stride, padding, *options), sample_shape(src), node.name)
            connect(name, node)
            producers[node] = [name]
            spike_scale[node] = spike_scale.get(src, 1.0)
        elif node.op == "call_function" and node.target in (operator.add, torch.add):
            # NIR sums converging edges; spikes fed straight into the sum need their value (theta)
            # as an explicit nir.Scale, since NIR spikes carry 1
            producers[node] = []
            for i, a in enumerate(x for x in node.args if isinstance(x, fx.Node)):
                producers[node].extend(valued(a, f"{node.name}_{i}"))
            spike_scale[node] = 1.0
        elif node.op in ("call_function", "call_method") and (
                node.target in ("flatten", "view", "reshape") or getattr(node.target, "__name__", "") == "flatten"):
            src = node.args[0]
            name = f"flatten_{node.name}"
            nodes[name] = nir.Flatten(input_type={"input": np.array(sample_shape(src) or ())}, start_dim=0, end_dim=-1)
            connect(name, node)
            producers[node] = [name]
            spike_scale[node] = spike_scale.get(src, 1.0)
        else:
            what = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
            raise TypeError(f"NIR has no node for the operation {what!r} at '{node_path(node)}' ({node.op}); NIR export "
                            "takes Linear/Conv/AvgPool layers, populations, additions and flattening: convert a model "
                            "without it to export, or save the network with isospike.save instead")
    # nir's shape inference ignores Conv groups; check types only where it can
    grouped = any(getattr(n, "groups", 1) != 1 for n in nodes.values())
    try:
        graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=not grouped, metadata={
            _META: json.dumps({"coding": snn.coding, "timesteps": snn.timesteps, "readout": snn.readout,
                               "fold_time": snn.fold_time})})
    except ValueError as exc:  # nir's shape inference: e.g. a Linear over [tokens, features]
        raise TypeError(f"NIR cannot describe this network's tensor shapes ({exc}); NIR nodes act on one sample's "
                        "vector or image, so layers over extra dimensions (tokens) have no NIR form; "
                        + _NO_NODE_FIX) from exc
    if foreign_differs:
        graph.metadata["isospike_standard_readers"] = (
            f"the IF nodes {', '.join(foreign_differs[:5])} reset by subtraction and start at v_init (theta/2): NIR's IF "
            "resets to v_reset and starts at 0, so nirtorch, snnTorch and Norse run them with other dynamics; "
            "isospike.nir.load restores them exactly from the 'isospike' node metadata")
        warnings.warn(f"NIR's IF neuron resets to v_reset and starts at 0; the populations {', '.join(foreign_differs[:5])} "
                      "reset by subtraction and start at v_init (theta/2): another NIR reader (nirtorch, snnTorch, Norse) "
                      "will run them with those standard dynamics and get different spikes (isospike.nir.load restores "
                      "them exactly from the metadata)", stacklevel=2)
    if approximate:
        warnings.warn(f"NIR has no {snn.coding} neuron: its populations are exported as nir.IF nodes whose metadata holds "
                      "the exact population (isospike.nir.load restores it; other readers see IF neurons)", stacklevel=2)
    if path is not None:
        atomic_write(path, lambda p: nir.write(str(p), graph))
    return graph


def _FOREIGN_POPULATIONS() -> tuple[str, ...]:  # noqa: N802 - reads as the closed set it returns
    """Population types carried in an IF node's metadata: the registered codings' own, except
    rate coding's IF neurons, which NIR describes natively."""
    return tuple(sorted(k for k in population_codecs() if k != "TimeFoldedNeuron"))


def _broadcastable(scale, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape that broadcasts a scalar or per-channel factor over a sample of ``shape``."""
    if not isinstance(scale, torch.Tensor) or scale.numel() == 1:
        return ()
    return (scale.numel(),) + (1,) * (len(shape) - 1)


def _conv_padding(layer: nn.Conv1d | nn.Conv2d, where: str) -> tuple[int, ...]:
    """Explicit zero padding of a convolution ('same' / 'valid' resolved); other padding modes
    have no NIR form."""
    if layer.padding_mode != "zeros":
        raise TypeError(f"convolution at '{where}' pads with {layer.padding_mode!r}; NIR convolutions pad with zeros "
                        "only; " + _NO_NODE_FIX)
    kernel, dilation = tuple(int(k) for k in layer.kernel_size), tuple(int(d) for d in layer.dilation)
    if layer.padding == "valid":
        return (0,) * len(kernel)
    if layer.padding == "same":
        totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
        if any(t % 2 for t in totals):
            raise TypeError(f"convolution at '{where}' uses padding='same' with an even kernel (asymmetric padding), "
                            "which NIR cannot express; " + _NO_NODE_FIX)
        return tuple(t // 2 for t in totals)
    return tuple(int(p) for p in layer.padding)


def _avg_pool_node(layer: nn.Module, in_shape: tuple[int, ...] | None, where: str):
    """nir.AvgPool2d for an average pooling (adaptive ones when the output divides the input)."""
    import nir

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
                        "which NIR's AvgPool2d cannot express; " + _NO_NODE_FIX)
    k = pair(layer.kernel_size)
    st = pair(layer.stride if layer.stride is not None else layer.kernel_size)
    return nir.AvgPool2d(kernel_size=np.array(k), stride=np.array(st), padding=np.array(pair(layer.padding)))


def _scale_for(scale: float | torch.Tensor, weight: torch.Tensor, dim: int) -> torch.Tensor | float:
    """Per-input-channel spike values broadcast over a weight's input dimension."""
    if not isinstance(scale, torch.Tensor) or scale.numel() == 1:
        return float(scale) if not isinstance(scale, torch.Tensor) else float(scale.reshape(()))
    s = scale.reshape(-1)
    if weight.dim() == 2 and weight.shape[1] != s.numel():  # flattened feature maps: repeat per position
        s = s.repeat_interleave(weight.shape[1] // s.numel())
    shape = [1] * weight.dim()
    shape[dim] = -1
    return s.reshape(shape)


MAX_HDF5_OBJECTS = 200_000


def _check_hdf5(path: Path, max_depth: int = 16) -> None:
    """Refuse NIR files whose arrays would read other files or blow up in memory, before nir
    reads them: external storage, virtual datasets, external or soft links, groups nested deeper
    than ``max_depth``, or arrays declaring more bytes in all than the load's memory cap for a file
    of this size (:func:`isospike.serialize.bounds.memory_cap`: 256 MiB + 16 bytes per byte of the
    file; compressed arrays inflate)."""
    import h5py

    from isospike.serialize.bounds import memory_cap

    size = max(path.stat().st_size, 1)
    cap = memory_cap(size)
    declared = 0
    visited = 0

    def visit(group: Any, depth: int, where: str) -> None:
        nonlocal declared, visited
        if depth > max_depth:
            raise FileFormatError(f"{path}: groups nest deeper than {max_depth} levels at {where!r}; the file is crafted")
        for key in group.keys():
            visited += 1
            if visited > MAX_HDF5_OBJECTS:  # hard links may make a small file's tree exponentially large
                raise FileFormatError(f"{path}: it holds more than {MAX_HDF5_OBJECTS} groups and arrays (counting "
                                      "each link); the file is crafted")
            link = group.get(key, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise FileFormatError(f"{path}: {where}/{key} is a {type(link).__name__}; NIR files hold their arrays "
                                      "themselves, links to other objects or files are refused")
            item = group[key]
            if isinstance(item, h5py.Group):
                visit(item, depth + 1, f"{where}/{key}")
            elif isinstance(item, h5py.Dataset):
                if item.external or item.is_virtual:
                    raise FileFormatError(f"{path}: the array {where}/{key} is stored in other files; NIR files "
                                          "hold their arrays themselves")
                declared += int(item.size) * int(item.dtype.itemsize)
                if declared > cap:
                    raise FileFormatError(f"{path}: its arrays declare {declared / 2**20:.1f} MiB in a file of "
                                          f"{size / 2**10:.1f} KiB, more than the {cap / 2**20:.1f} MiB a file of that "
                                          "size may inflate to (isospike.serialize.bounds); refusing to inflate it")

    try:
        with h5py.File(path, "r") as f:
            visit(f, 0, "")
    except FileFormatError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a readable NIR (HDF5) file ({one_line(exc, 200)}); isospike.nir.load reads "
                         "files written by nir.write / isospike.nir.export") from None


def _read_nir(path: Path) -> Any:
    """nir.read of a checked file, its failures as one line naming the file."""
    import nir

    if not path.exists():
        raise FileNotFoundError(f"no NIR file at {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; isospike.nir.load reads one .nir file")
    regular_file(path, "isospike.nir.load")  # a FIFO or device is refused before anything opens it
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{path} exists but cannot be read; make it readable, e.g. chmod u+r")
    remove_stale_temporaries(path.parent)  # left by exports killed mid-write (isospike._io.atomic_write)
    _check_hdf5(path)
    try:
        try:
            return nir.read(str(path))
        except ValueError as exc:  # nir's shape inference rejects grouped convolutions
            if "Type inference" not in str(exc):
                raise
            return nir.read(str(path), type_check=False)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, AssertionError,
            RuntimeError, OverflowError, NotImplementedError) as exc:
        raise ValueError(f"{path} is not a readable NIR graph ({type(exc).__name__}: {one_line(exc, 200)}); "
                         "isospike.nir.load reads files written by nir.write / isospike.nir.export") from None


_NIR_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,128}\Z")
# Largest input (values per sample) a NIR graph may declare: its shapes are propagated with one sample.
MAX_INPUT_VALUES = 2**26


def _module_names(keys: list[str], source: str) -> dict[str, str]:
    """A module name for each NIR node key: the key with every character outside [A-Za-z0-9_]
    replaced by '_', made unique. Keys outside a plain character set are refused."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for key in keys:
        if not isinstance(key, str) or not _NIR_KEY.match(key):
            raise FileFormatError(f"{source}: NIR node key {str(key)[:60]!r} is not a plain name (letters, digits, "
                                  "'_', '.', '-', at most 128); the file is damaged or crafted")
        base = re.sub(r"[^A-Za-z0-9_]", "_", key).lstrip("_") or "node"
        if base in ("input", "output") or not is_module_path(base):
            base = f"n_{base}"
        name, k = base, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        names[key] = name
    return names


def _stored_population_tensors(info: Field) -> dict[str, torch.Tensor]:
    """The buffers of an isospike population kept in a NIR node's metadata (numbers only)."""
    out = {}
    for key, value in info.object().items():
        if key not in ("silent_level", "slot_reads"):
            raise value.error("one of the population buffers 'silent_level', 'slot_reads'")
        out[key] = _numbers(value, torch.int64 if key == "silent_level" else torch.float32)
    return out


def _numbers(field: Field, dtype: torch.dtype) -> torch.Tensor:
    """A finite number or a rectangular nested list of them, as a tensor."""
    data = field.value
    try:
        arr = np.asarray(data, dtype=np.float64) if not isinstance(data, (bool, str, dict)) else None
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.size > 2**20 or not np.isfinite(arr).all():
        raise field.error("a finite number or a rectangular nested list of finite numbers")
    return torch.as_tensor(arr, dtype=dtype)


def _flatten(graph: Any, source: str, prefix: str = "", depth: int = 0) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The nodes and edges of ``graph`` with nested graphs (snnTorch writes RLeaky as one) inlined
    under dotted keys: an edge into a subgraph goes to what its Input feeds, an edge out of it
    leaves from what feeds its Output. Keys that collide once inlined (an outer ``"a.b"`` and the
    node ``"b"`` of a subgraph ``"a"``) are refused."""
    import nir

    if depth > 8:
        raise FileFormatError(f"{source}: NIR subgraphs nest deeper than 8 levels")
    nodes: dict[str, Any] = {}
    entries: dict[str, list[str]] = {}
    exits: dict[str, list[str]] = {}
    inner_edges: list[tuple[str, str]] = []

    def add(key: str, node: Any) -> None:
        if key in nodes:
            raise FileFormatError(f"{source}: two NIR nodes are both named {key[:80]!r} once subgraphs are inlined "
                                  "(a dotted key and a subgraph's node); rename one")
        nodes[key] = node

    for key, node in graph.nodes.items():
        full = f"{prefix}{key}"
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _flatten(node, source, f"{full}.", depth + 1)
            ins = {f"{full}.{k}" for k, n in node.nodes.items() if isinstance(n, nir.Input)}
            outs = {f"{full}.{k}" for k, n in node.nodes.items() if isinstance(n, nir.Output)}
            entries[full] = [b for a, b in sub_edges if a in ins]
            exits[full] = [a for a, b in sub_edges if b in outs]
            for k, n in sub_nodes.items():
                if k not in ins | outs:
                    add(k, n)
            inner_edges += [(a, b) for a, b in sub_edges if a not in ins and b not in outs]
        else:
            add(full, node)
    edges = list(inner_edges)
    for edge in graph.edges:
        if not (isinstance(edge, (tuple, list)) and len(edge) == 2 and all(isinstance(e, str) and e in graph.nodes
                                                                           for e in edge)):
            raise FileFormatError(f"{source}: the edge {str(edge)[:80]} does not join two nodes of the graph")
        a, b = f"{prefix}{edge[0]}", f"{prefix}{edge[1]}"
        for x in exits.get(a, [a]):
            for y in entries.get(b, [b]):
                edges.append((x, y))
    if len(edges) > MAX_EDGES:
        raise FileFormatError(f"{source}: the NIR graph has more than {MAX_EDGES} edges once subgraphs are inlined")
    return nodes, edges


MAX_EDGES = 1_000_000


_NEURON_TYPES = ("LIF", "CubaLIF", "LI")


def _recurrences(nodes: dict[str, Any], edges: list[tuple[str, str]], source: str) -> dict[str, str]:
    """Neuron -> weight node for each recurrence ``neuron -> weight -> neuron`` (snnTorch's RLeaky,
    RSynaptic); those two edges are removed from ``edges``. Any other cycle is refused."""
    import nir

    present = set(edges)
    found: dict[str, str] = {}
    for a, b in edges:
        if isinstance(nodes[a], (nir.LIF, nir.CubaLIF, nir.LI, nir.IF)) and isinstance(nodes[b], (nir.Linear, nir.Affine)) \
                and (b, a) in present and a not in found:
            found[a] = b
    loops = {(n, w) for n, w in found.items()} | {(w, n) for n, w in found.items()}
    weights = set(found.values())
    kept = [e for e in edges if e not in loops]
    for x, y in kept:
        if x in weights or y in weights:
            raise FileFormatError(f"{source}: the recurrent weight {(x if x in weights else y)!r} of a neuron is also "
                                  "connected elsewhere")
    edges[:] = kept
    return found


def _checked_shape(shape: Any, source: str) -> tuple[int, ...]:
    """A user-given sample shape: at most 8 positive whole sizes, at most MAX_INPUT_VALUES values."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"input_shape must be a tuple of sizes (one sample's shape), got {shape!r}") from None
    if not dims or len(dims) > 8 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims) \
            or math.prod(dims) > MAX_INPUT_VALUES:
        raise ValueError(f"input_shape must be 1 to 8 positive whole sizes with at most {MAX_INPUT_VALUES} values, "
                         f"got {shape!r}")
    return dims


CONVENTIONS = ("nir", "standard", "norse")


def _norse_args(args: dict[str, Any], dt: float) -> dict[str, Any]:
    """Norse 1.1's ``to_nir`` writes each time constant as ``dt / tau_inv`` (dt x tau, not tau),
    and its CubaLIF adds the input to the synaptic current unscaled; rewrite a node's arguments to
    the NIR dynamics that reproduce Norse's own step (see :func:`load`)."""
    out = dict(args)
    for k in ("tau", "tau_syn"):
        if out.get(k) is not None:
            out[k] = out[k] / dt
    if out.get("kind") == "cuba_lif" and out.get("tau_syn") is not None:
        w_in = out.get("w_in") if out.get("w_in") is not None else np.ones(1)
        out["w_in"] = w_in * out["tau_syn"] / dt  # dt w_in' / tau_syn = w_in: the input lands in I unscaled
    return out


def load(path_or_graph: Any, dt: float | None = None, input_shape: tuple[int, ...] | None = None,
         convention: str = "nir") -> nn.Module:
    """A :class:`~isospike.SpikingNetwork` from a NIR file or graph: isospike's own files exactly,
    and graphs other libraries export -- IF, LIF, CubaLIF, LI neurons (forward Euler with time step
    ``dt`` seconds; 1e-4 is snnTorch's), recurrent neurons (snnTorch's RLeaky / RSynaptic, as a
    cycle or a subgraph), affine/linear, conv, average pooling, flatten, sums (see
    :mod:`isospike.nir.populations`).

    ``dt``: the reader's time step in seconds (default 1e-4, snnTorch's; 1e-3, Norse's, with
    ``convention="norse"``).

    ``convention``: ``"nir"`` (default) reads the file as the NIR specification defines it, and
    restores isospike's own populations from the metadata isospike writes (reset by subtraction,
    initial membrane, TTFS / sigma-delta populations); ``"standard"`` ignores that metadata and runs
    every node as the specification alone defines it: what other readers (Norse, nirtorch) run, to
    see what an exported network becomes there;
    ``"norse"`` reads files written by Norse 1.1's ``norse.torch.to_nir`` as Norse runs them: its
    exporter writes time constants as ``dt x tau`` (``dt / tau_mem_inv``), its CubaLIF (``LIFCell``)
    adds the input to the synaptic current without the ``dt / tau_syn`` factor, and its Input node
    holds the example batch (dropped). Spikes then equal Norse's own simulation step for step.

    ``input_shape``: the shape of one sample, overriding the file's ``nir.Input`` node (some
    exporters, e.g. Norse's, write the example batch into it: a file declaring [5, 12] for
    samples of 12 features loads with ``input_shape=(12,)``). The network takes [batch, *shape].

    A file is data: its node keys, edges and metadata are checked before use (see
    docs/verification.md, "Files are data"); a malformed or crafted file raises one ValueError
    naming the file and what is wrong."""
    import nir

    if isinstance(path_or_graph, (str, Path)):
        source = str(path_or_graph)
        graph = _read_nir(Path(path_or_graph))
        size = Path(path_or_graph).stat().st_size
    elif isinstance(path_or_graph, nir.NIRGraph):
        source = "the NIR graph"
        graph = path_or_graph
        size = _array_bytes(graph)
    else:
        raise TypeError(f"isospike.nir.load takes a path or a nir.NIRGraph, got {type(path_or_graph).__name__}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if dt is None:
        dt = 1e-3 if convention == "norse" else 1e-4
    if not (isinstance(dt, (int, float)) and not isinstance(dt, bool) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive time step in seconds, got {dt!r}")
    override = _checked_shape(input_shape, source) if input_shape is not None else None
    try:
        return _build(graph, source, size, float(dt), override, convention)
    except (*_RAW_ERRORS, ValueError, TypeError) as exc:  # arrays or arguments that fit no layer (the checks name most)
        if isinstance(exc, (ValueError, TypeError)) and (isinstance(exc, IsospikeError) or str(exc).startswith(source)):
            raise  # isospike's own refusals, which name the file already
        raise FileFormatError(f"{source}: the NIR graph does not describe a network isospike can build "
                              f"({type(exc).__name__}: {one_line(exc, 200)}); the file is damaged or crafted") from None


# Exceptions numpy, torch and nir raise on inconsistent arrays: a malformed file, reported as one.
_RAW_ERRORS = (*RAW_ERRORS, np.exceptions.AxisError)


def _array_bytes(graph: Any) -> int:
    """Bytes of the arrays an in-memory NIR graph holds (its size as a file, for the load's bounds)."""
    total = 0
    for node in graph.nodes.values():
        for value in vars(node).values():
            if isinstance(value, np.ndarray):
                total += int(value.nbytes)
            elif hasattr(value, "nodes") and hasattr(value, "edges"):
                total += _array_bytes(value)
    return total


def _build(graph: Any, source: str, size: int, dt: float, override: tuple[int, ...] | None,
           convention: str) -> nn.Module:
    """The network of a NIR graph read by :func:`load` (arguments checked there)."""
    import nir

    from isospike.conversion.assemble import assemble_time_folded
    from isospike.conversion.graph import propagate_shapes
    from isospike.conversion.network import SpikingNetwork
    from isospike.neurons import IFNeuron
    from isospike.nir import arrays
    from isospike.serialize import MAX_TIMESTEPS, spiking_codings
    from isospike.serialize.bounds import bounded

    meta_text = None if convention == "standard" else (graph.metadata or {}).get(_META)
    meta = Field(parse_json(_text(meta_text), source, "the graph's isospike metadata") if meta_text is not None else {},
                 "metadata.isospike", source)
    all_nodes, edges = _flatten(graph, source)
    inputs = sorted(k for k, n in all_nodes.items() if isinstance(n, nir.Input))
    if len(inputs) > 1:
        raise FileFormatError(f"{source}: the graph has {len(inputs)} nir.Input nodes ({', '.join(inputs[:4])}); "
                              "isospike networks take one input")
    recurrent = _recurrences(all_nodes, edges, source)
    rec_weights = set(recurrent.values())
    node_map = {k: n for k, n in all_nodes.items() if k not in rec_weights}
    names = _module_names(list(node_map), source)
    preds: dict[str, list[str]] = {k: [] for k in node_map}
    for a, b in edges:
        preds[b].append(a)
    order = _topological(node_map, edges, source)
    modules: dict[str, nn.Module] = {}
    neurons: dict[str, Any] = {}
    fx_graph = fx.Graph()
    values: dict[str, fx.Node] = {}
    input_shape: tuple[int, ...] | None = None
    for key in order:
        node = node_map[key]
        name = names[key]
        if isinstance(node, nir.Input):
            values[key] = fx_graph.placeholder("input")
            declared = (node.input_type or {}).get("input") if isinstance(node.input_type, dict) else None
            if declared is None:
                raise FileFormatError(f"{source}: the nir.Input node {key!r} declares no input shape "
                                      "(input_type['input'])")
            shape = arrays.numbers(declared, source, key, "input shape", whole=True).reshape(-1)
            if (shape < 1).any() or shape.size > 8 or math.prod(int(v) for v in shape) > MAX_INPUT_VALUES:
                raise FileFormatError(f"{source}: the input shape {shape.tolist()[:8]} of node {key!r} must be at most "
                                      f"8 positive sizes with at most {MAX_INPUT_VALUES} values per sample")
            input_shape = tuple(int(v) for v in shape)
            if convention == "norse" and len(input_shape) > 1:
                input_shape = input_shape[1:]  # Norse writes the example batch into Input
            continue
        ins = [values[p] for p in preds[key]]
        if not ins:
            raise FileFormatError(f"{source}: NIR node {key!r} has no input")
        x = ins[0]
        for other in ins[1:]:
            x = fx_graph.call_function(operator.add, (x, other))
        if isinstance(node, nir.Output):
            fx_graph.output(x)
            continue
        m: nn.Module
        if isinstance(node, (nir.Affine, nir.Linear)):
            w = arrays.tensor(node.weight, source, key, "weight", ndim=2)
            bias = arrays.tensor(node.bias, source, key, "bias", ndim=1) if isinstance(node, nir.Affine) else None
            m = arrays.linear(w, bias, source, key)
        elif isinstance(node, (nir.Conv2d, nir.Conv1d)):
            dims = 2 if isinstance(node, nir.Conv2d) else 1
            w = arrays.tensor(node.weight, source, key, "weight", ndim=dims + 2)
            groups = arrays.sizes(node.groups, source, key, "groups", 1, 1)[0]
            m = arrays.conv(nn.Conv2d if dims == 2 else nn.Conv1d, w, arrays.tensor(node.bias, source, key, "bias", ndim=1),
                            source, key, stride=arrays.sizes(node.stride, source, key, "stride", 1, dims),
                            padding=arrays.sizes(node.padding, source, key, "padding", 0, dims),
                            dilation=arrays.sizes(node.dilation, source, key, "dilation", 1, dims), groups=groups)
        elif isinstance(node, nir.AvgPool2d):
            kernel, stride, padding = (arrays.pair(node.kernel_size, source, key, "kernel_size", 1),
                                       arrays.pair(node.stride, source, key, "stride", 1),
                                       arrays.pair(node.padding, source, key, "padding", 0))
            m = nn.AvgPool2d(kernel, stride, padding)
        elif isinstance(node, nir.Scale):
            from isospike.conversion.timefold import ElementwiseScale

            m = ElementwiseScale(arrays.tensor(node.scale, source, key, "scale"))
        elif isinstance(node, nir.Flatten):
            start, end = (int(arrays.numbers(v, source, key, f, whole=True).reshape(-1)[0])
                          for v, f in ((node.start_dim, "start_dim"), (node.end_dim, "end_dim")))
            if not (-8 <= start <= 8 and -8 <= end <= 8):
                raise FileFormatError(f"{source}: the start_dim/end_dim of NIR node {key!r} must be in [-8, 8]")
            m = nn.Flatten(start + 1, end if end < 0 else end + 1)
        elif isinstance(node, (nir.LIF, nir.CubaLIF, nir.LI)) or (isinstance(node, nir.IF) and key in recurrent):
            args = _nir_neuron_args(node, key, all_nodes.get(recurrent.get(key, "")), source)
            neurons[name] = ("nir", _norse_args(args, dt) if convention == "norse" else args, None)
            m = nn.ReLU()  # placeholder activation, replaced by the population below
        elif isinstance(node, nir.IF):
            text = None if convention == "standard" else (node.metadata or {}).get(_META)
            info = Field(parse_json(_text(text), source, f"the isospike metadata of node {key!r}"),
                         f"nodes[{key!r}].metadata.isospike", source) if text is not None else None
            if info is not None and info.get("population") is not None:
                neurons[name] = ("population", info["population"], _stored_population_tensors(info["buffers"]))
            else:
                v_reset = arrays.numbers(node.v_reset, source, key, "v_reset") if node.v_reset is not None \
                    else np.zeros(1)
                if not np.allclose(v_reset, 0):
                    raise FileFormatError(f"{source}: NIR IF node {key!r} resets to a nonzero v_reset, which isospike's "
                                          "IF populations do not model (they reset to 0 or by subtraction)")
                th_arr = arrays.numbers(node.v_threshold, source, key, "v_threshold") \
                    * arrays.numbers(node.r, source, key, "r")
                th = arrays.tensor(th_arr, source, key, "v_threshold x r")
                if th.numel() == 0:
                    raise FileFormatError(f"{source}: the v_threshold of NIR IF node {key!r} is empty")
                th = th.flatten()[0] if bool((th == th.flatten()[0]).all()) else th
                reset: Literal["subtract", "zero"] = "zero"
                if info is not None and info["reset"].choice(("subtract", "zero")) == "subtract":
                    reset = "subtract"
                v_init = _numbers(info["v_init"], torch.float32) if info is not None else torch.tensor(0.0)
                try:
                    neuron = IFNeuron(threshold=th, reset=reset, v_init=v_init, spike_value=1.0)
                except (ValueError, TypeError, RuntimeError) as exc:
                    raise FileFormatError(f"{source}: NIR IF node {key!r} does not describe IF neurons "
                                          f"({one_line(exc, 200)})") from None
                neurons[name] = ("if", neuron, None)
            m = nn.ReLU()  # placeholder activation, replaced by the population below
        else:
            raise TypeError(f"{source}: no isospike module for NIR node {type(node).__name__} ({key!r}); isospike reads "
                            "IF, LIF, CubaLIF, LI, Affine, Linear, Conv1d/2d, AvgPool2d, Scale, Flatten and sums")
        modules[name] = m
        values[key] = fx_graph.call_module(name, (x,))
    try:
        gm = fx.GraphModule(modules, fx_graph)
    except (RuntimeError, AttributeError, TypeError, ValueError) as exc:
        raise FileFormatError(f"{source}: the NIR graph does not make a network ({one_line(exc, 200)})") from None
    if override is not None:
        input_shape = override
    if input_shape is not None:
        try:
            with bounded(source, size, "propagating one sample's shapes"):
                propagate_shapes(gm, torch.zeros(1, *input_shape))
        except (RuntimeError, ValueError) as exc:
            if isinstance(exc, FileFormatError):
                raise
            origin = "the input_shape given" if override is not None else "its nir.Input node"
            raise ValueError(f"{source}: the network cannot run on samples of shape {input_shape} ({origin}): "
                             f"{one_line(exc, 200)}; pass isospike.nir.load(path, input_shape=...) with one "
                             "sample's shape") from None
    specs: dict[str, Any] = {}
    for name, (kind, obj, buffers) in neurons.items():
        if kind == "if":
            specs[name] = obj
        elif kind == "nir":
            from isospike.nir.populations import NIRNeurons

            def nir_factory(static: bool, args: dict = obj, name: str = name) -> nn.Module:
                try:
                    return NIRNeurons(dt=dt, static_input=static, **args)
                except ValueError as exc:
                    raise FileFormatError(f"{source}: {one_line(exc, 300)}") from None
            specs[name] = nir_factory
        else:
            def factory(static: bool, spec: Field = obj, buffers: dict[str, torch.Tensor] = buffers) -> nn.Module:
                if isinstance(spec.value, dict) and "static_input" in spec.value:
                    spec = Field({**spec.value, "static_input": static}, spec.where, spec.source)
                pop = read_module(spec, buffers.get, allowed=_FOREIGN_POPULATIONS())
                for k, v in buffers.items():
                    old = pop._buffers.get(k)
                    if old is not None and old.shape == v.shape:
                        pop._buffers[k] = v.to(old.dtype)
                return pop
            specs[name] = factory
    assemble_time_folded(gm, specs)

    def entry(key: str) -> Field | None:
        return meta.get(key)

    coding_field = entry("coding")
    coding = coding_field.choice(spiking_codings(), "codings of spiking networks") if coding_field is not None else "rate"
    steps_field, fold_field, readout_field = entry("timesteps"), entry("fold_time"), entry("readout")
    timesteps = steps_field.integer(1, MAX_TIMESTEPS) if steps_field is not None else 8
    fold_time = fold_field.boolean() if fold_field is not None else True
    readout = readout_field.choice(("mean", "last")) if readout_field is not None else "mean"
    return SpikingNetwork(gm, timesteps, coding, {"source": "nir"}, fold_time=fold_time, readout=readout).eval()


def _nir_neuron_args(node: Any, key: str, rec_node: Any, source: str) -> dict[str, Any]:
    """Constructor arguments of a NIRNeurons population for a LIF / CubaLIF / LI / IF node."""
    import nir

    from isospike.nir import arrays

    def arr(v: Any, field: str) -> np.ndarray | None:
        return arrays.numbers(v, source, key, field).astype(np.float64) if v is not None else None

    recurrent = None
    if rec_node is not None:
        w = arrays.tensor(rec_node.weight, source, key, "recurrent weight", ndim=2)
        if w.shape[0] != w.shape[1]:
            raise FileFormatError(f"{source}: the recurrent weight of {key!r} has shape {tuple(w.shape)}, not [n, n]")
        bias = arrays.tensor(rec_node.bias, source, key, "recurrent bias", ndim=1) \
            if isinstance(rec_node, nir.Affine) else None
        recurrent = arrays.linear(w, bias, source, key)
    common = dict(where=key, recurrent=recurrent)
    if isinstance(node, nir.CubaLIF):
        return dict(kind="cuba_lif", tau=arr(node.tau_mem, "tau_mem"), r=arr(node.r, "r"),
                    v_leak=arr(node.v_leak, "v_leak"), v_threshold=arr(node.v_threshold, "v_threshold"),
                    v_reset=arr(getattr(node, "v_reset", 0.0), "v_reset"), tau_syn=arr(node.tau_syn, "tau_syn"),
                    w_in=arr(node.w_in, "w_in"), **common)
    if isinstance(node, nir.LIF):
        return dict(kind="lif", tau=arr(node.tau, "tau"), r=arr(node.r, "r"), v_leak=arr(node.v_leak, "v_leak"),
                    v_threshold=arr(node.v_threshold, "v_threshold"),
                    v_reset=arr(getattr(node, "v_reset", 0.0), "v_reset"), **common)
    if isinstance(node, nir.LI):
        return dict(kind="li", tau=arr(node.tau, "tau"), r=arr(node.r, "r"), v_leak=arr(node.v_leak, "v_leak"),
                    **common)
    return dict(kind="if", r=arr(node.r, "r"), v_threshold=arr(node.v_threshold, "v_threshold"),
                v_reset=arr(node.v_reset, "v_reset"), **common)


def _text(v: Any) -> Any:
    """A metadata entry as h5py returns it (str, bytes or a one-element array) unwrapped; what is
    not text is left for :func:`parse_json` to refuse."""
    if isinstance(v, np.ndarray) and v.size == 1:
        return _text(v.reshape(-1)[0])
    if isinstance(v, np.bytes_):
        return bytes(v)
    return v


def _topological(nodes: dict, edges: list[tuple[str, str]], source: str) -> list[str]:
    """The node keys in an order where every edge goes forward (Kahn's algorithm, linear time)."""
    indeg = {k: 0 for k in nodes}
    after: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        indeg[b] += 1
        after[a].append(b)
    ready = collections.deque(k for k, d in indeg.items() if d == 0)
    order = []
    while ready:
        k = ready.popleft()
        order.append(k)
        for b in after[k]:
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
    if len(order) != len(nodes):
        raise FileFormatError(f"{source}: the NIR graph has a cycle that is not a neuron's recurrent weight (neuron -> "
                              "Linear/Affine -> the same neuron, as snnTorch's RLeaky writes it); other cycles are not "
                              "supported")
    return order
