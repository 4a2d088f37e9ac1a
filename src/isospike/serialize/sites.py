"""Saving and loading site-coded networks: any eager model converted by a coding with time
through the site front end (:mod:`isospike.conversion.sites`), e.g.
``isospike.convert(gpt2, coding="mttfs", calibration={"input_ids": ids})``.

A file (format ``isospike.sites/1``, ``"kind": "sites"``) holds

- ``source``: the float model the network codes, written and read exactly as an exact network's
  source (:func:`isospike.serialize.exact.write_source` / ``read_source``): a ``torch.fx`` graph of
  closed-table layers, or a Hugging Face model of :data:`isospike.serialize.hf.FILE_MODEL_TYPES`
  (closed config sets, built on ``meta`` and checked tensor by tensor). Tensors the graph reads
  directly that were parameters are listed, so that they are weights (and sites) again;
- ``coding``: a registered coding with a site front end, and ``options``: its options
  dataclass's fields, each read by its declared type (a number of bounded range, a boolean, one
  of its ``Literal`` choices, a synapse device curve) before the coding's own
  ``make_options`` validates them;
- ``quantized``: whether the network is the QNN :func:`isospike.equivalent` made (its quantizers
  are rebuilt from the populations it stores);
- ``sites``: in order, each site's ``name`` and ``population``. A name must be a site name of
  the source: a module path of the rebuilt source (for an fx source, one of the leaf modules its
  graph calls: the forward of any other module is flattened into the graph, so a site named by
  it could not be found again; :func:`save_sites` refuses those) or ``<model>``, optionally
  ``#k`` (its k-th further call), or ``<path>.product[#k].a`` / ``.b`` (the operands of a coded
  product). A population is one of a closed table of types (:data:`SITE_TYPES`), the one the
  coding places (asked of the coding itself), with each constructor argument read by type and
  range and its window equal to the network's; its buffers (thresholds, initial membranes,
  silent levels, level reads) are stored as ``sites.<i>.<buffer>`` and must be exactly the ones
  the built population has, of the same shape and dtype, finite;
- ``info``: the conversion's details (JSON data, kept as it is and never acted on).

Loading rebuilds the source, makes its ``Coded<Base>`` copy
(:func:`~isospike.conversion.sites.network.coded_copy`) and places the sites: the loaded network
computes what the saved one computed, bit for bit. No string of the file reaches an import or an
attribute walk: names are compared with the module paths of the rebuilt source, types looked up
in closed tables.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import torch
from torch import Tensor, nn

from isospike._io import atomic_write
from isospike.codec import MAX_SIZE, ModuleCodec, Stored, built, needed
from isospike.conversion.sites.network import CodedNetwork
from isospike.errors import FileFormatError, one_line
from isospike.neurons.sites import ChannelScaled
from isospike.schema import Field

__all__ = ["FORMAT", "KIND", "MAX_SITES", "SITE_TYPES", "load_sites", "save_sites", "site_path"]

FORMAT = "isospike.sites/1"
KIND = "sites"
_TOP_LEVEL = {"format", "kind", "coding", "options", "quantized", "info", "source", "sites"}
MAX_SITES = 2**16  # sites a file may declare (an LLM has a few hundred)
MAX_SITE_NAME = 600
MAX_TIMESTEPS = 2**16  # as spiking files: each call of a site runs its window
MAX_OPTION = 1e12  # magnitude of a real-valued option
ROOT = "<model>"  # the site name of a weight operation in the model's own forward
_FIX = ("save the source model's state dict (safetensors.torch.save_file(model.state_dict(), path)) and convert it "
        "again after loading it (isospike.convert(model, coding=..., calibration=...))")
_PLAIN = re.compile(r"(?P<path>[^#]{1,512})(?:#(?P<k>[1-9][0-9]{0,8}))?\Z")
_PRODUCT = re.compile(r"(?P<path>[^#]{1,512})\.product(?:#[1-9][0-9]{0,8})?\.[ab]\Z")
CHANNEL_SCALE = "channel_scale"  # the tensor of a site coded channel by channel (its scale per channel)
EXCESS_SCALE = "channel_excess_scale"  # a split channel's scale beyond its split (channel_split)
EXCESS_PREFIX = "excess__"  # the buffers of a split channel's second population
MAX_AXIS = 8  # the largest |channel axis| a file may give
_SITE_TENSOR = re.compile(r"sites\.(?P<i>0|[1-9][0-9]{0,5})\.(?P<key>[A-Za-z][A-Za-z0-9_]{0,63})\Z")


def site_path(name: Any, paths: set[str] | frozenset[str]) -> tuple[str, bool] | None:
    """(the module path, whether it is an operand of a coded product) a site name names when the
    path is one of ``paths`` or ``<model>``, else None. Names: ``<path>``, ``<path>#k``,
    ``<path>.product.a`` / ``.b``, ``<path>.product#k.a`` / ``.b``."""
    if not isinstance(name, str) or len(name) > MAX_SITE_NAME:
        return None
    for pattern, product in ((_PLAIN, False), (_PRODUCT, True)):
        m = pattern.match(name)
        if m is not None and (m["path"] == ROOT or m["path"] in paths):
            return m["path"], product
    return None


# ---------------------------------------------------------------------------------- site populations
def _ttfs_codec() -> ModuleCodec:
    from isospike.conversion.coding import population_codecs

    return population_codecs()["TTFSPopulation"]  # the TTFS coding's own (device curves, silence rules)


def _write_ttfs(m: nn.Module) -> dict[str, Any]:
    return _ttfs_codec().write(m, {})


def _read_ttfs(f: Field, stored: Stored) -> nn.Module:
    level = needed(stored, "silent_level", f)
    if level.dim() != 0 or level.dtype != torch.int64:
        raise FileFormatError(f"{f.source}: the site at {f.where} stores its silent level as {level.dtype} "
                              f"{tuple(level.shape)}; a site has one silent level (int64, no dimensions)")
    return _ttfs_codec().read(f, stored)


def _write_rate(m: nn.Module) -> dict[str, Any]:
    from isospike.neurons.sites import RateSite

    assert isinstance(m, RateSite)  # the table's writer of that type
    return {"type": "RateSite", "timesteps": m.window, "signed": m.signed}


def _read_rate(f: Field, stored: Stored) -> nn.Module:
    from isospike.neurons.sites import RateSite

    f.object({"type", "timesteps", "signed"})
    T, signed = f["timesteps"].integer(1, MAX_TIMESTEPS), f["signed"].boolean()
    threshold = needed(stored, "threshold", f)
    if threshold.dim() != 0 or not threshold.is_floating_point():
        raise FileFormatError(f"{f.source}: the site at {f.where} stores its threshold as {threshold.dtype} "
                              f"{tuple(threshold.shape)}; it is one floating value")
    return built(f, lambda: RateSite(float(threshold), T, signed))


def _write_sigma_delta(m: nn.Module) -> dict[str, Any]:
    from isospike.neurons.sites import SigmaDeltaSite

    assert isinstance(m, SigmaDeltaSite)  # the table's writer of that type
    return {"type": "SigmaDeltaSite", "threshold": m.threshold, "timesteps": m.window, "signed": m.signed,
            "max_spikes_per_step": m.max_spikes_per_step}


def _read_sigma_delta(f: Field, _: Stored) -> nn.Module:
    from isospike.neurons.sites import SigmaDeltaSite

    f.object({"type", "threshold", "timesteps", "signed", "max_spikes_per_step"})
    most = f["max_spikes_per_step"]
    threshold, T = f["threshold"].number(0.0, lo_open=True), f["timesteps"].integer(1, MAX_TIMESTEPS)
    signed, cap = f["signed"].boolean(), None if most.is_none else most.integer(1, MAX_SIZE)
    return built(f, lambda: SigmaDeltaSite(threshold, T, signed, cap))


class _SiteCodec(typing.NamedTuple):
    write: Callable[[nn.Module], dict[str, Any]]
    read: Callable[[Field, Stored], nn.Module]


# The population types a site may hold, by class name (the classes themselves are looked up by
# :func:`_site_classes`, never from a file's string).
SITE_TYPES: dict[str, _SiteCodec] = {
    "TTFSPopulation": _SiteCodec(_write_ttfs, _read_ttfs),
    "RateSite": _SiteCodec(_write_rate, _read_rate),
    "SigmaDeltaSite": _SiteCodec(_write_sigma_delta, _read_sigma_delta),
}


def _site_classes() -> dict[type, str]:
    from isospike.neurons.sites import RateSite, SigmaDeltaSite
    from isospike.neurons.ttfs import TTFSPopulation

    return {TTFSPopulation: "TTFSPopulation", RateSite: "RateSite", SigmaDeltaSite: "SigmaDeltaSite"}


def _quantized_population(m: nn.Module) -> nn.Module | None:
    """The population a QNN's quantizer was made from (what a file stores for it)."""
    from isospike.neurons.sites import RateSiteQuantizer, SigmaDeltaSiteQuantizer
    from isospike.neurons.ttfs import LevelQuantizer

    if type(m) is LevelQuantizer:
        return m.population
    if type(m) in (RateSiteQuantizer, SigmaDeltaSiteQuantizer):
        return m.site  # type: ignore[return-value]  # both hold their site population
    return None


# ---------------------------------------------------------------------------------- options
def _option_value(name: str, value: Any) -> Any:
    from isospike.conversion.ttfs import _device_spec
    from isospike.devices import OptoelectronicSynapse

    if isinstance(value, OptoelectronicSynapse):
        return _device_spec(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"isospike.save cannot store the coding option {name}={type(value).__name__}")


def _read_option(f: Field, kind: Any) -> Any:
    """One option from a file, by its declared type (see the module docstring)."""
    from isospike.conversion.ttfs import _read_device
    from isospike.devices import OptoelectronicSynapse

    origin = get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [k for k in get_args(kind) if k is not type(None)]
        if f.is_none and len(options) < len(get_args(kind)):
            return None
        if len(options) != 1:
            raise f.error("a value of its option's type")
        return _read_option(f, options[0])
    if origin is Literal:
        return f.choice(tuple(str(a) for a in get_args(kind)))
    if kind is bool:
        return f.boolean()
    if kind is int:
        return f.integer()
    if kind is float:
        return f.number(-MAX_OPTION, MAX_OPTION)
    if kind is str:
        return f.text(256)
    if kind is OptoelectronicSynapse:
        return _read_device(f)
    raise f.error("an option a file holds")


def _read_options(f: Field, coding: Any) -> Any:
    fields = {fl.name for fl in dataclasses.fields(coding.options)}
    hints = typing.get_type_hints(coding.options)
    entries = f.object(fields)
    values = {"timesteps": entries["timesteps"].integer(1, MAX_TIMESTEPS)}
    values.update({name: _read_option(entry, hints[name]) for name, entry in entries.items() if name != "timesteps"})
    try:
        return coding.make_options(**values)
    except (TypeError, ValueError) as exc:
        raise FileFormatError(f"{f.source}: field {f.where} does not hold valid {coding.name} options "
                              f"({one_line(exc, 200)})") from None


# ---------------------------------------------------------------------------------- saving
def _refuse(why: str) -> TypeError:
    return TypeError(f"isospike.save cannot save this site-coded network: {why}")


def _site_paths(model: nn.Module, spec: Any) -> frozenset[str]:
    """The module paths a site of ``model`` may be named by once its source is rebuilt: an fx
    source's leaf modules (the others are flattened into its graph), a Hugging Face model's
    modules (its own class is rebuilt)."""
    if spec["kind"] == "fx":
        return frozenset(spec["modules"])
    return frozenset(p for p, _ in model.named_modules() if p)


def save_sites(net: CodedNetwork, path: str | Path) -> Path:
    """Write a site-coded network (its source model, coding, options and sites) to ``path``."""
    from safetensors.torch import save_file

    from isospike.conversion.coding import get_coding
    from isospike.serialize.exact import Saving, write_source

    coding = get_coding(net.coding)
    if coding.site is None:
        raise _refuse(f"the {net.coding!r} coding places no sites")
    floats = [k for k, v in [*net.state_dict().items(), *((f"<site {n}>.{k}", v) for n, m in net.sites().items()
                                                         for k, v in m.state_dict().items())]
              if v.is_floating_point() and v.dtype != torch.float32]
    if floats:
        raise _refuse(f"its tensors {floats[:3]} are not float32; files hold float32 networks (snn.float())")
    options: Any = net.coding_options if isinstance(net.coding_options, coding.options) else \
        coding.make_options(timesteps=net.timesteps, products=net.coded_products, front="sites")
    options = dataclasses.replace(options, timesteps=net.timesteps, products=net.coded_products)
    saving = Saving("site-coded network", _FIX, "isospike.convert")
    spec, state = write_source(net, net._coded_base, saving, parameters=True)
    paths = _site_paths(net, spec)
    classes = _site_classes()
    sites: list[dict[str, Any]] = []
    tensors = {f"source.{k}": v for k, v in state.items()}
    for i, (name, module) in enumerate(net.sites().items()):
        if site_path(name, paths) is None:
            where = ("a leaf module its traced graph calls (the forward of any other module is flattened into the graph, "
                     "so the site could not be found again): compute that operation with nn.Linear / nn.Conv, or "
                     if spec["kind"] == "fx" else "one of its modules: ")
            raise _refuse(f"its site {name!r} is not named by {where}{_FIX}")
        channels = module if isinstance(module, ChannelScaled) else None
        parts = [("", channels.population if channels is not None else module)]
        if channels is not None and channels.excess is not None:  # a split channel: its second population
            parts.append((EXCESS_PREFIX, channels.excess))
        entry_i: dict[str, Any] = {"name": name}
        for prefix, part in parts:
            population = _quantized_population(part) if net.quantized else part
            kind = classes.get(type(population))
            if population is None or kind is None:
                raise _refuse(f"the module at its site {name!r} is a {type(part).__name__}, not one of the site "
                              f"populations a file holds ({', '.join(SITE_TYPES)})")
            spec_i = SITE_TYPES[kind].write(population)
            own = {k: v.detach().contiguous().clone() for k, v in population.state_dict().items()}
            try:  # what load reads back (a window beyond the files' bounds, a buffer of another dtype)
                _fill(SITE_TYPES[kind].read(Field(json.loads(json.dumps(spec_i)), f"sites[{i}]", "the network"),
                                            own.get), own, Field(spec_i, f"sites[{i}]", "the network"))
            except FileFormatError as exc:
                raise _refuse(f"its site {name!r} could not be read back ({one_line(exc, 300)})") from None
            entry_i["excess" if prefix else "population"] = spec_i
            tensors.update({f"sites.{i}.{prefix}{k}": v for k, v in own.items()})
        if channels is not None:
            entry_i["channel_axis"] = channels.axis
            tensors[f"sites.{i}.{CHANNEL_SCALE}"] = channels.scale.detach().contiguous().clone()
            if channels.excess_scale is not None:
                tensors[f"sites.{i}.{EXCESS_SCALE}"] = channels.excess_scale.detach().contiguous().clone()
        sites.append(entry_i)
    from isospike.serialize import _json_default

    structure = {"format": FORMAT, "kind": KIND, "coding": net.coding,
                 "options": {f.name: _option_value(f.name, getattr(options, f.name))
                             for f in dataclasses.fields(options)},
                 "quantized": bool(net.quantized), "info": net.info, "source": spec, "sites": sites}
    meta = {"isospike": json.dumps(structure, default=_json_default, allow_nan=True)}
    return atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))


# ---------------------------------------------------------------------------------- loading
def site_codings() -> tuple[str, ...]:
    """The registered codings with a site front end: what a file of this kind may name."""
    from isospike.conversion.coding import codings, get_coding

    return tuple(c for c in codings() if get_coding(c).site is not None)


def _placed_type(coding: Any, options: Any, f: Field) -> str:
    """The population type ``coding`` places at a site under ``options`` (asked of the coding)."""
    from isospike.conversion.sites.build import SiteStats

    try:
        probe = coding.site(SiteStats("<probe>", 1.0, False, torch.zeros(1)), options)
    except (TypeError, ValueError) as exc:
        raise FileFormatError(f"{f.source}: field {f.where} holds options under which {coding.name} places no site "
                              f"({one_line(exc, 200)})") from None
    kind = _site_classes().get(type(probe))
    if kind is None:
        raise FileFormatError(f"{f.source}: the {coding.name} coding places {type(probe).__name__} at its sites, which "
                              "no file holds")
    return kind


def _fill(module: nn.Module, stored: dict[str, Tensor], f: Field) -> None:
    """Put a site's stored buffers in place of the built ones: exactly the same names, shapes and
    dtypes, finite."""
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(stored)), sorted(set(stored) - set(own))
    if missing or unexpected:
        raise FileFormatError(f"{f.source}: the stored tensors of the site at {f.where} do not match its population "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]}); the file is damaged")
    for key, want in own.items():
        got = stored[key]
        if got.dtype != want.dtype or tuple(got.shape) != tuple(want.shape):
            raise FileFormatError(f"{f.source}: the tensor {key!r} of the site at {f.where} is stored as {got.dtype} "
                                  f"{tuple(got.shape)}, its population holds {want.dtype} {tuple(want.shape)}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise FileFormatError(f"{f.source}: the tensor {key!r} of the site at {f.where} holds NaN or infinite "
                                  "values; the file is damaged")
    module.load_state_dict(stored, strict=True)


def _read_population(f: Field, own: dict[str, Tensor], placed: str, coding: str, window: int) -> nn.Module:
    """One site population from its spec ``f`` (of the type the coding places) and its buffers."""
    kind = f["type"].choice((placed,), f"population types of {coding} sites")
    module = SITE_TYPES[kind].read(f, own.get)
    if getattr(module, "window", None) != window:
        raise f.error(f"a population over the network's window of {window} steps")
    _fill(module, own, f)
    return module


def load_sites(root: Field, tensors: dict[str, Tensor], source: str) -> nn.Module:
    """The site-coded network a file of kind ``"sites"`` describes (``root``: its 'isospike'
    metadata; see the module docstring)."""
    from isospike.conversion.coding import get_coding
    from isospike.conversion.sites.build import equivalent_sites
    from isospike.conversion.sites.network import coded_copy
    from isospike.serialize.exact import _TENSOR_NAME, read_source

    r = root.object(_TOP_LEVEL)
    if r["format"].value != FORMAT:
        raise FileFormatError(f"{source}: unsupported site-coded network format {str(r['format'].value)[:60]!r} (this "
                              f"isospike reads {FORMAT}); save it again with this version")
    coding = get_coding(r["coding"].choice(site_codings(), "codings with a site front end"))
    options = _read_options(r["options"], coding)
    T, products = options.timesteps, options.products
    quantized = r["quantized"].boolean()
    info = r["info"].value
    if not isinstance(info, dict):
        raise r["info"].error("an object")
    placed = _placed_type(coding, options, r["options"])

    stored: dict[str, Tensor] = {}
    by_site: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("source."):
            name = key.removeprefix("source.")
            if not _TENSOR_NAME.match(name):
                raise FileFormatError(f"{source}: the tensor name {key[:60]!r} is not a dotted path of plain names")
            stored[name] = value
            continue
        m = _SITE_TENSOR.match(key)
        if m is None:
            raise FileFormatError(f"{source}: unexpected tensor {key[:60]!r} (a file holds source.<name> and "
                                  "sites.<i>.<buffer>); the file is damaged")
        by_site.setdefault(int(m["i"]), {})[m["key"]] = value

    entries = list(r["sites"].items(max_len=MAX_SITES))
    if not entries:
        raise r["sites"].error("a non-empty array of sites")
    stray = sorted(i for i in by_site if i >= len(entries))
    if stray:
        raise FileFormatError(f"{source}: tensors are stored for sites {stray[:5]} that the file does not declare")
    model = read_source(r["source"], stored, source)
    paths = _site_paths(model, r["source"].value)
    sites: dict[str, nn.Module] = {}
    for i, entry in enumerate(entries):
        e = entry.object({"name", "population", "channel_axis", "excess"})
        name = e["name"].text(MAX_SITE_NAME)
        found = site_path(name, paths)
        if found is None:
            raise e["name"].error("a site of the source: a module path it holds (an fx source: one its graph calls) or "
                                  f"'{ROOT}', then '#k' for a further call, or '<path>.product[#k].a' / '.b'")
        if name in sites:
            raise e["name"].error("the name of one site only (it is declared twice)")
        if found[1] and (products not in ("coded", "binary") or (products == "binary" and name.endswith(".b"))):
            raise e["name"].error("a site of a weight operation: the operands of products of two activations are "
                                  "sites only under products='coded' (the left one also under 'binary')")
        own = dict(by_site.get(i, {}))
        scale = own.pop(CHANNEL_SCALE, None)
        excess_scale = own.pop(EXCESS_SCALE, None)
        excess_own = {k.removeprefix(EXCESS_PREFIX): own.pop(k) for k in list(own) if k.startswith(EXCESS_PREFIX)}
        module = _read_population(e["population"], own, placed, coding.name, T)
        excess_f = e.get("excess")
        if (excess_f is None) != (excess_scale is None):
            raise e["name"].error("a split channel with both its excess population and its excess scales, or neither")
        excess = None
        if excess_f is not None:
            excess = _read_population(excess_f, excess_own, placed, coding.name, T)
        elif excess_own:
            raise FileFormatError(f"{source}: tensors of an excess population are stored for the site at "
                                  f"{e['name'].where}, which declares none; the file is damaged")
        axis_f = e.get("channel_axis")
        if (axis_f is None) != (scale is None) or (excess is not None and axis_f is None):
            raise e["name"].error("a site with both a channel axis and its stored channel scales, or neither")
        if axis_f is not None and scale is not None:
            axis = axis_f.integer(-MAX_AXIS, MAX_AXIS)
            for what, values in (("channel scales", scale), ("excess scales", excess_scale)):
                if values is None:
                    continue
                if values.dim() != 1 or values.dtype != torch.float32 or values.numel() > MAX_SIZE or not bool(
                        torch.isfinite(values).all()) or not bool((values > 0).all()) or \
                        values.shape != scale.shape:
                    raise FileFormatError(f"{source}: the {what} of the site at {e['name'].where} are "
                                          f"{values.dtype} {tuple(values.shape)}; they are one positive finite "
                                          "float32 value per channel")
            module = ChannelScaled(module, scale, axis, excess, excess_scale)
        sites[name] = module.eval()
    net = coded_copy(model, coding.name, T, products)
    net.set_sites(sites)
    net.info = info
    net.coding_options = options
    return equivalent_sites(net) if quantized else net
