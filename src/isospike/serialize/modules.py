"""The module types a saved network may hold: how each is written, and how it is read back.

A closed table maps a type name to a writer and a reader. A reader takes the untrusted
specification as a :class:`~isospike.serialize.schema.Field` (every constructor argument checked
for type and range; unknown arguments refused) and the tensors stored for that module, and builds
the module. Layers whose size the file declares (Linear, Conv, BatchNorm...) are built on the
``meta`` device, which allocates nothing: their real tensors are the stored ones, assigned after
their shapes were checked, so a file cannot make the loader allocate more than it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from isospike.errors import FileFormatError
from isospike.serialize.schema import Field

# Sizes a file may declare for one dimension of a layer (the stored tensors must match them).
MAX_SIZE = 2**31 - 1
# The longest TTFS window a file may declare (each population keeps T + 1 read values).
MAX_WINDOW = 4096
# Samples of a device curve stored in a file.
MAX_CURVE_SAMPLES = 4097

Stored = Callable[[str], "Tensor | None"]  # a module's stored tensor by its state-dict key, or None


class ModuleCodec(NamedTuple):
    """How one module type is written (``write(module, paths) -> dict``) and read
    (``read(field, stored) -> module``)."""

    write: Callable[[nn.Module, dict[int, str]], dict[str, Any]]
    read: Callable[[Field, Stored], nn.Module]


_T = TypeVar("_T")


def _built(field: Field, build: Callable[[], _T]) -> _T:
    """Run a constructor on validated arguments; its own refusals name the file's field."""
    try:
        return build()
    except (ValueError, TypeError, RuntimeError) as exc:
        raise FileFormatError(f"{field.source}: field {field.where} does not describe a valid "
                              f"module ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def _on_meta(field: Field, cls: type[nn.Module], **kwargs: Any) -> nn.Module:
    """``cls(**kwargs)`` on the meta device: shapes without storage."""
    def build() -> nn.Module:
        with torch.device("meta"):
            return cls(**kwargs)
    return _built(field, build)


# ------------------------------------------------------------------------- plain torch layers
def _write_linear(m: nn.Module, _: dict[int, str]) -> dict[str, Any]:
    return {"type": "Linear", "args": _linear_args(m)}


def _linear_args(m: nn.Module) -> dict[str, Any]:
    return dict(in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None)


def _read_linear_args(field: Field) -> dict[str, Any]:
    a = field.object({"in_features", "out_features", "bias"})
    return dict(in_features=a["in_features"].integer(0, MAX_SIZE), out_features=a["out_features"].integer(0, MAX_SIZE),
                bias=a["bias"].boolean())


def _conv_args(m: nn.Module) -> dict[str, Any]:
    assert isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))  # written for the conv codecs (crossbar convs included)
    return dict(in_channels=m.in_channels, out_channels=m.out_channels, kernel_size=list(m.kernel_size),
                stride=list(m.stride), padding=m.padding if isinstance(m.padding, str) else list(m.padding),
                dilation=list(m.dilation), groups=m.groups, bias=m.bias is not None, padding_mode=m.padding_mode)


def _read_conv_args(field: Field, dims: int) -> dict[str, Any]:
    a = field.object({"in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias",
                      "padding_mode"})
    padding = a["padding"]
    return dict(in_channels=a["in_channels"].integer(1, MAX_SIZE), out_channels=a["out_channels"].integer(1, MAX_SIZE),
                kernel_size=a["kernel_size"].integers(dims, 1, 2**16), stride=a["stride"].integers(dims, 1, 2**16),
                padding=padding.choice(("same", "valid")) if isinstance(padding.value, str)
                else padding.integers(dims, 0, 2**16),
                dilation=a["dilation"].integers(dims, 1, 2**16), groups=a["groups"].integer(1, MAX_SIZE),
                bias=a["bias"].boolean(), padding_mode=a["padding_mode"].choice(("zeros", "reflect", "replicate", "circular")))


def _conv_codec(cls: type[nn.Module], dims: int) -> ModuleCodec:
    return ModuleCodec(lambda m, _: {"type": cls.__name__, "args": _conv_args(m)},
                       lambda f, _: _on_meta(f, cls, **_read_conv_args(f["args"], dims)))


def _pool_args(m: nn.Module) -> dict[str, Any]:
    spec = dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding, ceil_mode=m.ceil_mode,
                count_include_pad=m.count_include_pad)
    if not isinstance(m, nn.AvgPool1d):
        spec["divisor_override"] = m.divisor_override
    return spec


def _size_or_sizes(field: Field, dims: int, lo: int) -> int | tuple[int, ...]:
    return field.integer(lo, 2**16) if isinstance(field.value, int) else field.integers(dims, lo, 2**16)


def _pool_codec(cls: type[nn.Module], dims: int) -> ModuleCodec:
    def read(f: Field, _: Stored) -> nn.Module:
        keys = {"kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"} | (
            set() if dims == 1 else {"divisor_override"})
        a = f["args"].object(keys)
        kw: dict[str, Any] = dict(kernel_size=_size_or_sizes(a["kernel_size"], dims, 1),
                                  stride=None if a["stride"].is_none else _size_or_sizes(a["stride"], dims, 1),
                                  padding=_size_or_sizes(a["padding"], dims, 0), ceil_mode=a["ceil_mode"].boolean(),
                                  count_include_pad=a["count_include_pad"].boolean())
        if dims > 1:
            d = a["divisor_override"]
            kw["divisor_override"] = None if d.is_none else d.integer(1, 2**16)
        return _built(f, lambda: cls(**kw))
    return ModuleCodec(lambda m, _: {"type": cls.__name__, "args": _pool_args(m)}, read)


def _adaptive_codec(cls: type[nn.Module], dims: int) -> ModuleCodec:
    def read(f: Field, _: Stored) -> nn.Module:
        size = f["args"].object({"output_size"})["output_size"]
        if isinstance(size.value, list):
            out: Any = tuple(None if s.is_none else s.integer(1, 2**16) for s in size.items(max_len=dims))
        else:
            out = size.integer(1, 2**16)
        return _built(f, lambda: cls(out))
    return ModuleCodec(lambda m, _: {"type": cls.__name__, "args": {"output_size": m.output_size}}, read)


def _read_flatten(f: Field, _: Stored) -> nn.Module:
    a = f["args"].object({"start_dim", "end_dim"})
    return nn.Flatten(a["start_dim"].integer(-64, 64), a["end_dim"].integer(-64, 64))


def _read_unflatten(f: Field, _: Stored) -> nn.Module:
    a = f["args"].object({"dim", "unflattened_size"})
    sizes = tuple(s.integer(-1, MAX_SIZE) for s in a["unflattened_size"].items(max_len=64))
    return _built(f, lambda: nn.Unflatten(a["dim"].integer(-64, 64), sizes))


def _dropout_codec(cls: type[nn.Module]) -> ModuleCodec:
    return ModuleCodec(lambda m, _: {"type": cls.__name__, "args": {"p": m.p}},
                       lambda f, _: cls(f["args"].object({"p"})["p"].number(0.0, 1.0)))


def _batchnorm_codec(cls: type[nn.Module]) -> ModuleCodec:
    def write(m: nn.Module, _: dict[int, str]) -> dict[str, Any]:
        return {"type": cls.__name__, "args": dict(num_features=m.num_features, eps=m.eps, momentum=m.momentum,
                                                   affine=m.affine, track_running_stats=m.track_running_stats)}

    def read(f: Field, _: Stored) -> nn.Module:
        a = f["args"].object({"num_features", "eps", "momentum", "affine", "track_running_stats"})
        return _on_meta(f, cls, num_features=a["num_features"].integer(1, MAX_SIZE),
                        eps=a["eps"].number(0.0, 1.0, lo_open=True),
                        momentum=None if a["momentum"].is_none else a["momentum"].number(0.0, 1.0),
                        affine=a["affine"].boolean(), track_running_stats=a["track_running_stats"].boolean())
    return ModuleCodec(write, read)


# ------------------------------------------------------------------------- isospike modules
def _write_crossbar(m: nn.Module, _: dict[int, str]) -> dict[str, Any]:
    base = _conv_args(m) if isinstance(m, (nn.Conv1d, nn.Conv2d)) else _linear_args(m)
    return {"type": type(m).__name__, "args": base, "adc_bits": m.adc_bits}


def _crossbar_codec(name: str) -> ModuleCodec:
    def read(f: Field, _: Stored) -> nn.Module:
        from isospike.devices import memristive

        cls = getattr(memristive, name)
        args = _read_linear_args(f["args"]) if name == "CrossbarLinear" else \
            _read_conv_args(f["args"], 1 if name == "CrossbarConv1d" else 2)
        m = _on_meta(f, cls, **args)
        assert isinstance(m, memristive.CrossbarLayer)
        bits = f["adc_bits"]
        m.adc_bits = None if bits.is_none else bits.integer(1, 24)
        m.calibrating = False
        m._samples = []
        m.register_buffer("adc_full_scale", torch.empty((), device="meta"))
        return m
    return ModuleCodec(_write_crossbar, read)


def _write_synapse(m: nn.Module, paths: dict[int, str]) -> dict[str, Any]:
    from isospike.conversion.timefold import CountingSynapse

    assert isinstance(m, CountingSynapse)  # the codec of that type
    src = m.silent_source
    return {"type": "CountingSynapse", "layer": write_module(m.layer, paths), "spike_input": m.spike_input,
            "static_input": m.static_input, "reads_device": m.reads_device, "event_size": m.event_size,
            "silent_source": paths.get(id(src)) if src is not None else None,
            "in_crossbar": bool(getattr(m, "in_crossbar", False))}


# what a CountingSynapse may wrap
_SYNAPSE_LAYERS = ("Linear", "Conv1d", "Conv2d", "Conv3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d",
                   "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "CrossbarLinear", "CrossbarConv1d", "CrossbarConv2d")


def _read_synapse(f: Field, stored: Stored) -> nn.Module:
    from isospike.conversion.timefold import CountingSynapse

    f.object({"type", "layer", "spike_input", "static_input", "reads_device", "event_size", "silent_source",
              "in_crossbar"})
    layer = read_module(f["layer"], lambda key: stored(f"layer.{key}"), allowed=_SYNAPSE_LAYERS)
    m = CountingSynapse(layer, f["spike_input"].boolean(), f["static_input"].boolean(), f["reads_device"].boolean())
    event = f["event_size"]
    m.event_size = None if event.is_none else event.number(0.0, lo_open=True)
    if f["in_crossbar"].boolean():
        m.in_crossbar = True
    src = f["silent_source"]
    if not src.is_none:
        src.module_path()  # resolved to the population once every module is built
    return m


def _write_folded_neuron(m: nn.Module, _: dict[int, str]) -> dict[str, Any]:
    from isospike.conversion.timefold import TimeFoldedNeuron

    assert isinstance(m, TimeFoldedNeuron)  # the codec of that type
    n = m.neuron
    return {"type": "TimeFoldedNeuron", "static_input": m.static_input, "neuron": {"reset": n.reset_mode, "leak": n.leak}}


def _needed(stored: Stored, key: str, field: Field) -> Tensor:
    t = stored(key)
    if t is None:
        raise FileFormatError(f"{field.source}: the tensor '{key}' of the module at {field.where} is missing")
    return t


def _read_folded_neuron(f: Field, stored: Stored) -> nn.Module:
    from isospike.conversion.timefold import TimeFoldedNeuron
    from isospike.neurons import IFNeuron

    f.object({"type", "static_input", "neuron"})
    n = f["neuron"].object({"reset", "leak"})
    reset, leak = n["reset"].choice(("subtract", "zero")), n["leak"].number(0.0, 1.0, lo_open=True)
    neuron = _built(f, lambda: IFNeuron(threshold=_needed(stored, "neuron.threshold", f), reset=reset,
                                        v_init=_needed(stored, "neuron.v_init", f), leak=leak,
                                        spike_value=_needed(stored, "neuron.spike_value", f)))
    return TimeFoldedNeuron(neuron, f["static_input"].boolean())


def _device_spec(device: Any) -> dict[str, Any] | None:
    if device is None:
        return None
    t = np.linspace(0.0, device.t_end, 257)
    var = device.variation
    return {"name": device.name, "source": device.source, "times": t.tolist(), "values": device(t).tolist(),
            "variation": None if var is None else {"sigma": var.sigma, "kind": var.kind, "granularity": var.granularity}}


def _read_device(f: Field) -> Any:
    if f.is_none:
        return None
    from isospike.devices import DeviceVariation, OptoelectronicSynapse

    d = f.object({"name", "source", "times", "values", "variation"})
    var = d["variation"]
    variation = None
    if not var.is_none:
        v = var.object({"sigma", "kind", "granularity"})
        variation = DeviceVariation(v["sigma"].number(0.0, 10.0), v["kind"].choice(("gaussian", "uniform")),
                                    v["granularity"].choice(("read", "device", "run")))
    times = d["times"].numbers(MAX_CURVE_SAMPLES, lo=0.0)
    values = d["values"].numbers(MAX_CURVE_SAMPLES)
    return _built(f, lambda: OptoelectronicSynapse.from_samples(times, values, name=d["name"].text(256),
                                                                source=d["source"].text(4096), variation=variation))


def _write_ttfs(m: nn.Module, _: dict[int, str]) -> dict[str, Any]:
    spec = {"type": "TTFSPopulation", "timesteps": m.window, "scale": m.scale, "rounding": m.rounding,
            "signed": m.signed, "device": _device_spec(m.device), "dead_zone": m.dead_zone}
    if m.silence != "zero":  # files of plain (signed) TTFS stay as before
        spec["silence"] = m.silence
    return spec


def _read_ttfs(f: Field, stored: Stored) -> nn.Module:
    from isospike.coding.mttfs import SILENCES
    from isospike.conversion.ttfs import TTFSPopulation

    f.object({"type", "timesteps", "scale", "rounding", "signed", "device", "dead_zone", "silence"})
    T = f["timesteps"].integer(1, MAX_WINDOW)
    silence = f.get("silence")  # absent in files of plain TTFS and in files older than the option
    args = dict(timesteps=T, scale=f["scale"].number(0.0), rounding=f["rounding"].choice(("round", "floor")),
                signed=f["signed"].boolean(), device=_read_device(f["device"]),
                silent_level=_needed(stored, "silent_level", f), dead_zone=f["dead_zone"].integer(0, T),
                silence=None if silence is None else silence.choice(SILENCES))
    return _built(f, lambda: TTFSPopulation(**args))


def _write_sigma_delta(m: nn.Module, _: dict[int, str]) -> dict[str, Any]:
    return {"type": "SigmaDeltaPopulation", "threshold": m.threshold, "static_input": m.static_input,
            "max_spikes_per_step": m.max_spikes_per_step}


def _read_sigma_delta(f: Field, _: Stored) -> nn.Module:
    from isospike.conversion.sigma_delta import SigmaDeltaPopulation

    f.object({"type", "threshold", "static_input", "max_spikes_per_step"})
    most = f["max_spikes_per_step"]
    return SigmaDeltaPopulation(f["threshold"].number(0.0, lo_open=True), f["static_input"].boolean(),
                                None if most.is_none else most.integer(1, MAX_SIZE))


def _read_scale(f: Field, stored: Stored) -> nn.Module:
    from isospike.conversion.timefold import ElementwiseScale

    return ElementwiseScale(_needed(stored, "scale", f))


def _read_broadcast(f: Field, _: Stored) -> nn.Module:
    from isospike.conversion.timefold import TimeBroadcast

    return TimeBroadcast()


def _args_only(cls: type[nn.Module], args: Callable[[nn.Module], dict[str, Any]],
               read: Callable[[Field, Stored], nn.Module]) -> ModuleCodec:
    return ModuleCodec(lambda m, _: {"type": cls.__name__, "args": args(m)}, read)


def _unflatten_args(m: nn.Module) -> dict[str, Any]:
    assert isinstance(m, nn.Unflatten)  # the codec of that type
    return {"dim": m.dim, "unflattened_size": list(m.unflattened_size)}


def _codecs() -> dict[str, ModuleCodec]:
    table: dict[str, ModuleCodec] = {
        "Linear": ModuleCodec(_write_linear, lambda f, _: _on_meta(f, nn.Linear, **_read_linear_args(f["args"]))),
        "Flatten": _args_only(nn.Flatten, lambda m: {"start_dim": m.start_dim, "end_dim": m.end_dim}, _read_flatten),
        "Unflatten": _args_only(nn.Unflatten, _unflatten_args, _read_unflatten),
        "Identity": ModuleCodec(lambda m, _: {"type": "Identity", "args": {}}, lambda f, _: nn.Identity()),
        "CountingSynapse": ModuleCodec(_write_synapse, _read_synapse),
        "TimeFoldedNeuron": ModuleCodec(_write_folded_neuron, _read_folded_neuron),
        "TimeBroadcast": ModuleCodec(lambda m, _: {"type": "TimeBroadcast"}, _read_broadcast),
        "ElementwiseScale": ModuleCodec(lambda m, _: {"type": "ElementwiseScale"}, _read_scale),
        "TTFSPopulation": ModuleCodec(_write_ttfs, _read_ttfs),
        "SigmaDeltaPopulation": ModuleCodec(_write_sigma_delta, _read_sigma_delta),
    }
    for dims, conv in ((1, nn.Conv1d), (2, nn.Conv2d), (3, nn.Conv3d)):
        table[conv.__name__] = _conv_codec(conv, dims)
    for dims, pool in ((1, nn.AvgPool1d), (2, nn.AvgPool2d), (3, nn.AvgPool3d)):
        table[pool.__name__] = _pool_codec(pool, dims)
    for dims, adaptive in ((1, nn.AdaptiveAvgPool1d), (2, nn.AdaptiveAvgPool2d), (3, nn.AdaptiveAvgPool3d)):
        table[adaptive.__name__] = _adaptive_codec(adaptive, dims)
    for drop in (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d):
        table[drop.__name__] = _dropout_codec(drop)
    for bn in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
        table[bn.__name__] = _batchnorm_codec(bn)
    for name in ("CrossbarLinear", "CrossbarConv1d", "CrossbarConv2d"):
        table[name] = _crossbar_codec(name)
    return table


CODECS = _codecs()


def _type_name(m: nn.Module) -> str:
    """The codec name of a module: its own class, or for a subclass of a plain torch layer that
    adds nothing isospike saves (e.g. a user's ``MyLinear(nn.Linear)``), that layer's name."""
    name = type(m).__name__
    if name in CODECS and type(m).__module__.startswith(("torch.nn", "isospike.")):
        return name
    for base in type(m).__mro__[1:]:
        if base.__module__.startswith("torch.nn") and base.__name__ in CODECS:
            return base.__name__
    return ""


def write_module(m: nn.Module, paths: dict[int, str]) -> dict[str, Any]:
    """The JSON specification of module ``m`` (``paths``: module id -> path, for references)."""
    codec = CODECS.get(_type_name(m))
    if codec is None:
        raise TypeError(f"cannot save a module of type {type(m).__name__}: isospike.save handles the networks "
                        "returned by isospike.convert (rate, ttfs, mttfs, sigma_delta)")
    return codec.write(m, paths)


def read_module(field: Field, stored: Stored, allowed: tuple[str, ...] | None = None) -> nn.Module:
    """Build the module a file specifies (closed set of types; ``allowed`` narrows it)."""
    kind = field["type"].choice(allowed if allowed is not None else tuple(CODECS), "module types a saved network holds")
    return CODECS[kind].read(field, stored)
