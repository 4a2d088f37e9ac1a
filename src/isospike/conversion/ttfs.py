"""TTFS coding with decaying synapse devices (Otters / Otters++).

Each activation becomes a TTFS population: during its window of T steps a neuron compares its
membrane V (the synaptic integration of the previous layer's device reads) with a staircase
threshold and fires at the first step k where V >= theta_k, i.e. level q = T - k (silent: q = 0).
Its spike is read by the next layer's synapses at the slot time t_k: the device returns O(t_k)
(with its run-to-run variation, if any), scaled by scale * T -- exactly the QNN level for the
nominal device. So each converted layer computes the QNN layer of
:class:`isospike.train.ttfs.TTFSQuant`; tests check the outputs are identical.

Trained QNN activations (``TTFSQuant``) keep their step, rounding and device; plain ReLUs are
converted post hoc with step = percentile / T from calibration data. The first layer receives
the analog input (a MAC layer); BatchNorm is folded. The population is
:class:`isospike.neurons.ttfs.TTFSPopulation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor, nn

from isospike.codec import MAX_CURVE_SAMPLES, MAX_WINDOW, ModuleCodec, built, needed
from isospike.coding.mttfs import SILENCES, Silence, check_silence, lowest_level
from isospike.coding.ttfs import Rounding
from isospike.conversion.coding import Coding, TimeCodingOptions, register
from isospike.conversion.network import SpikingNetwork
from isospike.conversion.pipeline import (
    PreparedGraph,
    activation_spans,
    assemble,
    has_trained_threshold,
    is_ttfs_quantizer,
    prepare,
    require_calibration,
    trained_threshold,
)
from isospike.devices import DeviceVariation, OptoelectronicSynapse
from isospike.guarantees import QNN_EQUIVALENT
from isospike.neurons.ttfs import TTFSPopulation
from isospike.schema import Field

CODING = "ttfs"


@dataclass(frozen=True)
class TTFSOptions(TimeCodingOptions):
    """Options of TTFS coding.

    timesteps: window T for ReLUs converted post hoc (TTFSQuant layers keep their own).
    synapse: synapse model for all layers, e.g. ``OptoelectronicSynapse.in2o3()`` (default: each
        TTFSQuant's own, else ideal reads).
    percentile: post-hoc step = percentile of the ReLU's activations / T.
    rounding: post-hoc rounding ("round" or "floor").
    silence: which level a neuron sends as silence (no spike, no synaptic event).
        ``"zero"`` (default): isospike's signed TTFS, sign-and-magnitude channels with level 0
        silent. ``"lowest"``: the TTFS baseline of the Matterhorn paper -- levels offset to be
        unsigned (q + T), so the lowest level (-T on a signed layer) is silent and 0 fires; the
        receivers fold the silent value into their bias (as for M-TTFS), so outputs equal the
        QNN's up to float summation order. Unsigned (ReLU) layers are the same under both.
        Signed layers then need digital reads (``synapse=None``). The most frequent level is
        ``coding="mttfs"``.
    fold_bn, calibration_batch_size, front, products: as for rate coding.
    """

    timesteps: int = 15
    synapse: OptoelectronicSynapse | None = None
    percentile: float = 99.9
    rounding: Rounding = "round"
    silence: Silence = "zero"
    fold_bn: bool = True
    calibration_batch_size: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.synapse is not None and not isinstance(self.synapse, OptoelectronicSynapse):
            raise TypeError(f"synapse must be an isospike.devices.OptoelectronicSynapse or None, got "
                            f"{type(self.synapse).__name__}; to run on a torch device use snn.to(device)")
        if not 0.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {self.percentile}")
        check_silence(self.silence, ("zero", "lowest"), hint=" (the most frequent level: coding='mttfs')")


def population_specs(prepared: PreparedGraph, o: TTFSOptions, calibration: Any) -> dict[str, dict[str, Any]]:
    """Each activation's TTFS population arguments, in graph order: TTFSQuant layers keep their
    window, step, rounding and device; clip-trained activations (NoisyQCFS) span [0, lambda];
    plain ReLUs get step = percentile / T from calibration data."""
    quantized, clipped, relus = prepared.split(is_ttfs_quantizer, has_trained_threshold)
    if relus:
        require_calibration(calibration, "post-hoc TTFS conversion of ReLUs measures their steps on data")
    spans, _ = activation_spans(prepared, relus, calibration, o.percentile, o.calibration_batch_size, max_at_100=False)
    spans.update({p: trained_threshold(prepared.modules[p]) for p in clipped})
    specs: dict[str, dict[str, Any]] = {}
    for p in prepared.activations:
        m = prepared.modules[p]
        if p in quantized:
            step = m.scale
            assert isinstance(step, Tensor)  # a TTFS-quantized activation (TTFSQuant) learns its step as a parameter
            specs[p] = dict(timesteps=m.timesteps, scale=float(step.detach().abs()), rounding=m.rounding,
                            signed=m.signed, device=o.synapse if o.synapse is not None else m.device)
        else:
            specs[p] = dict(timesteps=o.timesteps, scale=spans[p] / o.timesteps, rounding=o.rounding, signed=False,
                            device=o.synapse)
    return specs


def network(prepared: PreparedGraph, specs: dict[str, dict[str, Any]], coding: str, info: dict[str, Any],
            default_window: int) -> SpikingNetwork:
    """Place one TTFS population per spec and wrap the graph (one pass: windows resolve inside)."""
    populations = {p: (lambda static, spec=spec: TTFSPopulation(**spec)) for p, spec in specs.items()}
    gm = assemble(prepared, populations, reads_device=any(s["device"] is not None for s in specs.values()))
    windows = sorted({s["timesteps"] for s in specs.values()} or {default_window})
    info = {"steps": {p: s["scale"] for p, s in specs.items()}, "windows": windows, **info}
    return SpikingNetwork(gm, max(windows), coding, info, fold_time=False)


def build_ttfs(model: nn.Module, options: TTFSOptions, calibration: Any) -> SpikingNetwork:
    """Convert a QNN (TTFSQuant activations) or a ReLU ANN to a TTFS SNN (see the module docstring)."""
    o = options
    prepared = prepare(model, calibration, fold_bn=o.fold_bn,
                       keep=lambda m: is_ttfs_quantizer(m) or has_trained_threshold(m))
    specs = population_specs(prepared, o, calibration)
    if o.silence == "lowest":
        for spec in specs.values():
            if spec["signed"] and spec["device"] is not None:
                raise ValueError("silence='lowest' decodes the offset levels of signed layers with a digital level "
                                 "table: convert with synapse=None")
            spec.update(silent_level=lowest_level(spec["timesteps"], spec["signed"]), silence="lowest")
    quantized = [p for p in prepared.activations if is_ttfs_quantizer(prepared.modules[p])]
    info: dict[str, Any] = {
        "trained_layers": sorted(quantized), "folded_batchnorm": prepared.folded_batchnorm,
        "post_hoc_layers": [p for p in prepared.activations
                            if p not in quantized and not has_trained_threshold(prepared.modules[p])],
        "device": None if o.synapse is None else o.synapse.name}
    if o.silence != "zero":
        info["silence"] = o.silence
    return network(prepared, specs, CODING, info, o.timesteps)


# ----------------------------------------------------------------------- saved files
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
    d = f.object({"name", "source", "times", "values", "variation"})
    var = d["variation"]
    variation = None
    if not var.is_none:
        v = var.object({"sigma", "kind", "granularity"})
        variation = DeviceVariation(v["sigma"].number(0.0, 10.0), v["kind"].choice(("gaussian", "uniform")),
                                    v["granularity"].choice(("read", "device", "run")))
    times = d["times"].numbers(MAX_CURVE_SAMPLES, lo=0.0)
    values = d["values"].numbers(MAX_CURVE_SAMPLES)
    return built(f, lambda: OptoelectronicSynapse.from_samples(times, values, name=d["name"].text(256),
                                                               source=d["source"].text(4096), variation=variation))


def _write_population(m: nn.Module, _: dict[int, str]) -> dict[str, Any]:
    assert isinstance(m, TTFSPopulation)  # the codec of that type
    spec = {"type": "TTFSPopulation", "timesteps": m.window, "scale": m.scale, "rounding": m.rounding,
            "signed": m.signed, "device": _device_spec(m.device), "dead_zone": m.dead_zone}
    if m.silence != "zero":  # files of plain (signed) TTFS stay as before
        spec["silence"] = m.silence
    return spec


def _read_population(f: Field, stored: Any) -> nn.Module:
    f.object({"type", "timesteps", "scale", "rounding", "signed", "device", "dead_zone", "silence"})
    T = f["timesteps"].integer(1, MAX_WINDOW)
    silence = f.get("silence")  # absent in files of plain TTFS and in files older than the option
    rule: Silence | None = None if silence is None else silence.choice(SILENCES)  # type: ignore[assignment]
    args = dict(timesteps=T, scale=f["scale"].number(0.0), rounding=f["rounding"].choice(("round", "floor")),
                signed=f["signed"].boolean(), device=_read_device(f["device"]),
                silent_level=needed(stored, "silent_level", f), dead_zone=f["dead_zone"].integer(0, T), silence=rule)
    return built(f, lambda: TTFSPopulation(**args))


def ttfs_site(stats: Any, o: TTFSOptions) -> nn.Module:
    """A site of any model (front="sites"): a TTFS population with step = span / T, signed (two
    channels) when the activation took negative values, read through ``synapse``."""
    T = o.timesteps
    silent = lowest_level(T, stats.signed) if o.silence == "lowest" else 0
    device = o.synapse
    if o.silence == "lowest" and stats.signed and device is not None:
        raise ValueError(f"silence='lowest' decodes the offset levels of the signed site {stats.name!r} with a digital "
                         "level table: convert with synapse=None")
    return TTFSPopulation(T, stats.span / T, o.rounding, stats.signed, device=device, silent_level=silent,
                          silence=o.silence)


TTFS = register(Coding(
    CODING, TTFSOptions, build_ttfs, site=ttfs_site,
    populations={"TTFSPopulation": ModuleCodec(_write_population, _read_population)},
    guarantee=QNN_EQUIVALENT,
    summary="one spike per neuron in a window of T steps, read through a (decaying) synapse device"))


def convert_ttfs(model: nn.Module, *, calibration: Any = None, **options: Any) -> SpikingNetwork:
    """``isospike.convert(model, coding="ttfs", ...)``; options: :class:`TTFSOptions` (``device=`` is
    the deprecated name of ``synapse=``; a torch device there is a TypeError pointing to ``.to``)."""
    snn = TTFS.convert(model, calibration, **options)
    assert isinstance(snn, SpikingNetwork)  # what build_ttfs returns
    return snn


__all__ = ["TTFS", "TTFSOptions", "TTFSPopulation", "build_ttfs", "convert_ttfs"]
