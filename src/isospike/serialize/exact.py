"""Saving and loading exact networks (:func:`isospike.exact.convert` / :func:`~isospike.exact.reference`).

An exact network is a copy of a float32 model that computes with gate circuits, so a file holds
that **source** model and the options it was converted with; loading rebuilds the source and
converts it again, which gives outputs identical bit for bit:

- ``options``: the arithmetic (``"gates"`` or ``"torch"`` for a reference network) and the
  keywords of :func:`isospike.exact.convert` (backend, leak, noise, noise_model, count, shard; a
  generator as its stored state), each read from a closed set or a numeric range;
- ``source`` of kind ``"fx"``: the model's ``torch.fx`` graph, written and read like a spiking
  network's (:mod:`isospike.serialize.graph`: closed function and method tables), whose leaf
  modules are plain torch layers of a closed table (:data:`~isospike.serialize.modules.SOURCE_CODECS`,
  built on the meta device, stored tensors assigned after their shapes are checked);
- ``source`` of kind ``"transformers"``: a Hugging Face model of a few families
  (:data:`~isospike.serialize.hf.FILE_MODEL_TYPES`: text models and ViT): its config as JSON
  and its weights. The class comes only from transformers' own auto mappings (architecture and
  ``model_type`` checked against them), config keys that reach code or the network
  (``auto_map``, ``quantization_config``, private ``_`` keys, backbones, attention kernels) are
  refused, nothing is fetched and ``trust_remote_code`` is never used; the model is first built
  on the meta device and its tensor names and shapes compared with the stored ones before
  anything is allocated.

Other models (classes that torch.fx cannot trace, modules outside the table) are refused by
:func:`save` with the module named and the fix: save the model's state dict and convert again.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor, fx, nn
from torch.fx.node import _get_qualified_name

from isospike._io import atomic_write
from isospike.errors import FileFormatError, one_line
from isospike.schema import Field, is_identifier, is_module_path
from isospike.serialize.graph import DTYPES, FUNCTIONS, METHODS, read_graph, write_graph
from isospike.serialize.hf import (
    ATTENTION,
    HF_MODEL_TYPES,
    architectures,
    build,
    check_config,
    check_stored,
    model_types,
    offline,
)
from isospike.serialize.modules import SOURCE_CODECS, SOURCE_TYPES, read_source_module, write_source_module

if TYPE_CHECKING:
    from isospike.exact.model_conversion import ExactNetwork

__all__ = ["FORMAT", "HF_MODEL_TYPES", "KIND", "Saving", "load_exact", "read_source", "save_exact", "write_source"]

FORMAT = "isospike.exact/1"
KIND = "exact"
_TOP_LEVEL = {"format", "kind", "arith", "options", "source"}
_OPTIONS = {"backend", "leak", "noise", "noise_model", "count", "shard", "generator"}
MAX_NOISE = 1e6
_TENSOR_NAME = re.compile(r"[A-Za-z0-9_]{1,128}(\.[A-Za-z0-9_]{1,128}){0,31}\Z")
_FIX = ("save the source model's state dict (safetensors.torch.save_file(model.state_dict(), path)) and call "
        "isospike.exact.convert(model) again after loading it")


# ---------------------------------------------------------------------------------- saving
def save_exact(net: ExactNetwork, path: str | Path) -> Path:
    """Write an :class:`~isospike.exact.ExactNetwork` (its source model and options) to ``path``."""
    from safetensors.torch import save_file

    arith, options, tensors = _write_options(net)
    source, state = write_source(net, net._exact_base, _EXACT)
    tensors.update({f"source.{k}": v for k, v in state.items()})
    structure = {"format": FORMAT, "kind": KIND, "arith": arith, "options": options, "source": source}
    meta = {"isospike": json.dumps(structure, default=_json_default, allow_nan=True)}
    return atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.dtype):
        return str(o).removeprefix("torch.")
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"cannot store {type(o).__name__} in an exact network's JSON structure")


def _write_options(net: nn.Module) -> tuple[str, dict[str, Any], dict[str, Tensor]]:
    from isospike.exact.arith import GateArith, TorchArith

    arith = net._exact_arith
    if type(arith) is TorchArith:
        return "torch", {}, {}
    if not isinstance(arith, GateArith):
        raise TypeError(f"isospike.save: cannot save an exact network computing with {type(arith).__name__}; save "
                        "networks from isospike.exact.convert or isospike.exact.reference")
    kw = arith.kw
    gen = kw["generator"]
    options = {"backend": kw["backend"], "leak": float(kw["leak"]), "noise": float(kw["noise"]),
               "noise_model": kw["noise_model"], "count": bool(net._exact_count), "shard": bool(arith.shard),
               "generator": None if gen is None else {"device": gen.device.type}}
    tensors = {} if gen is None else {"generator_state": gen.get_state().clone()}
    return "gates", options, tensors


class Saving(NamedTuple):
    """What a source is saved for, in the refusals of :func:`write_source`: ``what`` the network
    ("exact network"), ``fix`` the way out, ``rebuild`` the call that rebuilds it from a model."""

    what: str
    fix: str
    rebuild: str


_EXACT = Saving("exact network", _FIX, "isospike.exact.convert")


def _refuse(saving: Saving, base: type, why: str) -> TypeError:
    return TypeError(f"isospike.save cannot save this {saving.what}: its source {base.__qualname__} {why}; {saving.fix}")


def write_source(net: nn.Module, base: type, saving: Saving, parameters: bool = False
                 ) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The source model of a network built on a copy of a model of class ``base`` (its spec and
    its tensors, named without the ``source.`` prefix): a Hugging Face model of the families the
    files read, else a torch.fx graph of closed-table layers (``parameters``: list the tensors the
    graph reads directly that are ``nn.Parameter``, so that they load as parameters again).
    TypeError naming the module and ``saving.fix`` for a model a file cannot describe."""
    if _hf_base(base):
        return _write_hf(net, base, saving)
    return _write_fx(net, base, saving, parameters)


def read_source(src: Field, stored: dict[str, Tensor], source: str) -> nn.Module:
    """The source model a file's ``source`` field and its stored tensors describe (eval mode)."""
    kind = src["kind"].choice(("fx", "transformers"))
    reader: Callable[[Field, dict[str, Tensor], str], nn.Module] = _read_fx if kind == "fx" else _read_hf
    return reader(src, stored, source).eval()


class _SourceTracer(fx.Tracer):
    """Leaves are the closed table's torch layers (exactly those classes: a user's subclass is
    traced through) and torch's other layers (refused by name); containers and the user's own
    modules are traced through."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return type(m) in SOURCE_TYPES or super().is_leaf_module(m, module_qualified_name)


def _where(node: fx.Node) -> str:
    """The module path a traced node came from (fx records the stack of modules being called)."""
    stack = node.meta.get("nn_module_stack") or {}
    path = next(reversed(stack), "") if stack else ""
    return f" in the module at {path!r}" if path else " in its own forward"


def _write_fx(net: nn.Module, base: type, saving: Saving, parameters: bool) -> tuple[dict[str, Any], dict[str, Tensor]]:
    root = copy.copy(net)  # shares the submodules; only the class (its forward) differs
    root.__class__ = base
    tracer = _SourceTracer()
    try:
        graph = tracer.trace(root)
        gm = fx.GraphModule(root, graph, class_name=base.__name__ if is_identifier(base.__name__) else "GraphModule")
    except Exception as exc:  # noqa: BLE001 - whatever the user's forward raises under tracing
        raise _refuse(saving, base, f"cannot be traced by torch.fx ({type(exc).__name__}: {one_line(exc, 200)})") from None
    modules: dict[str, Any] = {}
    attrs: list[str] = []
    for node in gm.graph.nodes:
        target = str(node.target)
        if node.op in ("call_module", "get_attr") and not is_module_path(target):
            raise _refuse(saving, base, f"has a module or attribute path {target[:80]!r} that is not dotted plain names")
        if node.op == "call_module":
            m = gm.get_submodule(target)
            if type(m) not in SOURCE_TYPES:
                raise _refuse(saving, base, f"holds {type(m).__module__}.{type(m).__qualname__} at {target!r}, outside the "
                              f"layers a file may hold ({', '.join(sorted(SOURCE_CODECS))})")
            try:
                modules[target] = write_source_module(m)
            except TypeError as exc:
                raise _refuse(saving, base, f"holds {type(m).__qualname__} at {target!r} that a file cannot describe "
                              f"({one_line(exc, 200)})") from None
        elif node.op == "get_attr":
            owner, _, name = target.rpartition(".")
            if not isinstance(getattr(gm.get_submodule(owner), name, None), Tensor):
                raise _refuse(saving, base, f"reads the attribute {target!r}, which is not a tensor")
            attrs.append(target)
    allowed = set(FUNCTIONS.values())
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target not in allowed:
            try:
                name = _get_qualified_name(node.target)
            except Exception:  # noqa: BLE001 - a callable fx cannot name
                name = repr(node.target)[:80]
            raise _refuse(saving, base, f"calls {name}{_where(node)}, outside the "
                          "operations a file may hold (isospike.serialize.graph.FUNCTIONS)")
        if node.op == "call_method" and node.target not in METHODS:
            raise _refuse(saving, base, f"calls the tensor method {node.target!r}{_where(node)}, outside the methods a file may "
                          "hold (isospike.serialize.graph.METHODS)")
    try:
        nodes = write_graph(gm)
    except TypeError as exc:
        raise _refuse(saving, base, f"calls an operation outside the closed tables ({one_line(exc, 300)})") from None
    state = {k: v.detach().contiguous().clone() for k, v in gm.state_dict().items()}
    source = {"kind": "fx", "class_name": gm.__class__.__name__, "modules": modules, "attrs": sorted(set(attrs)),
              "graph": nodes}
    if parameters:  # tensors read directly (not through a leaf module) that are parameters of the model
        leaves = sorted(modules)
        source["parameters"] = sorted(
            a for a in set(attrs) if not any(a.startswith(p + ".") for p in leaves)
            and isinstance(getattr(gm.get_submodule(a.rpartition(".")[0]), a.rpartition(".")[2]), nn.Parameter))
    return source, state


# ---------------------------------------------------------------------------------- Hugging Face
def _hf_base(base: type) -> bool:
    """Whether ``base`` is a transformers model class (transformers is not imported for others)."""
    transformers = sys.modules.get("transformers")
    return transformers is not None and isinstance(base, type) and issubclass(base, transformers.PreTrainedModel)


def _write_hf(net: nn.Module, base: type, saving: Saving) -> tuple[dict[str, Any], dict[str, Tensor]]:
    import transformers

    config: Any = net.config
    model_type = getattr(config, "model_type", None)
    if model_type not in model_types(files=True) or base.__name__ not in architectures(model_type) \
            or getattr(transformers, base.__name__, None) is not base:
        raise TypeError(f"isospike.save cannot save a {saving.what} of the Hugging Face class {base.__qualname__} "
                        f"(model_type {model_type!r}): files rebuild only transformers' own classes of the families "
                        f"{', '.join(model_types(files=True))}; rebuild it with {saving.rebuild}("
                        f"AutoModel.from_pretrained(folder)) instead")
    attn = config._attn_implementation
    if attn not in ATTENTION:
        raise TypeError(f"isospike.save cannot save a {saving.what} whose attention is {attn!r}: files hold "
                        f"{' or '.join(ATTENTION)} (load the model with attn_implementation='sdpa')")
    cfg = {k: v for k, v in config.to_dict().items() if not k.startswith("_") and k != "transformers_version"}
    cfg = json.loads(json.dumps(cfg, default=_json_default, allow_nan=True))
    check_config(Field(cfg, "config", "the model's config"), model_type, base.__name__, error=TypeError)
    state: dict[str, Tensor] = {}
    seen: set[int] = set()
    for k, v in net.state_dict(keep_vars=True).items():
        if id(v) not in seen:  # tied weights (an LM head sharing the embedding) are stored once
            seen.add(id(v))
            state[k] = v.detach().contiguous().clone()
    return {"kind": "transformers", "model_type": model_type, "architecture": base.__name__,
            "attn_implementation": attn, "config": cfg}, state


def _read_hf(src: Field, stored: dict[str, Tensor], source: str) -> nn.Module:
    try:
        import transformers  # noqa: F401 - the families' classes
    except ImportError:
        raise FileFormatError(f"{source}: the network's source is a Hugging Face model and transformers is not "
                              "installed (pip install transformers)") from None
    s = src.object({"kind", "model_type", "architecture", "attn_implementation", "config"})
    model_type = s["model_type"].choice(model_types(files=True), "Hugging Face model types")
    architecture = s["architecture"].choice(architectures(model_type), f"{model_type} architectures")
    attn = s["attn_implementation"].choice(ATTENTION)
    check_config(s["config"], model_type, architecture)
    with offline():
        return build(s["config"], model_type, architecture, attn, stored, source)


# ---------------------------------------------------------------------------------- torch.fx sources
def _read_fx(src: Field, stored: dict[str, Tensor], source: str) -> nn.Module:
    s = src.object({"kind", "class_name", "modules", "attrs", "graph", "parameters"})
    class_name = s["class_name"].identifier()
    declared = s["modules"].object()
    for name, spec in declared.items():
        if not is_module_path(name):
            raise spec.error("declared under a dotted module path of plain names (e.g. 'features.0')")
    names = sorted(declared)
    for a, b in zip(names, names[1:]):
        if b.startswith(a + "."):
            raise FileFormatError(f"{source}: the declared modules {a!r} and {b!r} overlap; each leaf module has its "
                                  "own path")
    modules: dict[str, Any] = {p: read_source_module(spec, lambda key: None) for p, spec in declared.items()}
    attrs = sorted({a.module_path() for a in s["attrs"].items(max_len=100_000)})
    listed = s.get("parameters")  # (files of site-coded networks) read directly, loaded as nn.Parameter
    parameters = set() if listed is None else {a.module_path() for a in listed.items(max_len=100_000)}
    direct = {a for a in attrs if not any(a.startswith(p + ".") for p in names)}
    if listed is not None and not parameters <= direct:
        raise listed.error("attributes of 'attrs' the graph reads directly (not tensors of a declared module)")
    for a in attrs:
        owner = next((p for p in names if a.startswith(p + ".")), None)
        if owner is not None:  # a tensor of a declared module read directly (tied weights)
            own = dict(modules[owner].named_parameters()) | dict(modules[owner].named_buffers())
            tensor = own.get(a[len(owner) + 1:])
            if tensor is None:
                raise FileFormatError(f"{source}: the attribute {a!r} names no tensor of the module {owner!r}")
        else:
            if a in declared or any(p.startswith(a + ".") for p in names):
                raise FileFormatError(f"{source}: the attribute {a!r} overlaps a declared module")
            tensor = stored.get(a)
            if tensor is None:
                raise FileFormatError(f"{source}: the attribute {a!r} has no stored tensor 'source.{a}'")
            if a in parameters:
                if not tensor.is_floating_point():
                    raise FileFormatError(f"{source}: the parameter {a!r} is stored as {tensor.dtype}; parameters are "
                                          "floating tensors")
                tensor = nn.Parameter(tensor)
        modules[a] = tensor

    graph = read_graph(s["graph"], set(declared), set(attrs))
    try:
        gm = fx.GraphModule(modules, graph, class_name=class_name)
    except (RuntimeError, AttributeError, TypeError, KeyError) as exc:
        raise FileFormatError(f"{source}: the graph does not match its modules ({one_line(exc, 200)})") from None
    own = gm.state_dict(keep_vars=True)
    check_stored(own, stored, {}, source)
    for key, value in stored.items():
        if value.dtype not in DTYPES.values():
            raise FileFormatError(f"{source}: the tensor {key!r} has the dtype {value.dtype}, which no source holds")
    try:
        gm.load_state_dict(stored, strict=True, assign=True)
    except RuntimeError as exc:
        raise FileFormatError(f"{source}: the stored tensors do not fit the source ({one_line(exc, 200)})") from None
    for key, t in list(gm.named_parameters()) + list(gm.named_buffers()):
        if t.is_meta:
            raise FileFormatError(f"{source}: no stored tensor for {key!r}; the file is damaged")
    return gm


# ---------------------------------------------------------------------------------- loading
def _read_generator(f: Field, tensors: dict[str, Tensor], source: str) -> torch.Generator | None:
    if f.is_none:
        return None
    device = f.object({"device"})["device"].choice(("cpu", "cuda"))
    state = tensors.get("generator_state")
    try:
        gen = torch.Generator(device=device)
    except RuntimeError:
        raise FileFormatError(f"{source}: the network's random generator was on {device}, which this machine "
                              "lacks") from None
    want = gen.get_state()
    if state is None or state.dtype != want.dtype or tuple(state.shape) != tuple(want.shape):
        raise FileFormatError(f"{source}: the generator state must be a stored uint8 tensor 'generator_state' of "
                              f"shape {tuple(want.shape)}; the file is damaged or crafted")
    try:
        gen.set_state(state)
    except (RuntimeError, ValueError) as exc:
        raise FileFormatError(f"{source}: the stored generator state is invalid ({one_line(exc, 120)})") from None
    return gen


def load_exact(root: Field, tensors: dict[str, Tensor], source: str) -> nn.Module:
    """The exact network a file of kind ``"exact"`` describes (``root``: its 'isospike' metadata)."""
    import isospike.exact as exact

    r = root.object(_TOP_LEVEL)
    if r["format"].value != FORMAT:
        raise FileFormatError(f"{source}: unsupported exact network format {str(r['format'].value)[:60]!r} (this "
                              f"isospike reads {FORMAT}); save it again with this version")
    arith = r["arith"].choice(("gates", "torch"))
    opts = r["options"].object(_OPTIONS if arith == "gates" else set())
    known = {"generator_state"} if arith == "gates" and not opts["generator"].is_none else set()
    stored = {k.removeprefix("source."): v for k, v in tensors.items() if k.startswith("source.")}
    stray = sorted(set(tensors) - {f"source.{k}" for k in stored} - known)
    if stray:
        raise FileFormatError(f"{source}: unexpected tensors {stray[:5]}; the file is damaged")
    for key in stored:  # (fx sources also compare them with their own names; transformers reads them as data)
        if not _TENSOR_NAME.match(key):
            raise FileFormatError(f"{source}: the tensor name {key[:60]!r} is not a dotted path of plain names")
    kw: dict[str, Any] = {}
    if arith == "gates":
        from isospike.exact.backends import BACKEND_NAMES
        from isospike.exact.backends.neuron import NOISE_MODELS

        kw = dict(backend=opts["backend"].choice(BACKEND_NAMES), leak=opts["leak"].number(0.0, 1.0, lo_open=True),
                  noise=opts["noise"].number(0.0, MAX_NOISE), noise_model=opts["noise_model"].choice(NOISE_MODELS),
                  count=opts["count"].boolean(), shard=opts["shard"].boolean(),
                  generator=_read_generator(opts["generator"], tensors, source))
    model = read_source(r["source"], stored, source)
    try:
        return exact.convert(model, **kw) if arith == "gates" else exact.reference(model)
    except (TypeError, ValueError) as exc:
        raise FileFormatError(f"{source}: the stored options or source do not make an exact network "
                              f"({one_line(exc, 200)})") from None
