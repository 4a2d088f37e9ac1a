"""The module types a saved network may hold: how each is written, and how it is read back.

A closed table maps a type name to a writer and a reader. A reader takes the untrusted
specification as a :class:`~isospike.schema.Field` (every constructor argument checked
for type and range; unknown arguments refused) and the tensors stored for that module, and builds
the module. Layers whose size the file declares (Linear, Conv, BatchNorm...) are built on the
``meta`` device, which allocates nothing: their real tensors are the stored ones, assigned after
their shapes were checked, so a file cannot make the loader allocate more than it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from isospike.codec import MAX_CURVE_SAMPLES, MAX_SIZE, MAX_WINDOW, ModuleCodec, Stored, built, needed
from isospike.schema import Field

__all__ = ["MAX_CURVE_SAMPLES", "MAX_SIZE", "MAX_WINDOW", "ModuleCodec", "Stored", "built", "needed"]  # re-exported

_built = built


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
            "in_crossbar": m.in_crossbar}


# what a CountingSynapse may wrap
_SYNAPSE_LAYERS = ("Linear", "Conv1d", "Conv2d", "Conv3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d",
                   "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "CrossbarLinear", "CrossbarConv1d", "CrossbarConv2d")


def read_synapse(f: Field, stored: Stored, resolve: Callable[[str], nn.Module | None] | None = None) -> nn.Module:
    """A CountingSynapse, wired at construction: ``resolve(path)`` gives the already built
    population its ``silent_source`` names (a masked-TTFS population declared by the same file)."""
    from isospike.conversion.timefold import CountingSynapse
    from isospike.neurons.ttfs import TTFSPopulation

    f.object({"type", "layer", "spike_input", "static_input", "reads_device", "event_size", "silent_source",
              "in_crossbar"})
    layer = read_module(f["layer"], lambda key: stored(f"layer.{key}"), allowed=_SYNAPSE_LAYERS)
    event = f["event_size"]
    src = f["silent_source"]
    source = None
    if not src.is_none:
        path = src.module_path()
        found = resolve(path) if resolve is not None else None
        if not isinstance(found, TTFSPopulation):
            raise src.error("the path of a TTFS population the file declares")
        source = found
    return CountingSynapse(layer, f["spike_input"].boolean(), f["static_input"].boolean(), f["reads_device"].boolean(),
                           event_size=None if event.is_none else event.number(0.0, lo_open=True), silent_source=source,
                           in_crossbar=f["in_crossbar"].boolean())


_needed = needed


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
        "CountingSynapse": ModuleCodec(_write_synapse, read_synapse),
        "TimeBroadcast": ModuleCodec(lambda m, _: {"type": "TimeBroadcast"}, _read_broadcast),
        "ElementwiseScale": ModuleCodec(lambda m, _: {"type": "ElementwiseScale"}, _read_scale),
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


def all_codecs() -> dict[str, ModuleCodec]:
    """The closed table: the layers and glue above, and the populations of the registered codings
    (each coding declares how its population types are written and read)."""
    from isospike.conversion.coding import population_codecs

    return {**CODECS, **population_codecs()}


def _type_name(m: nn.Module, table: dict[str, ModuleCodec]) -> str:
    """The codec name of a module: its own class, or for a subclass of a plain torch layer that
    adds nothing isospike saves (e.g. a user's ``MyLinear(nn.Linear)``), that layer's name."""
    name = type(m).__name__
    if name in table and (name not in CODECS or type(m).__module__.startswith(("torch.nn", "isospike."))):
        return name
    for base in type(m).__mro__[1:]:
        if base.__module__.startswith("torch.nn") and base.__name__ in CODECS:
            return base.__name__
    return ""


def write_module(m: nn.Module, paths: dict[int, str]) -> dict[str, Any]:
    """The JSON specification of module ``m`` (``paths``: module id -> path, for references)."""
    table = all_codecs()
    codec = table.get(_type_name(m, table))
    if codec is None:
        from isospike.conversion.coding import codings

        raise TypeError(f"cannot save a module of type {type(m).__name__}: isospike.save handles the networks "
                        f"returned by isospike.convert ({', '.join(codings())})")
    return codec.write(m, paths)


def read_module(field: Field, stored: Stored, allowed: tuple[str, ...] | None = None) -> nn.Module:
    """Build the module a file specifies (closed set of types; ``allowed`` narrows it)."""
    table = all_codecs()
    kind = field["type"].choice(allowed if allowed is not None else tuple(table), "module types a saved network holds")
    return table[kind].read(field, stored)


# ------------------------------------------------------------------------- ANN layers of exact sources
# The source model of a saved exact network (isospike.serialize.exact) is an fx graph whose leaf
# modules are exactly these torch types (a subclass may override forward: it is traced through,
# never saved under its parent's name). Sizes are built on the meta device, as above.
MAX_DIMS = 64  # entries of a normalized_shape


def _eps(field: Field) -> float:
    return field.number(0.0, 1.0, lo_open=True)


def _layer_norm_codec() -> ModuleCodec:
    def write(m: nn.Module, _: dict[int, str]) -> dict[str, Any]:
        assert isinstance(m, nn.LayerNorm)  # the codec of that type
        return {"type": "LayerNorm", "args": dict(normalized_shape=list(m.normalized_shape), eps=m.eps,
                                                  elementwise_affine=m.elementwise_affine, bias=m.bias is not None)}

    def read(f: Field, _: Stored) -> nn.Module:
        a = f["args"].object({"normalized_shape", "eps", "elementwise_affine", "bias"})
        return _on_meta(f, nn.LayerNorm, normalized_shape=list(a["normalized_shape"].integers(None, 1, MAX_SIZE)),
                        eps=_eps(a["eps"]), elementwise_affine=a["elementwise_affine"].boolean(), bias=a["bias"].boolean())
    return ModuleCodec(write, read)


def _rms_norm_codec() -> ModuleCodec:
    def write(m: nn.Module, _: dict[int, str]) -> dict[str, Any]:
        assert isinstance(m, nn.RMSNorm)  # the codec of that type
        return {"type": "RMSNorm", "args": dict(normalized_shape=list(m.normalized_shape), eps=m.eps,
                                                elementwise_affine=m.elementwise_affine)}

    def read(f: Field, _: Stored) -> nn.Module:
        a = f["args"].object({"normalized_shape", "eps", "elementwise_affine"})
        return _on_meta(f, nn.RMSNorm, normalized_shape=list(a["normalized_shape"].integers(None, 1, MAX_SIZE)),
                        eps=None if a["eps"].is_none else _eps(a["eps"]),
                        elementwise_affine=a["elementwise_affine"].boolean())
    return ModuleCodec(write, read)


def _group_norm_codec() -> ModuleCodec:
    def write(m: nn.Module, _: dict[int, str]) -> dict[str, Any]:
        assert isinstance(m, nn.GroupNorm)  # the codec of that type
        return {"type": "GroupNorm", "args": dict(num_groups=m.num_groups, num_channels=m.num_channels, eps=m.eps,
                                                  affine=m.affine, bias=m.bias is not None if m.affine else True)}

    def read(f: Field, _: Stored) -> nn.Module:
        a = f["args"].object({"num_groups", "num_channels", "eps", "affine", "bias"})
        return _on_meta(f, nn.GroupNorm, num_groups=a["num_groups"].integer(1, MAX_SIZE),
                        num_channels=a["num_channels"].integer(1, MAX_SIZE), eps=_eps(a["eps"]),
                        affine=a["affine"].boolean(), bias=a["bias"].boolean())
    return ModuleCodec(write, read)


def _write_embedding(m: nn.Module, _: dict[int, str]) -> dict[str, Any]:
    assert isinstance(m, nn.Embedding)  # the codec of that type
    if m.max_norm is not None:
        raise TypeError("cannot save an nn.Embedding with max_norm (it renormalizes its weight in place at every call); "
                        "set max_norm=None or save the model's state dict and convert it again")
    return {"type": "Embedding", "args": dict(num_embeddings=m.num_embeddings, embedding_dim=m.embedding_dim,
                                              padding_idx=m.padding_idx, scale_grad_by_freq=m.scale_grad_by_freq,
                                              sparse=m.sparse)}


def _read_embedding(f: Field, _: Stored) -> nn.Module:
    a = f["args"].object({"num_embeddings", "embedding_dim", "padding_idx", "scale_grad_by_freq", "sparse"})
    num = a["num_embeddings"].integer(1, MAX_SIZE)
    pad = a["padding_idx"]
    return _on_meta(f, nn.Embedding, num_embeddings=num, embedding_dim=a["embedding_dim"].integer(0, MAX_SIZE),
                    padding_idx=None if pad.is_none else pad.integer(-num, num - 1),
                    scale_grad_by_freq=a["scale_grad_by_freq"].boolean(), sparse=a["sparse"].boolean())


def _max_pool_codec(cls: type[nn.Module], dims: int) -> ModuleCodec:
    def write(m: nn.Module, _: dict[int, str]) -> dict[str, Any]:
        return {"type": cls.__name__, "args": dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                                                   dilation=m.dilation, return_indices=m.return_indices,
                                                   ceil_mode=m.ceil_mode)}

    def read(f: Field, _: Stored) -> nn.Module:
        a = f["args"].object({"kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"})
        kw = dict(kernel_size=_size_or_sizes(a["kernel_size"], dims, 1),
                  stride=None if a["stride"].is_none else _size_or_sizes(a["stride"], dims, 1),
                  padding=_size_or_sizes(a["padding"], dims, 0), dilation=_size_or_sizes(a["dilation"], dims, 1),
                  return_indices=a["return_indices"].boolean(), ceil_mode=a["ceil_mode"].boolean())
        return _built(f, lambda: cls(**kw))
    return ModuleCodec(write, read)


def _activation_codec(cls: type[nn.Module], numbers: dict[str, tuple[float, float]] = {},  # noqa: B006 - read only
                      flags: tuple[str, ...] = ()) -> ModuleCodec:
    """An elementwise activation whose arguments are bounded numbers and booleans. ``inplace`` is
    written False (the same values, computed into a new tensor) and refused when a file says True:
    in place, an activation applied to the input overwrites the caller's tensor."""
    def write(m: nn.Module, _: dict[int, str]) -> dict[str, Any]:
        return {"type": cls.__name__, "args": {k: False if k == "inplace" else getattr(m, k) for k in (*numbers, *flags)}}

    def read(f: Field, _: Stored) -> nn.Module:
        a = f["args"].object(set(numbers) | set(flags))
        kw: dict[str, Any] = {k: a[k].number(lo, hi) for k, (lo, hi) in numbers.items()}
        kw.update({k: a[k].boolean() for k in flags})
        if kw.get("inplace"):
            raise a["inplace"].error("false: a loaded network never works in place (an activation applied to the "
                                     "input would overwrite the caller's tensor)")
        return _built(f, lambda: cls(**kw))
    return ModuleCodec(write, read)


def _softmax_codec(cls: type[nn.Module]) -> ModuleCodec:
    def read(f: Field, _: Stored) -> nn.Module:
        dim = f["args"].object({"dim"})["dim"]
        return cls(None if dim.is_none else dim.integer(-MAX_DIMS, MAX_DIMS))
    return ModuleCodec(lambda m, _: {"type": cls.__name__, "args": {"dim": m.dim}}, read)


def _gelu_codec() -> ModuleCodec:
    def read(f: Field, _: Stored) -> nn.Module:
        return nn.GELU(f["args"].object({"approximate"})["approximate"].choice(("none", "tanh")))
    return ModuleCodec(lambda m, _: {"type": "GELU", "args": {"approximate": m.approximate}}, read)


def _source_codecs() -> dict[str, tuple[type[nn.Module], ModuleCodec]]:
    """Type name -> (the exact torch class, its codec)."""
    plain = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
             nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
             nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Flatten, nn.Unflatten, nn.Identity)
    table: dict[str, tuple[type[nn.Module], ModuleCodec]] = {cls.__name__: (cls, CODECS[cls.__name__]) for cls in plain}
    inplace = ("inplace",)
    extra: list[tuple[type[nn.Module], ModuleCodec]] = [
        (nn.LayerNorm, _layer_norm_codec()), (nn.RMSNorm, _rms_norm_codec()), (nn.GroupNorm, _group_norm_codec()),
        (nn.Embedding, ModuleCodec(_write_embedding, _read_embedding)),
        (nn.MaxPool1d, _max_pool_codec(nn.MaxPool1d, 1)), (nn.MaxPool2d, _max_pool_codec(nn.MaxPool2d, 2)),
        (nn.MaxPool3d, _max_pool_codec(nn.MaxPool3d, 3)),
        (nn.GELU, _gelu_codec()), (nn.Softmax, _softmax_codec(nn.Softmax)), (nn.LogSoftmax, _softmax_codec(nn.LogSoftmax)),
        (nn.ReLU, _activation_codec(nn.ReLU, flags=inplace)), (nn.ReLU6, _activation_codec(nn.ReLU6, flags=inplace)),
        (nn.SiLU, _activation_codec(nn.SiLU, flags=inplace)), (nn.Mish, _activation_codec(nn.Mish, flags=inplace)),
        (nn.Hardswish, _activation_codec(nn.Hardswish, flags=inplace)),
        (nn.Hardsigmoid, _activation_codec(nn.Hardsigmoid, flags=inplace)),
        (nn.Tanh, _activation_codec(nn.Tanh)), (nn.Sigmoid, _activation_codec(nn.Sigmoid)),
        (nn.Softsign, _activation_codec(nn.Softsign)),
        (nn.LeakyReLU, _activation_codec(nn.LeakyReLU, {"negative_slope": (-1e6, 1e6)}, inplace)),
        (nn.ELU, _activation_codec(nn.ELU, {"alpha": (-1e6, 1e6)}, inplace)),
        (nn.Hardtanh, _activation_codec(nn.Hardtanh, {"min_val": (-1e6, 1e6), "max_val": (-1e6, 1e6)}, inplace)),
        (nn.Softplus, _activation_codec(nn.Softplus, {"beta": (-1e6, 1e6), "threshold": (-1e6, 1e6)})),
    ]
    table.update({cls.__name__: (cls, codec) for cls, codec in extra})
    return table


SOURCE_CODECS = _source_codecs()
SOURCE_TYPES = frozenset(cls for cls, _ in SOURCE_CODECS.values())


def write_source_module(m: nn.Module) -> dict[str, Any]:
    """The JSON specification of a leaf module of an exact network's source (its type must be
    one of :data:`SOURCE_CODECS` exactly; TypeError otherwise)."""
    entry = SOURCE_CODECS.get(type(m).__name__)
    if entry is None or entry[0] is not type(m):
        raise TypeError(f"cannot save a module of type {type(m).__qualname__} ({type(m).__module__})")
    return entry[1].write(m, {})


def read_source_module(field: Field, stored: Stored) -> nn.Module:
    """Build the leaf module a file specifies for an exact network's source (closed set)."""
    kind = field["type"].choice(tuple(SOURCE_CODECS), "module types an exact network's source may hold")
    return SOURCE_CODECS[kind][1].read(field, stored)
