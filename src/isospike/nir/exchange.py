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

Where things live: this module holds the two walks (:func:`export` over a converted network's fx
graph, :func:`load` over a checked NIR graph) and the checks of files and graphs; what each
operation becomes is a table entry, :mod:`isospike.nir.exporters` (module type or function ->
NIR node) and :mod:`isospike.nir.builders` (NIR node type -> module). The walks know no node or
module type: a new one is one entry there.
"""

from __future__ import annotations

import collections
import copy
import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import fx, nn

from isospike._io import atomic_write, regular_file, remove_stale_temporaries
from isospike.errors import FileFormatError, IsospikeError, one_line
from isospike.nir.tables import MAX_INPUT_VALUES, META
from isospike.schema import Field, is_module_path, parse_json
from isospike.serialize import RAW_ERRORS

if TYPE_CHECKING:
    from isospike.nir.builders import Build


def export(snn: nn.Module, path: str | Path | None = None, reader: str | None = None):
    """The NIR graph of a network from :func:`isospike.convert` (written to ``path`` when given).

    ``reader``: None writes NIR as the specification defines it (isospike's own populations kept
    in node metadata, restored by :func:`load`); ``"snntorch"``, ``"norse"``, ``"sinabs"``,
    ``"rockpool"`` or ``"nirtorch"`` writes the nodes that library runs as this network, step for
    step (see :mod:`isospike.nir.readers`). A reader runs rate networks whose populations start at
    V(0) = 0 and reset as it does (to zero: snnTorch, Norse, nirtorch; by subtraction: sinabs,
    rockpool): others are refused naming the ``isospike.convert`` options that make one."""
    import nir

    from isospike.conversion.network import SpikingNetwork, unthread_timesteps
    from isospike.nir import exporters, readers

    if not isinstance(snn, SpikingNetwork):
        raise TypeError(f"isospike.nir.export expects a network from isospike.convert, got {type(snn).__name__}")
    if reader is not None and reader not in readers.READERS:
        raise ValueError(f"reader must be None (NIR as specified) or one of {tuple(readers.READERS)}, got {reader!r}")
    gm = unthread_timesteps(copy.deepcopy(snn.graph_module))  # NIR nodes take one tensor
    ex = exporters.Export(gm, snn.coding)
    for node in gm.graph.nodes:  # each node by its module type or function (the tables in exporters)
        exporters.exporter_for(ex, node)(ex, node)
    # nir's shape inference ignores Conv groups; check types only where it can
    grouped = any(getattr(n, "groups", 1) != 1 for n in ex.nodes.values())
    try:
        graph = nir.NIRGraph(nodes=ex.nodes, edges=ex.edges, type_check=not grouped, metadata={
            META: json.dumps({"coding": snn.coding, "timesteps": snn.timesteps, "readout": snn.readout,
                              "fold_time": snn.fold_time})})
    except ValueError as exc:  # nir's shape inference: e.g. a Linear over [tokens, features]
        raise TypeError(f"NIR cannot describe this network's tensor shapes ({exc}); NIR nodes act on one sample's "
                        "vector or image, so layers over extra dimensions (tokens) have no NIR form; "
                        + exporters.NO_NODE_FIX) from exc
    if reader is not None:
        graph = readers.for_reader(graph, reader)
    elif ex.foreign_differs:
        names = ", ".join(ex.foreign_differs[:5])
        graph.metadata["isospike_standard_readers"] = (
            f"the IF nodes {names} reset by subtraction and start at v_init (theta/2): NIR's IF "
            "resets to v_reset and starts at 0, so nirtorch, snnTorch and Norse run them with other dynamics; "
            "isospike.nir.load restores them exactly from the 'isospike' node metadata")
        warnings.warn(f"NIR's IF neuron resets to v_reset and starts at 0; the populations {names} "
                      "reset by subtraction and start at v_init (theta/2): another NIR reader (nirtorch, snnTorch, Norse) "
                      "will run them with those standard dynamics and get different spikes (isospike.nir.load restores "
                      "them exactly from the metadata). For a file other readers run as this network, convert with "
                      "reset='zero', v_init=0.0 and export with reader='snntorch' / 'norse' / 'nirtorch' (or "
                      "reset='subtract', v_init=0.0 for reader='sinabs' / 'rockpool')", stacklevel=2)
    if ex.approximate:
        warnings.warn(f"NIR has no {snn.coding} neuron: its populations are exported as nir.IF nodes whose metadata holds "
                      "the exact population (isospike.nir.load restores it; other readers see IF neurons)", stacklevel=2)
    if path is not None:
        atomic_write(path, lambda p: nir.write(str(p), graph))
    return graph


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


def _recurrences(nodes: dict[str, Any], edges: list[tuple[str, str]], source: str) -> dict[str, str]:
    """Neuron -> weight node for each recurrence ``neuron -> weight -> neuron`` (snnTorch's RLeaky,
    RSynaptic); those two edges are removed from ``edges``. Any other cycle is refused. Neurons are
    the node types with NIRNeurons arguments (``builders.NEURON_ARGS``), weights those of
    ``builders.RECURRENT_WEIGHTS``."""
    from isospike.nir.builders import NEURON_ARGS, RECURRENT_WEIGHTS

    neuron_types = tuple(NEURON_ARGS)
    present = set(edges)
    found: dict[str, str] = {}
    for a, b in edges:
        if isinstance(nodes[a], neuron_types) and isinstance(nodes[b], RECURRENT_WEIGHTS) \
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


CONVENTIONS = ("nir", "standard", "norse", "snntorch", "sinabs", "rockpool")


def load(path_or_graph: Any, dt: float | None = None, input_shape: tuple[int, ...] | None = None,
         convention: str = "nir", reset: str | None = None, reset_delay: bool = True) -> nn.Module:
    """A :class:`~isospike.SpikingNetwork` from a NIR file or graph: isospike's own files exactly,
    and graphs other libraries export -- IF, LIF, CubaLIF, LI neurons (forward Euler with time step
    ``dt`` seconds; 1e-4 is snnTorch's), recurrent neurons (snnTorch's RLeaky / RSynaptic, as a
    cycle or a subgraph), affine/linear, conv, average pooling, flatten, sums (see
    :mod:`isospike.nir.populations`).

    ``dt``: the reader's time step in seconds (default 1e-4, snnTorch's; 1e-3, Norse's, with
    ``convention="norse"``).

    ``convention``: ``"nir"`` (default) reads isospike's own files, restoring its populations from
    the metadata isospike writes (reset by subtraction, initial membrane, TTFS / sigma-delta
    populations), and refuses neuron nodes other tools wrote, naming what it would have to assume
    (their fields mean different neurons to different writers); ``"standard"`` ignores isospike's
    metadata and runs every node as the specification alone defines it (reset to ``v_reset``, one
    spike per step, forward Euler): what Norse's IAFCell and a plain nirtorch reader run;
    ``"snntorch"`` runs snnTorch's Leaky / Synaptic / RLeaky / RSynaptic as snnTorch does, with the
    reset its exporter does not record given by ``reset`` (``"subtract"``, snnTorch's default, or
    ``"zero"``) and ``reset_delay`` (snnTorch's default True); ``"sinabs"`` runs IAF / LIF / ExpLeak
    with sinabs' defaults (several spikes per step, reset by subtraction, ``exp(-1/tau)`` leak, LIF
    input scaled by ``1 - alpha``); ``"rockpool"`` runs LIFTorch (``nir.CubaLIF``) with its
    exponential decays and time step ``dt`` (default 1e-3, checked against the ``r`` it writes);
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
        dt = 1e-3 if convention in ("norse", "rockpool") else 1e-4
    if reset is not None and reset not in ("subtract", "zero"):
        raise ValueError(f"reset must be 'subtract' or 'zero' (how snnTorch's neurons reset), got {reset!r}")
    if reset is not None and convention != "snntorch":
        raise ValueError("reset= says how snnTorch's neurons reset (its exporter does not record it): pass it with "
                         "convention='snntorch'")
    if not (isinstance(dt, (int, float)) and not isinstance(dt, bool) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive time step in seconds, got {dt!r}")
    override = _checked_shape(input_shape, source) if input_shape is not None else None
    try:
        return _build(graph, source, size, float(dt), override, convention, reset, bool(reset_delay))
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
           convention: str, reset: str | None = None, reset_delay: bool = True) -> nn.Module:
    """The network of a NIR graph read by :func:`load` (arguments checked there): the graph's
    nodes walked in topological order, each built by its node type's entry in
    ``builders.BUILDERS``."""
    from isospike.conversion.assemble import assemble_time_folded
    from isospike.nir import builders

    meta_text = None if convention == "standard" else (graph.metadata or {}).get(META)
    meta = Field(parse_json(builders.text_of(meta_text), source, "the graph's isospike metadata")
                 if meta_text is not None else {}, "metadata.isospike", source)
    b, order = _prepared(graph, source, dt, convention)
    b.reset, b.reset_delay = reset, reset_delay
    for key in order:
        node = b.nodes[key]
        builders.builder_for(node)(b, key, node)
    try:
        gm = fx.GraphModule(b.modules, b.graph)
    except (RuntimeError, AttributeError, TypeError, ValueError) as exc:
        raise FileFormatError(f"{source}: the NIR graph does not make a network ({one_line(exc, 200)})") from None
    _propagate(gm, override if override is not None else b.input_shape, override is not None, source, size)
    assemble_time_folded(gm, b.populations)
    return _network(gm, meta)


def _prepared(graph: Any, source: str, dt: float, convention: str) -> tuple[Build, list[str]]:
    """The walk over ``graph`` made ready: its state (subgraphs inlined, recurrent weights set
    apart for their neurons, a module name per node, each node's inputs) and the node keys in
    topological order."""
    import nir

    from isospike.nir.builders import Build

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
    for a, z in edges:
        preds[z].append(a)
    order = _topological(node_map, edges, source)
    return Build(source, dt, convention, all_nodes, recurrent, names, preds), order


def _propagate(gm: fx.GraphModule, input_shape: tuple[int, ...] | None, given: bool, source: str, size: int) -> None:
    """One sample of ``input_shape`` through ``gm`` (shapes recorded for assembly), bounded like
    the load; a graph that cannot run on it is refused naming where the shape came from."""
    from isospike.conversion.graph import propagate_shapes
    from isospike.serialize.bounds import bounded

    if input_shape is None:
        return
    try:
        with bounded(source, size, "propagating one sample's shapes"):
            propagate_shapes(gm, torch.zeros(1, *input_shape))
    except (RuntimeError, ValueError) as exc:
        if isinstance(exc, FileFormatError):
            raise
        origin = "the input_shape given" if given else "its nir.Input node"
        raise ValueError(f"{source}: the network cannot run on samples of shape {input_shape} ({origin}): "
                         f"{one_line(exc, 200)}; pass isospike.nir.load(path, input_shape=...) with one "
                         "sample's shape") from None


def _network(gm: fx.GraphModule, meta: Field) -> nn.Module:
    """The SpikingNetwork of an assembled graph, with the coding, steps, time folding and read-out
    the graph's isospike metadata names (rate, 8 steps, folded, mean without it)."""
    from isospike.conversion.network import SpikingNetwork
    from isospike.serialize import MAX_TIMESTEPS, spiking_codings

    coding_field = meta.get("coding")
    coding = coding_field.choice(spiking_codings(), "codings of spiking networks") if coding_field is not None else "rate"
    steps_field, fold_field, readout_field = meta.get("timesteps"), meta.get("fold_time"), meta.get("readout")
    timesteps = steps_field.integer(1, MAX_TIMESTEPS) if steps_field is not None else 8
    fold_time = fold_field.boolean() if fold_field is not None else True
    readout = readout_field.choice(("mean", "last")) if readout_field is not None else "mean"
    return SpikingNetwork(gm, timesteps, coding, {"source": "nir"}, fold_time=fold_time, readout=readout).eval()


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
