"""Saving and loading converted spiking networks: one safetensors file holding every tensor, with
the network's structure as JSON in the file's metadata (no pickle anywhere).

    isospike.save(snn, "snn.safetensors")
    snn2 = isospike.load("snn.safetensors")      # identical outputs and counts

The structure is the converted network's dataflow graph (:mod:`isospike.serialize.graph`) and its
modules by type and constructor arguments (:mod:`isospike.serialize.modules`). A file is data:
loading one checks every string against a closed set (module types, operations, methods, dtypes,
plain identifiers) and every size against the stored tensors before anything is built, so it
cannot run code, import anything, reach attributes of Python objects, write into its input or its
own tensors (:mod:`isospike.serialize.graph_values`), or allocate more than its size allows (its
tensors, plus a load-time test run metered against :mod:`isospike.serialize.bounds`).
docs/verification.md ("Files are data") states the threat model.

Exact networks (:func:`isospike.exact.convert`) are saved as their float32 source model and
conversion options, and converted again when loaded (:mod:`isospike.serialize.exact`); networks
coded at their sites (any eager model under a coding with time) as that source model, their
coding and options, and each site's population (:mod:`isospike.serialize.sites`). ``load``
dispatches on the file's ``kind``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, fx, nn

from isospike._io import atomic_write, regular_file, remove_stale_temporaries
from isospike.conversion.graph import parameter_dtype
from isospike.conversion.network import TIMESTEPS_INPUT
from isospike.errors import FileFormatError, IsospikeError, one_line
from isospike.resources import check_fits
from isospike.schema import Field, is_module_path, parse_json
from isospike.serialize.bounds import LoadBoundError, bounded
from isospike.serialize.graph import read_graph, write_graph
from isospike.serialize.modules import read_module, read_synapse, write_module

__all__ = ["FORMAT", "load", "save"]

FORMAT = "isospike.snn/2"
_READABLE_FORMATS = ("isospike.snn/1", FORMAT)  # format 2 adds recorded shapes, Ellipsis and inf/nan constants
_TOP_LEVEL = {"format", "coding", "timesteps", "fold_time", "readout", "info", "modules", "attrs", "graph"}


# ---------------------------------------------------------------------------------- saving
def save(snn: nn.Module, path: str | Path) -> Path:
    """Write a network from :func:`isospike.convert` or :func:`isospike.exact.convert` to ``path``
    (safetensors; structure in its metadata). Atomic: ``path`` holds the old file or the complete new one, and an interrupted
    save leaves no partial file behind once the next save to that folder runs."""
    from safetensors.torch import save_file

    from isospike.conversion.network import SpikingNetwork
    from isospike.conversion.sites.network import CodedNetwork
    from isospike.exact.model_conversion import ExactNetwork

    if isinstance(snn, ExactNetwork):  # its source model and options (isospike.serialize.exact)
        from isospike.serialize.exact import save_exact

        return save_exact(snn, path)
    if isinstance(snn, CodedNetwork):  # its source model, coding, options and sites (isospike.serialize.sites)
        from isospike.serialize.sites import save_sites

        return save_sites(snn, path)
    if not isinstance(snn, SpikingNetwork):
        raise TypeError(f"isospike.save expects a network from isospike.convert or isospike.exact.convert, got "
                        f"{type(snn).__name__}; save a plain model's state dict with safetensors.torch.save_file")
    gm = snn.graph_module
    paths = {id(m): p for p, m in gm.named_modules() if p}
    called = {str(n.target) for n in gm.graph.nodes if n.op == "call_module"}
    modules = {p: write_module(gm.get_submodule(p), paths) for p in sorted(called)}
    attrs = sorted({str(n.target) for n in gm.graph.nodes if n.op == "get_attr"})
    structure = {"format": FORMAT, "coding": snn.coding, "timesteps": snn.timesteps, "fold_time": snn.fold_time,
                 "readout": snn.readout, "info": snn.info, "modules": modules, "attrs": attrs, "graph": write_graph(gm)}
    tensors = {f"graph_module.{k}": v.detach().contiguous().clone() for k, v in gm.state_dict().items()}
    for a in attrs:
        tensors[f"attr.{a}"] = _attribute(gm, a)
    crossbar = snn.crossbar
    meta = {"isospike": json.dumps(structure, default=_json_default)}
    if crossbar is not None:
        meta["crossbar"] = json.dumps(dataclasses.asdict(crossbar), default=_json_default)
    return atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))


def _attribute(gm: nn.Module, path: str) -> Tensor:
    """A tensor attribute of a graph module read by a get_attr node (a parameter, a buffer or
    fx's ``_tensor_constant0``)."""
    owner_path, _, name = path.rpartition(".")
    value = getattr(gm.get_submodule(owner_path), name)
    if not isinstance(value, Tensor):
        raise TypeError(f"cannot save the attribute {path!r} of type {type(value).__name__}")
    return value.detach().contiguous().clone()


def _json_default(o: Any) -> Any:
    if isinstance(o, Tensor):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"cannot store {type(o).__name__} in the network's JSON structure")


# ---------------------------------------------------------------------------------- loading
# dtypes a saved tensor may have (safetensors names): what isospike writes. Others (float8, complex,
# unsigned 16-64 bit) are refused by name before anything is read.
_STORED_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                  "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                  "BOOL": torch.bool}


def read_tensors(path: Path, what: str, hint: str, dtypes: dict[str, torch.dtype] = _STORED_DTYPES
                 ) -> tuple[dict[str, str], dict[str, Tensor]]:
    """The metadata and tensors of a safetensors file, read as data and bounded before anything
    is allocated: a regular file (a FIFO or device is refused without opening it), every tensor
    of one of ``dtypes`` (named when not), their declared bytes no more than the file holds and
    than the memory available. Every failure is one line naming the file; ``what`` names the
    reader (``isospike.load``), ``hint`` says what it reads (ends the message for a file that is
    not safetensors)."""
    from safetensors import SafetensorError, safe_open

    size = regular_file(path, what).st_size
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{path} exists but cannot be read (permissions {oct(path.stat().st_mode & 0o777)}); "
                              "make it readable, e.g. chmod u+r")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            names = list(f.keys())
            declared = 0
            for key in names:
                part = f.get_slice(key)
                kind = part.get_dtype()
                if kind not in dtypes:
                    raise FileFormatError(f"{path}: the tensor {key[:80]!r} is stored as {kind}, which {what} does not "
                                          f"read (it reads {', '.join(dtypes)}); convert it, e.g. to float32, and save "
                                          "it again")
                shape = part.get_shape()
                declared += math.prod(shape) * dtypes[kind].itemsize
            if declared > size:  # safetensors checks this too; said here with the numbers
                raise FileFormatError(f"{path}: its tensors declare {declared} bytes in a file of {size}; the file is "
                                      "damaged or crafted")
            check_fits(declared, f"reading the tensors of {path}", "free memory first, or read it on a larger machine")
            # copies, not views of the file: a view sits at the file's byte offset, and BLAS kernels picked
            # by alignment round differently on it (a loaded network must compute what was saved, bit for bit)
            tensors = {k: f.get_tensor(k).clone() for k in names}
    except (SafetensorError, OSError, RuntimeError, ValueError, OverflowError) as exc:
        if isinstance(exc, IsospikeError):  # refusals above (FileFormatError, SimulationTooLargeError)
            raise
        raise ValueError(f"{path} is not a readable safetensors file ({one_line(exc, 200)}); {hint}") from None
    return meta, tensors


def _read_file(path: Path) -> tuple[dict[str, str], dict[str, Tensor]]:
    """The metadata and tensors of a saved network (see :func:`read_tensors`)."""
    if not path.exists():
        raise FileNotFoundError(f"no saved network at {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; isospike.load reads one file written by isospike.save "
                                "(e.g. runs/convert/snn.safetensors)")
    return read_tensors(path, "isospike.load", "isospike.load reads networks written by isospike.save or `isospike "
                        "convert` (snn.safetensors)")


def _read_crossbar(text: str, source: str) -> Any:
    from isospike.devices import MemristiveCrossbar

    f = Field(parse_json(text, source, "the crossbar metadata"), "crossbar", source)
    entries = f.object({fl.name for fl in dataclasses.fields(MemristiveCrossbar)})
    kinds = {fl.name: fl.type for fl in dataclasses.fields(MemristiveCrossbar)}
    values: dict[str, Any] = {}
    for name, field in entries.items():
        kind = str(kinds[name])
        if name == "sources":
            values[name] = {k: v.text(1024) for k, v in field.object().items()}
        elif field.is_none and "None" in kind:
            values[name] = None
        elif kind.startswith("int"):
            values[name] = field.integer(0, 2**31 - 1)
        else:
            values[name] = field.number(0.0, 1e6)
    try:
        return MemristiveCrossbar(**values)
    except ValueError as exc:
        raise FileFormatError(f"{source}: field crossbar does not describe a crossbar ({exc})") from None


def load(path: str | Path) -> nn.Module:
    """Read a network written by :func:`save` (same outputs, same spike and operation counts).

    Raises :class:`FileNotFoundError`, :class:`PermissionError` or :class:`IsADirectoryError` for
    a path that cannot be read, and :class:`ValueError` (:class:`isospike.errors.FileFormatError`
    for a malformed structure, :class:`~isospike.serialize.bounds.LoadBoundError` for a load that
    would pass its memory, work or time bound) naming the file and the field for anything else.
    Removes the temporary files saves killed mid-write left in the file's folder."""
    path = Path(path)
    try:
        return _load(path)
    except RAW_ERRORS as exc:  # a check missed: still one line naming the file, never a raw traceback
        raise FileFormatError(f"{path}: the file does not describe a network isospike can build "
                              f"({type(exc).__name__}: {one_line(exc, 200)}); the file is damaged or crafted") from None


# What torch, numpy and other libraries raise on inconsistent data; a loader reports them as the
# file's fault (FileFormatError) when its own checks did not name the problem first.
RAW_ERRORS = (AssertionError, IndexError, KeyError, AttributeError, RuntimeError, OverflowError, NotImplementedError,
              ZeroDivisionError, RecursionError)


def _load(path: Path) -> nn.Module:
    from isospike.conversion.network import SpikingNetwork

    meta, tensors = _read_file(path)
    remove_stale_temporaries(path.parent)  # left by saves killed mid-write (isospike._io.atomic_write)
    source = str(path)
    size = path.stat().st_size
    if "isospike" not in meta:
        raise ValueError(f"{path} is a safetensors file but not an isospike network (no 'isospike' metadata); "
                         "plain state dicts are loaded with model.load_state_dict(safetensors.torch.load_file(path))")
    root = Field(parse_json(meta["isospike"], source, "the 'isospike' metadata"), "isospike", source)
    if isinstance(root.value, dict) and "kind" in root.value:  # spiking networks' files have no kind
        from isospike.serialize import exact, sites

        if root["kind"].choice((exact.KIND, sites.KIND)) == sites.KIND:
            return sites.load_sites(root, tensors, source)
        return exact.load_exact(root, tensors, source)
    top = root.object(_TOP_LEVEL)
    fmt = root["format"]
    if fmt.value not in _READABLE_FORMATS:
        raise FileFormatError(f"{source}: unsupported network format {str(fmt.value)[:60]!r} (this isospike reads "
                              f"{', '.join(_READABLE_FORMATS)}); save it again with this version")
    coding = root["coding"].choice(spiking_codings(), "codings of spiking networks")
    timesteps = root["timesteps"].integer(1, MAX_TIMESTEPS)
    fold_time, readout = root["fold_time"].boolean(), root["readout"].choice(("mean", "last"))
    info = top["info"].value if "info" in top else {}
    if not isinstance(info, dict):
        raise top["info"].error("an object")

    declared = root["modules"].object()
    attrs = [a.module_path() for a in root["attrs"].items(max_len=100_000)]
    names = sorted(list(declared) + attrs)
    for name in names:
        if not is_module_path(name):
            raise declared[name].error("declared under a dotted module path of plain names (e.g. 'features.0')") \
                if name in declared else FileFormatError(f"{source}: attribute name {name[:60]!r} is not a plain path")
    for a, b in zip(names, names[1:]):
        if a == b or b.startswith(a + "."):
            raise FileFormatError(f"{source}: the declared modules and attributes {a!r} and {b!r} overlap; each "
                                  "module and tensor attribute has its own path")

    def stored_under(prefix: str):
        return lambda key: tensors.get(f"graph_module.{prefix}.{key}")

    # synapses last: each is built wired to the population feeding it
    synapses = {p for p, spec in declared.items() if isinstance(spec.value, dict) and spec.value.get("type") == "CountingSynapse"}
    modules: dict[str, Any] = {p: read_module(spec, stored_under(p)) for p, spec in declared.items() if p not in synapses}
    for p in sorted(synapses):
        modules[p] = read_synapse(declared[p], stored_under(p), modules.get)
    for a in attrs:
        key = f"attr.{a}"
        if key not in tensors:
            raise FileFormatError(f"{source}: the attribute {a!r} has no stored tensor {key!r}")
        modules[a] = tensors[key]
    graph = read_graph(root["graph"], set(declared), set(attrs))
    inputs = [str(n.target) for n in graph.nodes if n.op == "placeholder"]
    if not 1 <= len(inputs) <= 2 or TIMESTEPS_INPUT in inputs[:1] or inputs[1:] not in ([], [TIMESTEPS_INPUT]):
        raise root["graph"].error(f"a graph with one input, then the {TIMESTEPS_INPUT!r} input")
    try:
        gm = fx.GraphModule(modules, graph)
    except RuntimeError as exc:
        raise FileFormatError(f"{source}: the graph does not match its modules ({exc})") from None
    _assign_tensors(gm, {k.removeprefix("graph_module."): v for k, v in tensors.items()
                         if k.startswith("graph_module.")}, source)
    crossbar = _read_crossbar(meta["crossbar"], source) if "crossbar" in meta else None
    try:
        snn = SpikingNetwork(gm, timesteps, coding, info, fold_time=fold_time, readout=readout, crossbar=crossbar)
    except ValueError as exc:
        raise FileFormatError(f"{source}: {exc}") from None
    _dry_run(snn.eval(), source, size)
    return snn


def spiking_codings() -> tuple[str, ...]:
    """The registered codings whose networks are graphs of spiking populations (a
    :class:`~isospike.SpikingNetwork`): what a spiking file may name. The exact coding's networks
    are saved as their source model (kind ``"exact"``), never as a spiking graph."""
    from isospike.conversion.coding import codings, get_coding

    return tuple(c for c in codings() if get_coding(c).verify is None and get_coding(c).equivalent is None)


# Most time steps a file may declare (the simulation length of every call; conversions use tens to
# thousands). More would let a few bytes make each call of the loaded network run for hours.
MAX_TIMESTEPS = 2**16
# Largest input (values per sample) a file may record; one sample of it is run when loading.
MAX_INPUT_VALUES = 2**26


def _dry_run(snn: Any, source: str, file_bytes: int) -> None:
    """Run one sample of zeros shaped like the recorded input, one step (the window for TTFS), so
    a file whose graph cannot run is refused here, naming the file, not at the first call.

    The run is bounded (:func:`isospike.serialize.bounds.bounded`: memory, work and time for a file
    of ``file_bytes``), and it checks the shapes the file records for its populations, which the
    simulation memory guard (``SpikingNetwork.check_memory``) reads: each must be what the
    population really computes."""
    placeholder = next((n for n in snn.graph_module.graph.nodes if n.op == "placeholder"), None)
    meta = placeholder.meta.get("tensor_meta") if placeholder is not None else None
    if meta is None:
        return
    shape = tuple(meta.shape)
    if not shape or math.prod(shape[1:]) > MAX_INPUT_VALUES:
        raise FileFormatError(f"{source}: the recorded input shape {list(shape)[:8]} is not [batch, ...] with at most "
                              f"{MAX_INPUT_VALUES} values per sample; the file is damaged or crafted")
    dtype = meta.dtype
    if dtype.is_floating_point:  # a network cast after conversion (snn.double()) takes its parameters' dtype
        dtype = parameter_dtype(snn.graph_module) or dtype
    computed: dict[str, int] = {}

    def seen(name: str) -> Callable[..., None]:
        def hook(_: nn.Module, __: Any, out: Any) -> None:
            if isinstance(out, Tensor):
                computed[name] = max(computed.get(name, 0), out.numel())
        return hook

    hooks = [m.register_forward_hook(seen(name)) for name, m in snn.neurons()]
    try:
        with torch.no_grad(), bounded(source, file_bytes, "its test run (one sample, one step)") as meter:
            try:
                x = torch.zeros(1, *shape[1:], dtype=dtype)
                recorded = snn.population_sizes(x) or {}
                snn(x, timesteps=1 if snn.fold_time else None)
            except Exception as exc:  # noqa: BLE001 - whatever a malformed graph raises, the file is at fault
                if meter.refusal is not None:
                    raise LoadBoundError(meter.message()) from None
                raise FileFormatError(f"{source}: the network it describes does not run on one input of its recorded "
                                      f"shape {list(shape[1:])} ({type(exc).__name__}: {one_line(exc, 200)}); the file "
                                      "is damaged or crafted") from None
    finally:
        for h in hooks:
            h.remove()
    for name, values in recorded.items():
        if name in computed and computed[name] != values:
            raise FileFormatError(f"{source}: the shapes the file records say the population {name!r} holds {values} "
                                  f"values per sample and step, but it computes {computed[name]}; the file is damaged "
                                  "or crafted (the simulation memory guard reads those shapes)")


def _assign_tensors(gm: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Put the stored tensors in place of the module's (declared-only, meta) ones: the names must
    match one to one and each shape must be the declared one."""
    own = gm.state_dict(keep_vars=True)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise FileFormatError(f"{source}: the stored tensors do not match the structure: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}; the file is damaged")
    for key, t in own.items():
        value = state[key]
        if tuple(value.shape) != tuple(t.shape):
            raise FileFormatError(f"{source}: the tensor {key!r} is stored with shape {tuple(value.shape)} but the "
                                  f"structure declares {tuple(t.shape)}; the file is damaged or crafted")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise FileFormatError(f"{source}: the tensor {key!r} holds NaN or infinite values; the file is damaged")
        if value.is_floating_point() != t.is_floating_point() and t.dtype != torch.bool:
            raise FileFormatError(f"{source}: the tensor {key!r} is stored as {value.dtype}, the structure needs "
                                  f"{'a floating' if t.is_floating_point() else 'an integer'} tensor")
    try:
        gm.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise FileFormatError(f"{source}: the stored tensors do not fit the structure ({str(exc).splitlines()[0]})") \
            from None
    for key, t in list(gm.named_parameters()) + list(gm.named_buffers()):
        if t.is_meta:
            raise FileFormatError(f"{source}: no stored tensor for {key!r}; the file is damaged")
