"""What each NIR node type becomes in isospike: one builder per node type.

:func:`isospike.nir.load` walks a checked NIR graph in topological order and, for each node, calls
``BUILDERS[type(node)]`` (its most specific class in the table), or :func:`_unknown`. A builder
takes the walk's state (:class:`Build`), the node's key and the node; most nodes are one module
computing from the sum of the node's inputs (NIR sums converging edges), made by a function of
``(build, key, node) -> nn.Module`` wrapped in :func:`_layer`. Reading a new node type is one
function and one table entry (name it in :func:`_unknown`'s message too).

Every array a builder reads goes through :mod:`isospike.nir.arrays` (real, finite, whole where a
size is meant; layers built on ``meta``), and every refusal names the source and the node.

Neurons become placeholder activations here, with the population that replaces them recorded in
:attr:`Build.populations` (:func:`isospike.conversion.assemble.assemble_time_folded` swaps them
in once the graph's shapes are known): isospike's own IF neurons, its populations kept in node
metadata (TTFS, M-TTFS, sigma-delta), and :class:`isospike.nir.populations.NIRNeurons` for the LIF,
CubaLIF, LI and recurrent neurons of other tools, their arguments read by ``NEURON_ARGS``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import nir
import numpy as np
import torch
from torch import fx, nn

from isospike.conversion.coding import population_codecs
from isospike.conversion.timefold import ElementwiseScale
from isospike.errors import FileFormatError, one_line
from isospike.neurons import IFNeuron
from isospike.nir import arrays
from isospike.nir.populations import NIRNeurons
from isospike.nir.tables import MAX_INPUT_VALUES, META, by_class
from isospike.schema import Field, parse_json
from isospike.serialize.modules import read_module


@dataclass
class Build:
    """The fx graph under construction while :func:`isospike.nir.load` walks a NIR graph."""

    source: str  # the file (or "the NIR graph"), named in every refusal
    dt: float
    convention: str  # "nir", "standard", "norse", "snntorch", "sinabs" or "rockpool" (see isospike.nir.load)
    nodes: dict[str, Any]  # every node, recurrent weights included
    recurrent: dict[str, str]  # neuron key -> key of its recurrent weight node
    names: dict[str, str]  # node key -> module name
    preds: dict[str, list[str]]  # node key -> keys of the nodes feeding it
    reset: str | None = None  # convention="snntorch": how its Leaky / Synaptic neurons reset (the file cannot say)
    reset_delay: bool = True  # convention="snntorch": their reset_delay
    graph: fx.Graph = field(default_factory=fx.Graph)
    values: dict[str, fx.Node] = field(default_factory=dict)  # node key -> its output in ``graph``
    modules: dict[str, nn.Module] = field(default_factory=dict)
    # module name -> the population replacing its placeholder: an IFNeuron or a factory(static_input)
    populations: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None  # one sample's shape, as the nir.Input node declares it

    def input_of(self, key: str) -> fx.Node:
        """The sum of what feeds node ``key`` (NIR sums converging edges)."""
        ins = [self.values[p] for p in self.preds[key]]
        if not ins:
            raise FileFormatError(f"{self.source}: NIR node {key!r} has no input")
        x = ins[0]
        for other in ins[1:]:
            x = self.graph.call_function(operator.add, (x, other))
        return x

    def call(self, key: str, module: nn.Module, x: fx.Node) -> None:
        """Node ``key`` is ``module`` applied to ``x``."""
        name = self.names[key]
        self.modules[name] = module
        self.values[key] = self.graph.call_module(name, (x,))

    def metadata(self, key: str, node: Any) -> Field | None:
        """isospike's metadata of a node (None when absent or read with convention="standard")."""
        text = None if self.convention == "standard" else (node.metadata or {}).get(META)
        if text is None:
            return None
        return Field(parse_json(text_of(text), self.source, f"the isospike metadata of node {key!r}"),
                     f"nodes[{key!r}].metadata.isospike", self.source)


Builder = Callable[[Build, str, Any], None]
LayerMaker = Callable[[Build, str, Any], nn.Module]


def text_of(v: Any) -> Any:
    """A metadata entry as h5py returns it (str, bytes or a one-element array) unwrapped; what is
    not text is left for :func:`parse_json` to refuse."""
    if isinstance(v, np.ndarray) and v.size == 1:
        return text_of(v.reshape(-1)[0])
    if isinstance(v, np.bytes_):
        return bytes(v)
    return v


def _layer(make: LayerMaker) -> Builder:
    """The builder of a node that is one module computing from the sum of the node's inputs."""

    def build(b: Build, key: str, node: Any) -> None:
        x = b.input_of(key)
        b.call(key, make(b, key, node), x)

    build.__name__ = build.__qualname__ = f"layer({make.__name__})"
    return build


# ------------------------------------------------------------------ the graph's ends
def _input(b: Build, key: str, node: Any) -> None:
    """nir.Input: the network's input; its declared shape is one sample's (Norse writes the
    example batch in front of it)."""
    b.values[key] = b.graph.placeholder("input")
    declared = (node.input_type or {}).get("input") if isinstance(node.input_type, dict) else None
    if declared is None:
        raise FileFormatError(f"{b.source}: the nir.Input node {key!r} declares no input shape "
                              "(input_type['input'])")
    shape = arrays.numbers(declared, b.source, key, "input shape", whole=True).reshape(-1)
    if (shape < 1).any() or shape.size > 8 or math.prod(int(v) for v in shape) > MAX_INPUT_VALUES:
        raise FileFormatError(f"{b.source}: the input shape {shape.tolist()[:8]} of node {key!r} must be at most "
                              f"8 positive sizes with at most {MAX_INPUT_VALUES} values per sample")
    b.input_shape = tuple(int(v) for v in shape)
    if b.convention == "norse" and len(b.input_shape) > 1:
        b.input_shape = b.input_shape[1:]  # Norse writes the example batch into Input


def _output(b: Build, key: str, node: Any) -> None:
    b.graph.output(b.input_of(key))


def _unknown(b: Build, key: str, node: Any) -> None:
    b.input_of(key)  # a node without input is refused as such first
    raise TypeError(f"{b.source}: no isospike module for NIR node {type(node).__name__} ({key!r}); isospike reads "
                    "IF, LIF, CubaLIF, LI, Affine, Linear, Conv1d/2d, AvgPool2d, Scale, Flatten and sums")


# ------------------------------------------------------------------ layers
def _affine(b: Build, key: str, node: Any) -> nn.Module:
    w = arrays.tensor(node.weight, b.source, key, "weight", ndim=2)
    return arrays.linear(w, arrays.tensor(node.bias, b.source, key, "bias", ndim=1), b.source, key)


def _linear(b: Build, key: str, node: Any) -> nn.Module:
    return arrays.linear(arrays.tensor(node.weight, b.source, key, "weight", ndim=2), None, b.source, key)


def _conv(b: Build, key: str, node: Any, dims: int) -> nn.Module:
    src = b.source
    w = arrays.tensor(node.weight, src, key, "weight", ndim=dims + 2)
    groups = arrays.sizes(node.groups, src, key, "groups", 1, 1)[0]
    return arrays.conv(nn.Conv2d if dims == 2 else nn.Conv1d, w, arrays.tensor(node.bias, src, key, "bias", ndim=1),
                       src, key, stride=arrays.sizes(node.stride, src, key, "stride", 1, dims),
                       padding=arrays.sizes(node.padding, src, key, "padding", 0, dims),
                       dilation=arrays.sizes(node.dilation, src, key, "dilation", 1, dims), groups=groups)


def _conv1d(b: Build, key: str, node: Any) -> nn.Module:
    return _conv(b, key, node, 1)


def _conv2d(b: Build, key: str, node: Any) -> nn.Module:
    return _conv(b, key, node, 2)


def _avg_pool(b: Build, key: str, node: Any) -> nn.Module:
    kernel, stride, padding = (arrays.pair(node.kernel_size, b.source, key, "kernel_size", 1),
                               arrays.pair(node.stride, b.source, key, "stride", 1),
                               arrays.pair(node.padding, b.source, key, "padding", 0))
    return nn.AvgPool2d(kernel, stride, padding)


def _scale(b: Build, key: str, node: Any) -> nn.Module:
    return ElementwiseScale(arrays.tensor(node.scale, b.source, key, "scale"))


def _flatten(b: Build, key: str, node: Any) -> nn.Module:
    start, end = (int(arrays.numbers(v, b.source, key, f, whole=True).reshape(-1)[0])
                  for v, f in ((node.start_dim, "start_dim"), (node.end_dim, "end_dim")))
    if not (-8 <= start <= 8 and -8 <= end <= 8):
        raise FileFormatError(f"{b.source}: the start_dim/end_dim of NIR node {key!r} must be in [-8, 8]")
    return nn.Flatten(start if start < 0 else start + 1, end if end < 0 else end + 1)  # NIR's dims are one sample's


# ------------------------------------------------------------------ neurons
def _if(b: Build, key: str, node: Any) -> nn.Module:
    """nir.IF: a recurrent one is another tool's (NIRNeurons); otherwise isospike's population kept
    in the metadata (TTFS, M-TTFS, sigma-delta...), or IF neurons, reset by subtraction and
    started at v_init as the metadata says (reset to 0 from 0 without it)."""
    if key in b.recurrent:
        return _nir_neurons(b, key, node)
    info = b.metadata(key, node)
    if info is None and b.convention not in ("standard", "norse"):  # another tool's IF neurons
        return _nir_neurons(b, key, node)
    if info is not None and info.get("population") is not None:
        b.populations[b.names[key]] = _stored_population(info["population"], _stored_population_tensors(info["buffers"]))
    else:
        b.populations[b.names[key]] = _if_neurons(b, key, node, info)
    return nn.ReLU()  # placeholder activation, replaced by the population


def _if_neurons(b: Build, key: str, node: Any, info: Field | None) -> IFNeuron:
    src = b.source
    v_reset = arrays.numbers(node.v_reset, src, key, "v_reset") if node.v_reset is not None else np.zeros(1)
    if not np.allclose(v_reset, 0):
        raise FileFormatError(f"{src}: NIR IF node {key!r} resets to a nonzero v_reset, which isospike's "
                              "IF populations do not model (they reset to 0 or by subtraction)")
    if info is not None and info.get("threshold") is not None:  # a reader's node (isospike.nir.readers)
        th = finite_numbers(info["threshold"], torch.float32)
        if th.numel() == 0 or bool((th <= 0).any()):
            raise info["threshold"].error("positive thresholds")
    else:
        th_arr = arrays.numbers(node.v_threshold, src, key, "v_threshold") * arrays.numbers(node.r, src, key, "r")
        th = arrays.tensor(th_arr, src, key, "v_threshold x r")
    if th.numel() == 0:
        raise FileFormatError(f"{src}: the v_threshold of NIR IF node {key!r} is empty")
    th = th.flatten()[0] if bool((th == th.flatten()[0]).all()) else th
    reset: Literal["subtract", "zero"] = "zero"
    if info is not None and info["reset"].choice(("subtract", "zero")) == "subtract":
        reset = "subtract"
    v_init = finite_numbers(info["v_init"], torch.float32) if info is not None else torch.tensor(0.0)
    try:
        return IFNeuron(threshold=th, reset=reset, v_init=v_init, spike_value=1.0)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise FileFormatError(f"{src}: NIR IF node {key!r} does not describe IF neurons "
                              f"({one_line(exc, 200)})") from None


def _stored_population(spec: Field, buffers: dict[str, torch.Tensor]) -> Callable[[bool], nn.Module]:
    """The factory of an isospike population kept in an IF node's metadata (read as a saved file's,
    from the closed set of registered populations)."""
    def factory(static: bool) -> nn.Module:
        spec_now = spec
        if isinstance(spec.value, dict) and "static_input" in spec.value:
            spec_now = Field({**spec.value, "static_input": static}, spec.where, spec.source)
        pop = read_module(spec_now, buffers.get, allowed=foreign_populations())
        for k, v in buffers.items():
            old = pop._buffers.get(k)
            if old is not None and old.shape == v.shape:
                pop._buffers[k] = v.to(old.dtype)
        return pop

    return factory


def _lif(b: Build, key: str, node: Any) -> nn.Module:
    """nir.LIF / CubaLIF: isospike's IF population where isospike wrote it for a reader
    (:mod:`isospike.nir.readers`, its metadata names it), otherwise another tool's neurons."""
    info = b.metadata(key, node) if key not in b.recurrent else None
    if info is not None and info.get("reader") is not None:
        return _if(b, key, node)
    return _nir_neurons(b, key, node)


def _nir_neurons(b: Build, key: str, node: Any) -> nn.Module:
    """LIF, CubaLIF, LI and recurrent IF neurons of other tools: NIRNeurons, forward Euler with
    the reader's ``dt``."""
    if b.convention == "nir":
        _refuse_foreign(b, key, node)
    args = _neuron_args(b, key, node)
    if b.convention == "norse":
        args = _norse_args(args, b.dt)
    elif b.convention in PEERS:
        args = PEERS[b.convention](b, key, node, args)
    dt, source = b.dt, b.source

    def factory(static: bool) -> nn.Module:
        try:
            return NIRNeurons(dt=dt, static_input=static, **args)
        except ValueError as exc:
            raise FileFormatError(f"{source}: {one_line(exc, 300)}") from None

    b.populations[b.names[key]] = factory
    return nn.ReLU()  # placeholder activation, replaced by the population


Numbers = Callable[[Any, str], np.ndarray | None]  # a node's field (value, name) as float64, None kept


def _cuba_lif_args(node: Any, arr: Numbers) -> dict[str, Any]:
    return dict(kind="cuba_lif", tau=arr(node.tau_mem, "tau_mem"), r=arr(node.r, "r"),
                v_leak=arr(node.v_leak, "v_leak"), v_threshold=arr(node.v_threshold, "v_threshold"),
                v_reset=arr(getattr(node, "v_reset", 0.0), "v_reset"), tau_syn=arr(node.tau_syn, "tau_syn"),
                w_in=arr(node.w_in, "w_in"))


def _lif_args(node: Any, arr: Numbers) -> dict[str, Any]:
    return dict(kind="lif", tau=arr(node.tau, "tau"), r=arr(node.r, "r"), v_leak=arr(node.v_leak, "v_leak"),
                v_threshold=arr(node.v_threshold, "v_threshold"), v_reset=arr(getattr(node, "v_reset", 0.0), "v_reset"))


def _li_args(node: Any, arr: Numbers) -> dict[str, Any]:
    return dict(kind="li", tau=arr(node.tau, "tau"), r=arr(node.r, "r"), v_leak=arr(node.v_leak, "v_leak"))


def _if_args(node: Any, arr: Numbers) -> dict[str, Any]:
    return dict(kind="if", r=arr(node.r, "r"), v_threshold=arr(node.v_threshold, "v_threshold"),
                v_reset=arr(node.v_reset, "v_reset"))


# NIRNeurons arguments per neuron node type; these types may also carry a recurrent weight
NEURON_ARGS: dict[type, Callable[[Any, Numbers], dict[str, Any]]] = {
    nir.CubaLIF: _cuba_lif_args,
    nir.LIF: _lif_args,
    nir.LI: _li_args,
    nir.IF: _if_args,
}
# node types that may be a neuron's recurrent weight (neuron -> weight -> the same neuron)
RECURRENT_WEIGHTS: tuple[type, ...] = (nir.Linear, nir.Affine)


def _neuron_args(b: Build, key: str, node: Any) -> dict[str, Any]:
    """Constructor arguments of a NIRNeurons population for a neuron node (and its recurrent weight)."""

    def arr(v: Any, name: str) -> np.ndarray | None:
        return arrays.numbers(v, b.source, key, name).astype(np.float64) if v is not None else None

    recurrent = _recurrent_weight(b, key)
    read = by_class(NEURON_ARGS, type(node))
    assert read is not None  # only neuron node types are built as neurons
    return dict(read(node, arr), where=key, recurrent=recurrent)


def _recurrent_weight(b: Build, key: str) -> nn.Linear | None:
    rec_node = b.nodes.get(b.recurrent.get(key, ""))
    if rec_node is None:
        return None
    w = arrays.tensor(rec_node.weight, b.source, key, "recurrent weight", ndim=2)
    if w.shape[0] != w.shape[1]:
        raise FileFormatError(f"{b.source}: the recurrent weight of {key!r} has shape {tuple(w.shape)}, not [n, n]")
    bias = arrays.tensor(rec_node.bias, b.source, key, "recurrent bias", ndim=1) \
        if isinstance(rec_node, nir.Affine) else None
    return arrays.linear(w, bias, b.source, key)


def _norse_args(args: dict[str, Any], dt: float) -> dict[str, Any]:
    """Norse 1.1's ``to_nir`` writes each time constant as ``dt / tau_inv`` (dt x tau, not tau),
    and its CubaLIF adds the input to the synaptic current unscaled; rewrite a node's arguments to
    the NIR dynamics that reproduce Norse's own step (see :func:`isospike.nir.load`)."""
    out = dict(args)
    for k in ("tau", "tau_syn"):
        if out.get(k) is not None:
            out[k] = out[k] / dt
    if out.get("kind") == "cuba_lif" and out.get("tau_syn") is not None:
        w_in = out.get("w_in") if out.get("w_in") is not None else np.ones(1)
        out["w_in"] = w_in * out["tau_syn"] / dt  # dt w_in' / tau_syn = w_in: the input lands in I unscaled
    return out


def _refuse_foreign(b: Build, key: str, node: Any) -> None:
    """A neuron node isospike did not write, read without a convention: the same fields mean
    different neurons to different writers, so isospike names what it would have to assume."""
    raise FileFormatError(
        f"{b.source}: NIR node {key!r} ({type(node).__name__}) was not written by isospike, and its fields do not "
        "say how it spikes, resets and leaks: isospike would have to assume NIR's definition (one spike per step, "
        "reset to v_reset, forward Euler with dt), but snnTorch writes its Leaky with v_reset = 0 also where it "
        "resets by subtraction (its default), sinabs its IAF / LIF (reset by subtraction, several spikes per step, "
        "exp(-1/tau) leak) and rockpool its LIFTorch the same way, and Norse writes dt x tau as tau. Pass "
        "convention='snntorch' (with reset='subtract' or 'zero'), 'norse', 'sinabs' or 'rockpool' to run that "
        "library's own dynamics, or convention='standard' for NIR's definition")


def _peer_refusal(b: Build, key: str, node: Any, why: str) -> FileFormatError:
    return FileFormatError(f"{b.source}: NIR node {key!r} ({type(node).__name__}), read with convention="
                           f"{b.convention!r}: {why}")


def _uniform_one(b: Build, key: str, node: Any, values: Any, name: str, means: str) -> None:
    if values is not None and not np.allclose(values, 1.0, rtol=1e-5, atol=0):
        raise _peer_refusal(b, key, node, f"{name} = {np.asarray(values).ravel()[:3].tolist()}, but {means}")


def _snntorch_args(b: Build, key: str, node: Any, args: dict[str, Any]) -> dict[str, Any]:
    """snnTorch 1.0: Leaky (nir.LIF) and Synaptic (nir.CubaLIF), forward Euler with dt = 1e-4 as
    its exporter writes them; the reset the file cannot say comes from ``reset`` / ``reset_delay``."""
    kind = args["kind"]
    if kind not in ("lif", "cuba_lif"):
        raise _peer_refusal(b, key, node, "snnTorch writes Leaky as nir.LIF and Synaptic as nir.CubaLIF, no "
                            f"{type(node).__name__} (its importer reads nir.IF as Leaky(beta=0.9))")
    if b.reset not in ("subtract", "zero"):
        raise _peer_refusal(b, key, node, "snnTorch's exporter writes v_reset = 0 for every Leaky and Synaptic, "
                            "whatever their reset_mechanism ('subtract', snnTorch's default, or 'zero') and reset_delay "
                            "(default True): pass reset='subtract' or reset='zero' to isospike.nir.load (and "
                            "reset_delay=False where the network was built with it); isospike will not guess")
    # Leaky zeroes the previous membrane before integrating; Synaptic, RLeaky and RSynaptic zero the new one
    whole_step = kind == "cuba_lif" or args.get("recurrent") is not None
    style = ("synaptic" if whole_step else "leaky") if b.reset == "subtract" else \
        ("zero_synaptic" if whole_step else "zero_leaky")
    return dict(args, snntorch_reset=style, reset_delay=b.reset_delay)


def _float32_exp(tau: np.ndarray, numerator: float) -> np.ndarray:
    """exp(-numerator / tau) as torch computes it in float32 (the peers' own arithmetic)."""
    return torch.exp(-numerator / torch.as_tensor(np.asarray(tau), dtype=torch.float32)).numpy()


def _sinabs_args(b: Build, key: str, node: Any, args: dict[str, Any]) -> dict[str, Any]:
    """sinabs 3.1 with its defaults (what its exporter cannot record): IAF (nir.IF) and LIF
    (nir.LIF, norm_input=True, alpha = exp(-1 / tau), tau in steps) spike with MultiSpike, reset
    with MembraneSubtract, unclipped; ExpLeak (nir.LI, norm_input=False)."""
    kind = args["kind"]
    if kind == "cuba_lif" or args.get("recurrent") is not None:
        raise _peer_refusal(b, key, node, "sinabs writes IAF as nir.IF, LIF as nir.LIF and ExpLeak as nir.LI, "
                            "without synaptic currents or recurrent weights")
    _uniform_one(b, key, node, args.get("r"), "r", "sinabs writes r = 1 (its layers have no input resistance)")
    if args.get("v_leak") is not None and np.any(args["v_leak"] != 0):
        raise _peer_refusal(b, key, node, "v_leak is not 0, and sinabs' neurons leak to 0")
    if kind == "if":
        return dict(args, reset="subtract", multi_spike=True)
    alpha = _float32_exp(args["tau"], 1.0)
    if kind == "li":
        return dict(args, decay=alpha, scale=np.ones_like(alpha))
    return dict(args, decay=alpha, scale=(np.float32(1) - alpha), reset="subtract", multi_spike=True)


def _rockpool_args(b: Build, key: str, node: Any, args: dict[str, Any]) -> dict[str, Any]:
    """rockpool 3.1's LIFTorch (nir.CubaLIF): I <- exp(-dt/tau_syn) (I + x), V <- exp(-dt/tau_mem) V
    + I, floor(V / theta) spikes, reset by subtraction; its exporter writes r = tau_mem
    exp(-dt / tau_mem) / dt, checked against ``dt``."""
    if args["kind"] != "cuba_lif" or args.get("recurrent") is not None:
        raise _peer_refusal(b, key, node, "isospike reads rockpool's LIFTorch (nir.CubaLIF, no recurrent weight); its "
                            "LIFNeuronTorch / ExpSynTorch exports are not read")
    tau, r = np.asarray(args["tau"], np.float64), np.asarray(args["r"], np.float64)
    want = tau * np.exp(-b.dt / tau) / b.dt
    if not np.allclose(r, want, rtol=1e-4, atol=0):
        raise _peer_refusal(b, key, node, f"r = {r.ravel()[:3].tolist()} is not tau_mem exp(-dt / tau_mem) / dt for "
                            f"dt = {b.dt} (what rockpool's exporter writes): pass the network's dt to isospike.nir.load")
    alpha, beta = _float32_exp(tau, b.dt), _float32_exp(args["tau_syn"], b.dt)
    one = np.ones_like(alpha)
    return dict(args, decay=alpha, scale=one, syn_decay=beta, syn_scale=one, synapse_inside=True, reset="subtract",
                multi_spike=True)


PeerArgs = Callable[[Build, str, Any, dict[str, Any]], dict[str, Any]]
# conventions for other libraries' files: their neuron arguments as the library runs them
PEERS: dict[str, PeerArgs] = {"snntorch": _snntorch_args, "sinabs": _sinabs_args, "rockpool": _rockpool_args}


def foreign_populations() -> tuple[str, ...]:
    """Population types carried in an IF node's metadata: the registered codings' own, except
    rate coding's IF neurons, which NIR describes natively."""
    return tuple(sorted(k for k in population_codecs() if k != "TimeFoldedNeuron"))


def _stored_population_tensors(info: Field) -> dict[str, torch.Tensor]:
    """The buffers of an isospike population kept in a NIR node's metadata (numbers only)."""
    out = {}
    for key, value in info.object().items():
        if key not in ("silent_level", "slot_reads"):
            raise value.error("one of the population buffers 'silent_level', 'slot_reads'")
        out[key] = finite_numbers(value, torch.int64 if key == "silent_level" else torch.float32)
    return out


def finite_numbers(f: Field, dtype: torch.dtype) -> torch.Tensor:
    """A finite number or a rectangular nested list of them (a metadata field), as a tensor."""
    data = f.value
    try:
        arr = np.asarray(data, dtype=np.float64) if not isinstance(data, (bool, str, dict)) else None
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.size > 2**20 or not np.isfinite(arr).all():
        raise f.error("a finite number or a rectangular nested list of finite numbers")
    return torch.as_tensor(arr, dtype=dtype)


# ------------------------------------------------------------------ the table
BUILDERS: dict[type, Builder] = {
    nir.Input: _input,
    nir.Output: _output,
    nir.Affine: _layer(_affine),
    nir.Linear: _layer(_linear),
    nir.Conv1d: _layer(_conv1d),
    nir.Conv2d: _layer(_conv2d),
    nir.AvgPool2d: _layer(_avg_pool),
    nir.Scale: _layer(_scale),
    nir.Flatten: _layer(_flatten),
    nir.LIF: _layer(_lif),
    nir.CubaLIF: _layer(_lif),
    nir.LI: _layer(_nir_neurons),
    nir.IF: _layer(_if),
}


def builder_for(node: Any) -> Builder:
    """The table entry that builds ``node`` (:func:`_unknown` refuses a type without one)."""
    return by_class(BUILDERS, type(node)) or _unknown
