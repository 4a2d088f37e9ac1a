"""Saving and loading converted spiking networks: one safetensors file holding every tensor, with
the network's structure as JSON in the file's metadata (no pickle anywhere).

    isospike.save(snn, "snn.safetensors")
    snn2 = isospike.load("snn.safetensors")      # identical outputs and counts

The structure is the converted fx graph: each node (input, module call, function call, method
call, output) with its arguments, and each module by type and constructor arguments, from a
fixed list of the types conversion produces. Functions are resolved by name from an allowlist
(``operator``, ``torch``, ``torch.nn.functional``), never imported from arbitrary modules.
"""

from __future__ import annotations

import builtins
import importlib
import json
import operator
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, fx, nn

from isospike._io import atomic_write

FORMAT = "isospike.snn/1"
_ALLOWED_FUNCTION_MODULES = ("operator", "torch", "torch.nn.functional", "_operator", "builtins")
# Names a saved graph may not call even though their module is allowed: file access, code
# generation, global state, and the helpers that call arbitrary objects.
_REFUSED_FUNCTIONS = {"call", "methodcaller", "attrgetter", "load", "save", "compile", "from_file", "export",
                      "set_default_device", "set_default_dtype", "set_default_tensor_type", "manual_seed", "seed",
                      "set_num_threads", "set_grad_enabled", "use_deterministic_algorithms"}
_ALLOWED_BUILTINS = {"getattr", "len"}  # x.shape / len(x) in traced models


# ---------------------------------------------------------------------------------- modules
def _conv_spec(m: nn.Module) -> dict:
    return dict(in_channels=m.in_channels, out_channels=m.out_channels, kernel_size=list(m.kernel_size),
                stride=list(m.stride), padding=m.padding if isinstance(m.padding, str) else list(m.padding),
                dilation=list(m.dilation), groups=m.groups, bias=m.bias is not None, padding_mode=m.padding_mode)


def _pool_spec(m: nn.Module) -> dict:
    spec = dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding, ceil_mode=m.ceil_mode,
                count_include_pad=m.count_include_pad)
    if not isinstance(m, nn.AvgPool1d):
        spec["divisor_override"] = m.divisor_override
    return spec


def _device_spec(device) -> dict | None:
    if device is None:
        return None
    t = np.linspace(0.0, device.t_end, 257)
    var = device.variation
    return {"name": device.name, "source": device.source, "times": t.tolist(), "values": device(t).tolist(),
            "variation": None if var is None else {"sigma": var.sigma, "kind": var.kind, "granularity": var.granularity}}


def _device_from(spec: dict | None):
    if spec is None:
        return None
    from isospike.devices import DeviceVariation, OptoelectronicSynapse

    var = spec["variation"]
    return OptoelectronicSynapse.from_samples(spec["times"], spec["values"], name=spec["name"], source=spec["source"],
                                              variation=None if var is None else DeviceVariation(**var))


def _module_spec(m: nn.Module, paths: dict[int, str]) -> dict:
    from isospike.conversion.sigma_delta import SigmaDeltaPopulation
    from isospike.conversion.timefold import CountingSynapse, ElementwiseScale, TimeBroadcast, TimeFoldedNeuron
    from isospike.conversion.ttfs import TTFSPopulation
    from isospike.devices.memristive import CrossbarLayer

    kind = type(m).__name__
    if isinstance(m, CrossbarLayer):
        base = _conv_spec(m) if isinstance(m, (nn.Conv1d, nn.Conv2d)) else \
            dict(in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None)
        return {"type": kind, "args": base, "adc_bits": m.adc_bits}
    if isinstance(m, nn.Linear):
        return {"type": "Linear", "args": dict(in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None)}
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return {"type": kind, "args": _conv_spec(m)}
    if isinstance(m, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        return {"type": kind, "args": _pool_spec(m)}
    if isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)):
        return {"type": kind, "args": {"output_size": m.output_size}}
    if isinstance(m, nn.Flatten):
        return {"type": kind, "args": {"start_dim": m.start_dim, "end_dim": m.end_dim}}
    if isinstance(m, nn.Unflatten):
        return {"type": kind, "args": {"dim": m.dim, "unflattened_size": list(m.unflattened_size)}}
    if isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)):
        return {"type": kind, "args": {"p": m.p}}
    if isinstance(m, nn.Identity):
        return {"type": kind, "args": {}}
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
        return {"type": kind, "args": dict(num_features=m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                                           track_running_stats=m.track_running_stats)}
    if isinstance(m, CountingSynapse):
        src = m.silent_source
        return {"type": kind, "layer": _module_spec(m.layer, paths), "spike_input": m.spike_input,
                "static_input": m.static_input, "reads_device": m.reads_device, "event_size": m.event_size,
                "silent_source": paths.get(id(src)) if src is not None else None,
                "in_crossbar": bool(getattr(m, "in_crossbar", False))}
    if isinstance(m, TimeFoldedNeuron):
        n = m.neuron
        return {"type": kind, "static_input": m.static_input,
                "neuron": {"reset": n.reset_mode if hasattr(n, "reset_mode") else n.reset, "leak": n.leak}}
    if isinstance(m, TimeBroadcast):
        return {"type": kind}
    if isinstance(m, ElementwiseScale):
        return {"type": kind}
    if isinstance(m, TTFSPopulation):
        return {"type": kind, "timesteps": m.window, "scale": m.scale, "rounding": m.rounding, "signed": m.signed,
                "device": _device_spec(m.device), "dead_zone": m.dead_zone}
    if isinstance(m, SigmaDeltaPopulation):
        return {"type": kind, "threshold": m.threshold, "static_input": m.static_input,
                "max_spikes_per_step": m.max_spikes_per_step}
    raise TypeError(f"cannot save a module of type {type(m).__name__}: isospike.save handles the networks "
                    "returned by isospike.convert (rate, ttfs, mttfs, sigma_delta)")


def _build_module(spec: dict) -> nn.Module:
    from isospike.conversion.sigma_delta import SigmaDeltaPopulation
    from isospike.conversion.timefold import CountingSynapse, ElementwiseScale, TimeBroadcast, TimeFoldedNeuron
    from isospike.conversion.ttfs import TTFSPopulation
    from isospike.devices import memristive
    from isospike.neurons import IFNeuron

    kind = spec["type"]
    plain = {c.__name__: c for c in (
        nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
        nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
        nn.Dropout3d, nn.Identity, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)}
    crossbars = {c.__name__: c for c in (memristive.CrossbarLinear, memristive.CrossbarConv1d, memristive.CrossbarConv2d)}
    if kind in crossbars:
        m = crossbars[kind](**_tuples(spec["args"]))
        m.adc_bits = spec["adc_bits"]
        m.calibrating = False
        m._samples = []
        m.register_buffer("adc_full_scale", torch.tensor(0.0))
        return m
    if kind in plain:
        return plain[kind](**_tuples(spec["args"]))
    if kind == "CountingSynapse":
        m = CountingSynapse(_build_module(spec["layer"]), spec["spike_input"], spec["static_input"], spec["reads_device"])
        m.event_size = spec["event_size"]
        if spec.get("in_crossbar"):
            m.in_crossbar = True
        return m
    if kind == "TimeFoldedNeuron":
        n = spec["neuron"]
        return TimeFoldedNeuron(IFNeuron(reset=n["reset"], leak=n["leak"]), spec["static_input"])
    if kind == "TimeBroadcast":
        return TimeBroadcast()
    if kind == "ElementwiseScale":
        return ElementwiseScale(torch.ones(()))  # the saved buffer (any shape) is loaded next
    if kind == "TTFSPopulation":
        return TTFSPopulation(spec["timesteps"], spec["scale"], spec["rounding"], spec["signed"],
                              _device_from(spec["device"]), 0, spec["dead_zone"])
    if kind == "SigmaDeltaPopulation":
        return SigmaDeltaPopulation(spec["threshold"], spec["static_input"], spec["max_spikes_per_step"])
    raise ValueError(f"unknown module type {kind!r} in the saved network (written by a newer isospike?)")


def _tuples(args: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}


# ---------------------------------------------------------------------------------- graph
def _function_name(fn: Callable) -> str:
    mod = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "")
    if fn in vars(operator).values() and getattr(operator, fn.__name__, None) is fn:
        return f"operator:{fn.__name__}"
    if getattr(fn, "__name__", "") in _ALLOWED_BUILTINS and getattr(builtins, fn.__name__) is fn:
        return f"builtins:{fn.__name__}"
    for m in ("torch.nn.functional", "torch"):
        module = importlib.import_module(m)
        if getattr(module, getattr(fn, "__name__", ""), None) is fn:
            return f"{m}:{fn.__name__}"
    raise TypeError(f"cannot save a call to {mod}.{name}: only operator, torch and torch.nn.functional functions "
                    f"and {sorted(_ALLOWED_BUILTINS)}")


def _resolve_function(ref: str) -> Callable:
    """The function a saved graph names, from the allowlist only (a crafted file must not reach
    file access, code execution or attribute walks)."""
    module, _, name = ref.partition(":")
    refused = (module not in _ALLOWED_FUNCTION_MODULES or not name.isidentifier() or name.startswith("_")
               or name in _REFUSED_FUNCTIONS or (module == "builtins" and name not in _ALLOWED_BUILTINS))
    if refused:
        raise ValueError(f"refusing to load the function {ref!r}: not an allowed operation of a spiking network")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn) or getattr(fn, "__module__", module) == "torch.serialization":
        raise ValueError(f"unknown or refused function {ref!r} in the saved network")
    return fn


def _check_node(op: str, target: str, args: tuple) -> None:
    """Refuse graph nodes that reach private attributes (the way out of any allowlist)."""
    if op == "call_method" and (not target.isidentifier() or target.startswith("_")):
        raise ValueError(f"refusing to load a call of the method {target!r}")
    if op == "call_function" and target == "builtins:getattr":
        attr = args[1] if len(args) > 1 else None
        if not isinstance(attr, str) or attr.startswith("_"):
            raise ValueError(f"refusing to load getattr of {attr!r}: only public tensor attributes (x.shape)")


def _encode_arg(a: Any) -> Any:
    if isinstance(a, fx.Node):
        return {"node": a.name}
    if isinstance(a, (list, tuple)):
        return {"seq": [_encode_arg(x) for x in a], "tuple": isinstance(a, tuple)}
    if isinstance(a, dict):
        return {"dict": {k: _encode_arg(v) for k, v in a.items()}}
    if isinstance(a, slice):
        return {"slice": [_encode_arg(a.start), _encode_arg(a.stop), _encode_arg(a.step)]}
    if isinstance(a, torch.dtype):
        return {"dtype": str(a).removeprefix("torch.")}
    if a is None or isinstance(a, (bool, int, float, str)):
        return a
    raise TypeError(f"cannot save a graph argument of type {type(a).__name__}")


def _decode_arg(a: Any, env: dict[str, fx.Node]) -> Any:
    if isinstance(a, dict):
        if "node" in a:
            return env[a["node"]]
        if "seq" in a:
            seq = [_decode_arg(x, env) for x in a["seq"]]
            return tuple(seq) if a["tuple"] else seq
        if "dict" in a:
            return {k: _decode_arg(v, env) for k, v in a["dict"].items()}
        if "slice" in a:
            return slice(*(_decode_arg(x, env) for x in a["slice"]))
        if "dtype" in a:
            dt = getattr(torch, a["dtype"], None)
            if not isinstance(dt, torch.dtype):
                raise ValueError(f"unknown dtype {a['dtype']!r}")
            return dt
    return a


def _graph_spec(gm: fx.GraphModule) -> list[dict]:
    nodes = []
    for n in gm.graph.nodes:
        target = n.target
        if n.op == "call_function":
            target = _function_name(n.target)
        elif n.op not in ("placeholder", "output", "call_module", "call_method", "get_attr"):
            raise TypeError(f"cannot save graph node op {n.op!r}")
        nodes.append({"op": n.op, "name": n.name, "target": str(target), "args": _encode_arg(tuple(n.args)),
                      "kwargs": _encode_arg(dict(n.kwargs))})
    return nodes


# ---------------------------------------------------------------------------------- API
def save(snn: nn.Module, path: str | Path) -> Path:
    """Write a network from :func:`isospike.convert` to ``path`` (safetensors; structure in its
    metadata). Atomic: ``path`` holds the old file or the complete new one."""
    from safetensors.torch import save_file

    from isospike.conversion.network import SpikingNetwork

    if not isinstance(snn, SpikingNetwork):
        raise TypeError(f"isospike.save expects a network from isospike.convert, got {type(snn).__name__} "
                        "(exact networks are rebuilt with isospike.exact.convert(model); save the model's state dict)")
    gm = snn.graph_module
    paths = {id(m): p for p, m in gm.named_modules() if p}
    called = {str(n.target) for n in gm.graph.nodes if n.op == "call_module"}
    modules = {p: _module_spec(gm.get_submodule(p), paths) for p in sorted(called)}
    attrs = sorted({str(n.target) for n in gm.graph.nodes if n.op == "get_attr"})
    structure = {"format": FORMAT, "coding": snn.coding, "timesteps": snn.timesteps, "fold_time": snn.fold_time,
                 "readout": snn.readout, "info": snn.info, "modules": modules, "attrs": attrs, "graph": _graph_spec(gm)}
    tensors = {f"graph_module.{k}": v.detach().contiguous().clone() for k, v in gm.state_dict().items()}
    for a in attrs:
        tensors[f"attr.{a}"] = getattr_path(gm, a).detach().contiguous().clone()
    crossbar = getattr(snn, "crossbar", None)
    meta = {"isospike": json.dumps(structure, default=_json_default)}
    if crossbar is not None:
        meta["crossbar"] = json.dumps({k: v for k, v in crossbar.__dict__.items()}, default=_json_default)
    return atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))


def _json_default(o: Any) -> Any:
    if isinstance(o, Tensor):
        return o.tolist()
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"cannot store {type(o).__name__} in the network's JSON structure")


def getattr_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def load(path: str | Path) -> nn.Module:
    """Read a network written by :func:`save` (same outputs, same spike and operation counts)."""
    from safetensors import SafetensorError, safe_open

    from isospike.conversion.network import SpikingNetwork

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved network at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise ValueError(f"{path} is not a readable safetensors file ({reason}); isospike.load reads networks written "
                         "by isospike.save or `isospike convert` (snn.safetensors)") from None
    if "isospike" not in meta:
        raise ValueError(f"{path} is a safetensors file but not an isospike network (no 'isospike' metadata); "
                         "plain state dicts are loaded with model.load_state_dict(safetensors.torch.load_file(path))")
    structure = json.loads(meta["isospike"])
    if structure.get("format") != FORMAT:
        raise ValueError(f"unsupported network format {structure.get('format')!r} (this isospike reads {FORMAT})")
    modules = {p: _build_module(spec) for p, spec in structure["modules"].items()}
    root: dict[str, Any] = dict(modules)
    for a in structure["attrs"]:
        root[a] = tensors.pop(f"attr.{a}")
    graph = fx.Graph()
    env: dict[str, fx.Node] = {}
    for spec in structure["graph"]:
        args = _decode_arg(spec["args"], env)
        kwargs = _decode_arg(spec["kwargs"], env)
        op, target = spec["op"], spec["target"]
        _check_node(op, target, args)
        if op == "placeholder":
            node = graph.placeholder(target)
        elif op == "output":
            node = graph.output(args[0])
        elif op == "call_module":
            node = graph.call_module(target, args, kwargs)
        elif op == "call_method":
            node = graph.call_method(target, args, kwargs)
        elif op == "get_attr":
            node = graph.get_attr(target)
        elif op == "call_function":
            node = graph.call_function(_resolve_function(target), args, kwargs)
        else:
            raise ValueError(f"unknown graph op {op!r}")
        node.name = spec["name"]
        env[spec["name"]] = node
    gm = fx.GraphModule(root, graph)
    state = {k.removeprefix("graph_module."): v for k, v in tensors.items() if k.startswith("graph_module.")}
    for key, value in state.items():  # buffers whose shape is data-dependent (per-channel levels, thresholds)
        owner_path, _, name = key.rpartition(".")
        owner = gm.get_submodule(owner_path) if owner_path else gm
        old = owner._buffers.get(name)
        if old is not None and (old.shape != value.shape or old.dtype != value.dtype):
            owner._buffers[name] = value.clone()
        old = owner._parameters.get(name)
        if old is not None and old.dtype != value.dtype:  # float64 networks stay float64
            owner._parameters[name] = nn.Parameter(value.clone(), requires_grad=old.requires_grad)
    missing, unexpected = gm.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("_fold_cache")]:
        raise ValueError(f"saved tensors do not match the structure: missing {missing}, unexpected {unexpected}")
    for p, spec in structure["modules"].items():
        if spec["type"] == "CountingSynapse" and spec["silent_source"]:
            object.__setattr__(gm.get_submodule(p), "silent_source", gm.get_submodule(spec["silent_source"]))
    snn = SpikingNetwork(gm, structure["timesteps"], structure["coding"], structure["info"],
                         fold_time=structure["fold_time"], readout=structure["readout"])
    if "crossbar" in meta:
        from isospike.devices import MemristiveCrossbar

        snn.crossbar = MemristiveCrossbar(**json.loads(meta["crossbar"]))
    return snn.eval()
