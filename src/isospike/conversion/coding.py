"""What a coding is, in one object, and the registry of codings.

A :class:`Coding` gathers everything the library needs to know of one coding: its name, its
typed options (a frozen dataclass of :class:`CodingOptions` with defaults and validation: the one
source of its options, defaults and their documentation), the function that converts a model,
the population types it places (each states what it computes and how it is checked: see
:mod:`isospike.neurons.populations`), how those populations are written to and read from a saved
file, and the guarantee its layers carry. Each coding is defined in one module that ends with

    RATE = register(Coding("rate", RateOptions, build_rate, populations={"TimeFoldedNeuron": codec}, ...))

and :func:`isospike.convert`, :func:`isospike.save` / :func:`isospike.load`, :mod:`isospike.nir`,
:func:`isospike.equivalent`, :func:`isospike.verify`, the command line and the reports walk the
registry instead of naming codings. Adding a coding is one new module plus its registration.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from torch import nn

from isospike.errors import UnsupportedLayerError, check_count

if TYPE_CHECKING:
    from isospike.codec import ModuleCodec


@dataclass(frozen=True)
class CodingOptions:
    """Base of every coding's options: ``timesteps`` (the simulation length T) plus the coding's
    own fields. Construction checks each value against its declared type (``int``, ``float``,
    ``bool``, ``str``, a ``Literal[...]`` of choices, ``X | None``; other annotations are the
    coding's to check in its ``__post_init__``), so a wrong option fails where it is given."""

    timesteps: int

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _checked(f.name, getattr(self, f.name), hints.get(f.name, Any))
            object.__setattr__(self, f.name, value)  # a whole float given for an int field is stored as int
        check_count(self.timesteps, "timesteps")

    def as_dict(self) -> dict[str, Any]:
        """The options as plain values, field by field."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


Front = Literal["auto", "graph", "sites"]
Products = Literal["digital", "coded", "binary"]


@dataclass(frozen=True)
class TimeCodingOptions(CodingOptions):
    """Options every coding with time shares (rate, TTFS, M-TTFS, sigma-delta), besides T.

    front: how the model is read.
        ``"graph"``: symbolic tracing (``torch.fx``) of a ReLU network: each ReLU becomes a
        population and the spikes flow from layer to layer over the T steps (a
        :class:`~isospike.conversion.network.SpikingNetwork`; NIR export).
        ``"sites"``: any eager model (Hugging Face decoders and encoders, ViT, modern CNNs): the
        activation entering each weight-bearing operation is coded there by the coding's population
        over its own window (a copy of the model's own class; see
        :mod:`isospike.conversion.sites`).
        ``"auto"`` (default): the graph when the model traces and holds only layers the graph
        converts, the sites otherwise.
    products: (sites) products of two activations -- attention's Q K^T and P V: ``"digital"``
        computes them as they are (counted as multiply-accumulates), ``"coded"`` codes both
        operands with the coding's populations first, ``"binary"`` (Otters' 1-bit K / V) codes the
        left operand (Q, the probabilities) and binarizes the right one (K^T, V) per head vector:
        ``sign * mean|.|`` over its feature axis, so spikes drive sign-selected additions.
    channel_scales: (sites) one scale per input channel of a site (its largest |x| on the
        calibration data; the neurons of channel c code x / scale[c], the synapses decode it back):
        per-neuron thresholds, which LLM activations with outlier channels need. False: one scale
        per site. The operands of products of two activations (``products="coded"`` / ``"binary"``)
        keep one scale per site: no weight takes their channel scales, and the contracted axis of
        attention's P V runs over key positions.
    channel_split: (sites, with ``channel_scales``) a percentile (0-100) of each channel's |x| on
        the calibration data where its range splits in two: one population codes the value clipped
        there (its fine span), a second codes what lies beyond it on the coarse span (up to the
        channel's largest |x|); the synapses decode the sum. The second population is silent unless
        |x| exceeds the split, so the rare huge values of LLMs' outlier channels (a few tokens,
        hundreds of times the rest) cost the other tokens no resolution and few spikes. None (default):
        one population per channel, spanning its largest |x|. (With a split, ``percentile`` is not used:
        the split is each channel's clip.)
    split_headroom: (with ``channel_split``) the second population spans up to this multiple of the
        channel's largest |x| on the calibration data (>= 1; default 1). Massive activations on
        other inputs can exceed what calibration saw; headroom keeps them at a coarser step.
    """

    front: Front = "auto"
    products: Products = "digital"
    channel_scales: bool = False
    channel_split: float | None = None
    split_headroom: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.channel_split is not None:
            if not 0.0 < self.channel_split < 100.0:
                raise ValueError(f"channel_split must be a percentile in (0, 100), got {self.channel_split}")
            if not self.channel_scales:
                raise ValueError("channel_split splits each input channel's range: convert with channel_scales=True")
        if not self.split_headroom >= 1.0:
            raise ValueError(f"split_headroom must be >= 1 (a multiple of the calibration's largest |x|), got "
                             f"{self.split_headroom}")
        if self.split_headroom != 1.0 and self.channel_split is None:
            raise ValueError("split_headroom widens the second population of a split channel: give channel_split too")
        if self.front == "graph" and self.site_only():
            raise ValueError(f"{', '.join(self.site_only())} code the sites of any model (front='sites'); the graph "
                             "front codes each ReLU with one span: convert with front='sites' (or 'auto')")

    def site_only(self) -> list[str]:
        """The options given here that only the site front end honours (their names)."""
        given = [("channel_scales", self.channel_scales), ("channel_split", self.channel_split is not None),
                 ("products", self.products != "digital")]
        return [name for name, on in given if on]


def _checked(name: str, value: Any, kind: Any) -> Any:
    """``value`` if it fits the annotation ``kind`` (ints given as whole floats become ints);
    a TypeError (wrong kind of value) or ValueError (a value outside the choices) naming it."""
    origin = get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = get_args(kind)
        if value is None and type(None) in options:
            return None
        errors: list[Exception] = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _checked(name, value, option)
            except (TypeError, ValueError) as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise TypeError(f"{name} must be {_describe(kind)}, got {value!r}")
    if origin is Literal:
        choices = get_args(kind)
        if isinstance(value, bool) or value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in choices)}, got {value!r}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    elif kind is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        return int(float(value))
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        return float(value)
    elif kind is str and not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {value!r}")
    return value


def _describe(kind: Any) -> str:
    origin = get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(k) for k in get_args(kind))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(kind))
    return "None" if kind is type(None) else getattr(kind, "__name__", str(kind))


Builder = Callable[[nn.Module, Any, Any], nn.Module]  # (model, options, calibration) -> network
SiteBuilder = Callable[[Any, Any], nn.Module]  # (site statistics, options) -> the site's population


@dataclass(frozen=True)
class Coding:
    """One coding, whole.

    name: what ``isospike.convert(model, coding=name)`` takes.
    options: its :class:`CodingOptions` dataclass (fields, defaults, validation, docs).
    build: ``build(model, options, calibration) -> network``, the conversion itself.
    populations: the population types it places, by class name, with how each is written to and
        read from a saved file (:class:`isospike.codec.ModuleCodec`); NIR export and
        import use the same specification inside their metadata.
    guarantee: what its layers carry (:mod:`isospike.guarantees`), for docs and reports.
    summary: one line for listings (``isospike.codings(details=True)``, the CLI).
    needs_calibration: whether conversion measures anything on data.
    equivalent, verify: for networks that are not a graph of populations (exact gate circuits):
        ``equivalent(net)`` and ``verify(net, x, tolerance)``; None: the generic walkers of
        :func:`isospike.equivalent` / :func:`isospike.verify` over the populations.
    simulation_samples: how many samples reports simulate at most (None: all): for codings whose
        simulation is slow on a CPU (gate circuits); with a bit-exact guarantee, checked on those
        samples, the accuracy over the rest is its equivalent's.
    site: for codings with time, ``site(stats, options)``: the population that codes one site of
        any model (:class:`isospike.conversion.sites.build.SiteStats`: its span and sign) -- what
        the site front end places (options ``front`` / ``products``); None: graph front only.
    products: (with ``site``) how products of two activations are handled, for ``describe()``.
    """

    name: str
    options: type[CodingOptions]
    build: Builder
    populations: Mapping[str, ModuleCodec] = field(default_factory=dict)
    guarantee: str = ""
    summary: str = ""
    needs_calibration: bool = True
    equivalent: Callable[[nn.Module], nn.Module] | None = None
    verify: Callable[[nn.Module, Any, float], Any] | None = None
    simulation_samples: int | None = None
    site: SiteBuilder | None = None

    @property
    def default_timesteps(self) -> int:
        """T when ``timesteps`` is not given (the options' default)."""
        default = {f.name: f.default for f in dataclasses.fields(self.options)}["timesteps"]
        assert isinstance(default, int)  # every coding's options give timesteps a default
        return default

    def make_options(self, **values: Any) -> CodingOptions:
        """The coding's options from keyword values (defaults for the others). An unknown name is
        a TypeError listing the accepted ones; a wrong value a TypeError/ValueError naming it."""
        accepted = [f.name for f in dataclasses.fields(self.options)]
        unknown = sorted(set(values) - set(accepted))
        if unknown:
            raise TypeError(f"isospike.convert(coding={self.name!r}) got unexpected option(s) {', '.join(unknown)}; "
                            f"accepted: {', '.join(accepted)}")
        return self.options(**values)

    def convert(self, model: nn.Module, calibration: Any = None, **values: Any) -> nn.Module:
        """Convert ``model`` with options ``values`` (see :func:`convert`)."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if "device" in values:  # the old name of synapse=; in PyTorch `device` means where tensors live
            from isospike.devices.arguments import _UNSET, resolve_synapse

            if "synapse" not in {f.name for f in dataclasses.fields(self.options)}:
                raise TypeError(f"isospike.convert(coding={self.name!r}) has no device= option: to run the network on a "
                                "torch device, convert it and call snn.to(device)")
            chosen = resolve_synapse(values.pop("synapse", _UNSET), values.pop("device"),
                                     f"isospike.convert(coding={self.name!r})")
            values["synapse"] = chosen
        options = self.make_options(**values)
        if isinstance(calibration, Iterator):  # a generator is read more than once (statistics, tracing)
            calibration = list(calibration)
        front = getattr(options, "front", "graph")
        site_only = bool(options.site_only()) if isinstance(options, TimeCodingOptions) else False
        if front == "sites" or (front == "auto" and self.site is not None
                                and (site_only or _keyword_calibration(calibration))):
            return self._convert_sites(model, options, calibration)
        try:
            return self.build(model, options, calibration)
        except UnsupportedLayerError as exc:  # graph passes shared by the codings do not know the name
            if front == "auto" and self.site is not None:  # not a graph of ReLUs: any model goes by its sites
                return self._convert_sites(model, options, calibration)
            raise exc.for_coding(self.name) from None

    def _convert_sites(self, model: nn.Module, options: Any, calibration: Any) -> nn.Module:
        from isospike.conversion.sites.build import convert_sites

        if self.site is None:
            raise ValueError(f"the {self.name!r} coding has no site front end (front='sites'); use front='graph'")
        try:
            return convert_sites(model, self.name, options, calibration, self.site)
        except UnsupportedLayerError as exc:
            raise exc.for_coding(self.name) from None

    def describe(self) -> dict[str, Any]:
        """Name, summary, guarantee, default time steps, each option's default, and (codings with a
        site front end) the rule for products of two activations."""
        out = {"name": self.name, "summary": self.summary, "guarantee": self.guarantee,
               "default_timesteps": self.default_timesteps,
               "options": {f.name: (None if f.default is dataclasses.MISSING else f.default)
                           for f in dataclasses.fields(self.options)}}
        if self.site is not None:
            out["fronts"] = ("graph", "sites")
            out["products"] = PRODUCTS_RULE
        return out


PRODUCTS_RULE = ("products of two activations (attention's Q K^T and P V): 'digital' (default) computes them as "
                 "they are and counts their multiply-accumulates as non-spiking work; 'coded' first codes both "
                 "operands with the coding's populations (each at its own site), so the product multiplies "
                 "decoded spike values; 'binary' (Otters' 1-bit K and V) codes the left operand (Q, the "
                 "probabilities) at its site and binarizes the right one (K^T, V) per head vector -- sign times "
                 "the mean magnitude over its feature axis -- so each spike drives sign-selected additions. "
                 "Softmax, norms, GELU/SiLU, RoPE and residual additions stay digital.")


def _keyword_calibration(calibration: Any) -> bool:
    """Calibration given as keyword arguments (a dict, or a list of dicts): only the site front
    end calls a model that way."""
    if isinstance(calibration, dict):
        return True
    return isinstance(calibration, (list, tuple)) and bool(calibration) and isinstance(calibration[0], dict)


_CODINGS: dict[str, Coding] = {}


def register(coding: Coding) -> Coding:
    """Add ``coding`` to the registry (its name must be new, its population type names too)."""
    if not isinstance(coding, Coding):
        raise TypeError(f"register expects an isospike.conversion.coding.Coding, got {type(coding).__name__}")
    old = _CODINGS.get(coding.name)
    if old is not None and old is not coding:
        raise ValueError(f"coding {coding.name!r} is already registered")
    for other in _CODINGS.values():
        clash = set(other.populations) & set(coding.populations)
        if other.name != coding.name and clash:
            raise ValueError(f"coding {coding.name!r} declares population type(s) {sorted(clash)} that {other.name!r} "
                             "already declares; give the population class its own name")
    _CODINGS[coding.name] = coding
    return coding


def codings() -> list[str]:
    """Names of the registered codings, sorted ("exact" included)."""
    return sorted(_CODINGS)


def get_coding(name: str) -> Coding:
    """The registered coding ``name`` (ValueError naming the registered ones otherwise)."""
    if not isinstance(name, str) or name not in _CODINGS:
        raise ValueError(f"unknown coding {name!r}; available: {', '.join(codings())}")
    return _CODINGS[name]


def coding_of(net: nn.Module, api: str = "isospike") -> Coding:
    """The registered coding a converted network was built with (its ``coding`` attribute); a
    TypeError naming ``api`` for anything else."""
    name = getattr(net, "coding", None)
    if not isinstance(net, nn.Module) or not isinstance(name, str) or name not in _CODINGS:
        raise TypeError(f"{api} expects a network from isospike.convert or isospike.exact.convert, "
                        f"got {type(net).__name__}")
    return _CODINGS[name]


def population_codecs() -> dict[str, ModuleCodec]:
    """How each registered population type is saved and loaded, by class name."""
    return {kind: codec for c in _CODINGS.values() for kind, codec in c.populations.items()}


def convert(model: nn.Module, coding: str = "rate", *, timesteps: int | None = None, calibration: Any = None,
            **options: Any) -> nn.Module:
    """Convert an ANN into a spiking network with the named coding.

    Args:
        model: the ANN (an ``nn.Module``; it is copied, never modified).
        coding: one of :func:`codings` ("rate", "ttfs", "mttfs", "sigma_delta", "exact", ...).
        timesteps: simulation length T (default: the coding's, ``get_coding(name).default_timesteps``).
        calibration: inputs used to measure thresholds/levels: a tensor, an ``(inputs, targets)``
            pair or an iterable of batches.
        options: the coding's options (the fields of its options dataclass, e.g.
            ``isospike.conversion.rate.RateOptions``).

    Returns the spiking network; ``snn(x)`` gives the decoded output, shaped like ``model(x)``.
    Raises :class:`isospike.UnsupportedLayerError` naming any layer the coding cannot convert.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    spec = get_coding(coding)
    if timesteps is not None:
        options["timesteps"] = check_count(timesteps, "timesteps")
    return spec.convert(model, calibration, **options)
