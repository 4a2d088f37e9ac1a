"""SynSense Xylo (SYNS61300, Xylo v1), checked in rockpool's ``XyloSim`` on the ``xylosim`` core.

The chip: up to 16 input channels (at most 15 input spikes per channel and step), up to 1,000
hidden integrate-and-fire neurons connected through one recurrent weight matrix (a feed-forward
network is laid out block by block in it, one step of delay per layer), up to 8 read-out
neurons fed by hidden neurons only; int8 weights left-shifted by one bit shift per matrix
(input, recurrent, read-out), int16 thresholds, membranes and synaptic currents (saturating),
bit-shift decays ``v -= max(v >> dash, sign(v))``, subtractive reset, at most 31 spikes per
hidden neuron and step. No bias: the first layer's bias comes from a spare input channel that
fires every step, deeper layers' biases from one hidden "bias neuron" driven by it.

isospike's own simulation (:meth:`XyloDeployment.simulate`) runs the same integer network with
the same rules, vectorized over the batch; :meth:`XyloDeployment.simulate_target` runs
rockpool's ``XyloSim`` (from a configuration built here, without ``samna``).
"""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor, nn

from isospike.deploy.common import (
    Deployment,
    DeploymentError,
    LayerPlan,
    Simulated,
    ToolchainMissingError,
    check_subtractive,
    graph_steps,
    require,
)

INPUTS, HIDDEN, OUTPUTS = 16, 1000, 8
WEIGHT_BITS, STATE_BITS = 8, 16
MAX_INPUT_SPIKES, MAX_HIDDEN_SPIKES, MAX_OUTPUT_SPIKES = 15, 31, 1
MAX_SHIFT = 7  # int8 << 7 still fits the int16 state
DASH_SYN, DASH_MEM = 1, 15  # synaptic current halves each step; membrane leaks one unit per step
THRESHOLD_TARGET = 2048  # the integer threshold of a hidden layer: fine steps, 16x head-room in int16
READOUT_THRESHOLD = 2 ** (STATE_BITS - 1) - 1
W_MAX = 2 ** (WEIGHT_BITS - 1) - 1
S_MAX, S_MIN = 2 ** (STATE_BITS - 1) - 1, -(2 ** (STATE_BITS - 1))


def _layers(snn: nn.Module) -> list[tuple[str, nn.Linear, Any]]:
    """(path, Linear, the IF neuron after it or None) in order; anything else is refused."""
    out: list[tuple[str, nn.Linear, Any]] = []
    for path, m, layer, neuron in graph_steps(snn, "Xylo", ", which runs dense layers and integrate-and-fire neurons only"):
        if isinstance(m, nn.Flatten) and not out:
            continue
        if isinstance(layer, nn.Linear):
            if out and out[-1][2] is None:
                raise DeploymentError(f"Xylo: layer {path!r} (Linear) follows {out[-1][0]!r} without neurons between "
                                      "them; the chip's synapses connect neurons")
            out.append((path, layer, None))
        elif neuron is not None and out and out[-1][2] is None:
            check_subtractive(neuron, path, "Xylo", "Xylo's integrate-and-fire neurons subtract the threshold "
                              "(convert with reset='subtract')")
            out[-1] = (out[-1][0], out[-1][1], neuron)
        else:
            kind = type(layer).__name__ if isinstance(layer, nn.Module) else type(m).__name__
            raise DeploymentError(f"Xylo: layer {path!r} ({kind}) cannot be placed: Xylo runs dense (Linear) layers "
                                  "with integrate-and-fire neurons; convolutions and pooling need target='speck'")
    if not out or out[-1][2] is not None:
        raise DeploymentError("Xylo: the network must end with a Linear read-out layer (no neurons after it)")
    return out


def _value(t: Any, n: int) -> Tensor:
    """A per-neuron float tensor [n] from a scalar or tensor buffer."""
    v = torch.as_tensor(t, dtype=torch.float64).flatten()
    return v.expand(n).clone() if v.numel() == 1 else v.clone()


def _shift_for(max_abs: float) -> int:
    """The smallest bit shift with max_abs <= 127 << shift."""
    return 0 if max_abs <= W_MAX else int(math.ceil(math.log2(max_abs / W_MAX)))


def _quantize(w: Tensor, shift: int) -> Tensor:
    return torch.clamp(torch.round(w / 2**shift), -W_MAX, W_MAX).to(torch.int64)


class XyloDeployment(Deployment):
    target = "xylo"
    simulator_name = "rockpool XyloSim on xylosim (SYNS61300)"

    def encode(self, x: Tensor) -> Tensor:
        """Input spikes per step and channel [N, T, channels] (int): the input scaled to
        ``input_levels`` counts, the same every step; the last channel is the bias channel."""
        x = x.reshape(x.shape[0], -1).to(torch.float64)
        if float(x.min()) < 0:
            raise DeploymentError(f"Xylo: inputs are spike counts (0..{MAX_INPUT_SPIKES} per step and channel); this "
                                  f"input has negative values (min {float(x.min()):.3g}): shift or scale it to >= 0")
        counts = torch.clamp(torch.round(x / self.spec["input_scale"]), 0, self.spec["input_levels"]).to(torch.int64)
        if self.spec["bias_channel"] is not None:
            counts = torch.cat([counts, torch.full((counts.shape[0], 1), MAX_INPUT_SPIKES, dtype=torch.int64)], 1)
        return counts[:, None, :].expand(-1, self.timesteps, -1)

    def simulate(self, x: Tensor) -> Simulated:
        """isospike's simulation of the integer network: Xylo's update rules, vectorized."""
        s = self.spec
        inp = self.encode(x)
        n, T, _ = inp.shape
        w_in = s["weights_in"] << s["shift_in"]
        w_rec = s["weights_rec"] << s["shift_rec"]
        w_out = s["weights_out"] << s["shift_out"]
        th, th_out = s["threshold"], s["threshold_out"]
        nh, no = th.numel(), th_out.numel()
        isyn, vmem = torch.zeros(n, nh, dtype=torch.int64), torch.zeros(n, nh, dtype=torch.int64)
        isyn_o, vmem_o = torch.zeros(n, no, dtype=torch.int64), torch.zeros(n, no, dtype=torch.int64)
        spikes = torch.zeros(n, nh, dtype=torch.int64)
        totals = torch.zeros(n, nh, dtype=torch.int64)
        trace = torch.zeros(n, T, no, dtype=torch.int64)
        saturated = False
        for t in range(T):
            isyn = isyn + torch.clamp(inp[:, t], 0, MAX_INPUT_SPIKES) @ w_in
            rec = torch.clamp(spikes, 0, MAX_HIDDEN_SPIKES)
            isyn = isyn + rec @ w_rec
            isyn_o = isyn_o + rec @ w_out
            saturated |= bool((isyn.abs() > S_MAX).any() or (isyn_o.abs() > S_MAX).any())
            isyn, isyn_o = _sat(isyn), _sat(isyn_o)
            isyn, vmem = isyn - _decay(isyn, DASH_SYN), vmem - _decay(vmem, DASH_MEM)
            vmem = _sat(vmem + isyn)
            spikes = torch.where(vmem >= th, torch.clamp(vmem // th, 0, MAX_HIDDEN_SPIKES), 0)
            vmem = vmem - spikes * th
            totals += spikes
            isyn_o, vmem_o = isyn_o - _decay(isyn_o, DASH_SYN), vmem_o - _decay(vmem_o, DASH_MEM)
            vmem_o = _sat(vmem_o + isyn_o)
            fired = torch.where(vmem_o >= th_out, torch.clamp(vmem_o // th_out, 0, MAX_OUTPUT_SPIKES), 0)
            vmem_o = vmem_o - fired * th_out
            trace[:, t] = vmem_o
        if saturated:
            self.notes.append("a synaptic current reached the int16 limit in isospike's simulation; the chip saturates "
                              "spike by spike, so the two may differ there")
        return Simulated(trace[:, -1].to(torch.float64), trace, totals)

    def simulate_target(self, x: Tensor) -> Simulated:
        """rockpool's ``XyloSim`` (the ``xylosim`` C++ core), one sample at a time."""
        import numpy as np

        sim = self.simulator()
        enc = self.encode(x)
        inp = np.zeros((enc.shape[0], enc.shape[1], INPUTS), dtype=np.uint8)
        inp[:, :, : enc.shape[2]] = enc.numpy()
        no = self.spec["threshold_out"].numel()
        traces, totals = [], []
        for sample in inp:
            sim.reset_state()
            out, _, rec = sim(sample, record=True)
            traces.append(torch.as_tensor(np.asarray(out, dtype=np.int64))[:, :no])
            totals.append(torch.as_tensor(np.asarray(rec["Spikes"], dtype=np.int64)).sum(0))
        trace = torch.stack(traces)
        return Simulated(trace[:, -1].to(torch.float64), trace, torch.stack(totals))

    def simulator(self) -> Any:
        """rockpool's ``XyloSim`` for this network (output: read-out membranes, ``Vmem``)."""
        require("xylosim", "pip install xylosim==0.1.3", "the C++ core of rockpool's Xylo simulator")
        require("rockpool", "pip install --no-deps rockpool==3.1.0", "SynSense's Xylo toolchain")
        return _xylo_sim_class().from_config(self.config(), dt=1e-3, output_mode="Vmem")

    def config(self) -> SimpleNamespace:
        """The network as the Xylo configuration object rockpool's ``XyloSim.from_config`` reads
        (the fields of ``samna.xyloCore.configuration.XyloConfiguration`` it uses)."""
        import numpy as np

        s = self.spec
        nh = s["threshold"].numel()
        # the chip's full input and read-out widths (rockpool checks them), unused ones silent
        w_in = np.zeros((INPUTS, nh), dtype=np.int8)
        w_in[: s["weights_in"].shape[0]] = s["weights_in"].numpy()
        w_out = np.zeros((nh, OUTPUTS), dtype=np.int8)
        w_out[:, : s["weights_out"].shape[1]] = s["weights_out"].numpy()
        th_out = [int(t) for t in s["threshold_out"].tolist()] + [READOUT_THRESHOLD] * (OUTPUTS - s["weights_out"].shape[1])

        def neuron(th: int) -> SimpleNamespace:
            return SimpleNamespace(threshold=int(th), v_mem_decay=DASH_MEM, i_syn_decay=DASH_SYN, i_syn2_decay=DASH_SYN,
                                   alias_target=None)

        return SimpleNamespace(
            synapse2_enable=False,
            input=SimpleNamespace(weights=w_in, syn2_weights=None, weight_bit_shift=s["shift_in"]),
            reservoir=SimpleNamespace(weights=s["weights_rec"].numpy().astype(np.int8), syn2_weights=None,
                                      weight_bit_shift=s["shift_rec"], neurons=[neuron(t) for t in s["threshold"].tolist()]),
            readout=SimpleNamespace(weights=w_out, weight_bit_shift=s["shift_out"], neurons=[neuron(t) for t in th_out]),
        )


def _xylo_sim_class() -> Any:
    """rockpool's ``XyloSim`` (syns61300). rockpool 3.1's ``rockpool.devices.xylo`` package imports
    ``samna`` unconditionally (its syns65302 audio front-end), so the simulator's own module --
    which needs only rockpool's core and ``xylosim`` -- is loaded from its file."""
    import importlib.util
    from pathlib import Path

    name = "isospike_rockpool_xylo_sim_syns61300"
    if name in sys.modules:
        return sys.modules[name].XyloSim
    spec = importlib.util.find_spec("rockpool")
    if spec is None or not spec.submodule_search_locations:
        raise ToolchainMissingError("rockpool is not installed; install it with `pip install --no-deps rockpool==3.1.0`")
    path = Path(next(iter(spec.submodule_search_locations))) / "devices" / "xylo" / "syns61300" / "xylo_sim.py"
    file_spec = importlib.util.spec_from_file_location(name, path)
    if file_spec is None or file_spec.loader is None or not path.is_file():
        raise ToolchainMissingError(f"rockpool {path.parent} has no xylo_sim.py: this rockpool is not 3.x")
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[name] = module
    file_spec.loader.exec_module(module)
    return module.XyloSim


def _sat(v: Tensor) -> Tensor:
    return torch.clamp(v, S_MIN, S_MAX)


def _decay(v: Tensor, dash: int) -> Tensor:
    """Xylo's bit-shift decay step: v >> dash, at least one unit towards zero."""
    dv = v >> dash
    return torch.where(dv == 0, torch.sign(v), dv)


def deploy_xylo(snn: nn.Module, calibration: Tensor, timesteps: int | None = None,
                input_levels: int = MAX_INPUT_SPIKES) -> XyloDeployment:
    """Quantize a rate network for Xylo (see the module docstring).

    Args:
        snn: a rate SpikingNetwork of dense layers (Flatten first allowed).
        calibration: inputs [N, ...] >= 0; their maximum maps to ``input_levels`` spikes per step.
        timesteps: steps to run (default: the network's T plus one per layer, for the delays).
        input_levels: input spikes per step for the largest input (1..15).

    Raises :class:`~isospike.deploy.DeploymentError` naming the layer and the constraint.
    """
    if not 1 <= input_levels <= MAX_INPUT_SPIKES:
        raise DeploymentError(f"Xylo: input_levels must be 1..{MAX_INPUT_SPIKES} (input spikes per channel and step)")
    layers = _layers(snn)
    first_path, first, _ = layers[0]
    hidden = layers[:-1]
    out_path, out_layer, _ = layers[-1]
    biased_deep = any(layer.bias is not None and bool(layer.bias.abs().max() > 0) for _, layer, _ in layers[1:])
    bias_channel = first.in_features if first.bias is not None and bool(first.bias.abs().max() > 0) or biased_deep \
        else None
    channels = first.in_features + (bias_channel is not None)
    if channels > INPUTS:
        extra = " (one more for the bias channel)" if bias_channel is not None else ""
        raise DeploymentError(f"Xylo: layer {first_path!r} (Linear) has {first.in_features} inputs{extra}; Xylo has "
                              f"{INPUTS} input channels: reduce the input (pooling, PCA) to at most "
                              f"{INPUTS - (bias_channel is not None)} features")
    n_hidden = sum(layer.out_features for _, layer, _ in hidden) + biased_deep
    if n_hidden > HIDDEN:
        sizes = ", ".join(f"{p} {layer.out_features}" for p, layer, _ in hidden)
        raise DeploymentError(f"Xylo: the hidden layers need {n_hidden} neurons ({sizes}"
                              f"{', 1 bias neuron' if biased_deep else ''}); Xylo has {HIDDEN}")
    if out_layer.out_features > OUTPUTS:
        raise DeploymentError(f"Xylo: layer {out_path!r} (Linear) has {out_layer.out_features} outputs; Xylo has "
                              f"{OUTPUTS} read-out neurons")
    x = calibration.reshape(calibration.shape[0], -1).to(torch.float64)
    if float(x.min()) < 0:
        raise DeploymentError(f"Xylo: inputs are spike counts (0..{MAX_INPUT_SPIKES} per step); the calibration "
                              f"inputs go down to {float(x.min()):.3g}: shift or scale them to >= 0")
    x_max = float(x.max()) or 1.0
    input_scale = x_max / input_levels  # the input value one spike stands for
    T = timesteps or int(getattr(snn, "timesteps", 8)) + len(layers)

    offset = 1 if biased_deep else 0  # hidden neuron 0: the bias neuron
    starts, pos = [], offset
    for _, layer, _ in hidden:
        starts.append(pos)
        pos += layer.out_features
    w_in = torch.zeros(channels, n_hidden, dtype=torch.int64)
    w_rec = torch.zeros(n_hidden, n_hidden, dtype=torch.int64)
    w_out = torch.zeros(n_hidden, out_layer.out_features, dtype=torch.int64)
    thresholds = torch.zeros(n_hidden, dtype=torch.int64)
    plans: list[LayerPlan] = []
    # the value one spike of each hidden layer stands for, and the bias neuron's spikes per step
    bias_rate = MAX_INPUT_SPIKES  # its steady-state spikes per step (checked in the simulation)
    if biased_deep:
        thresholds[0] = W_MAX  # 15 input spikes x 127 per step: about 15 spikes per step once settled

    # input layer: its own shift; hidden layers 2..: one shared recurrent shift; read-out: its own
    units: list[float] = []
    values: list[Tensor] = []
    float_w: list[Tensor] = []
    for i, (_, layer, neuron) in enumerate(hidden):
        theta = _value(neuron.threshold, layer.out_features)
        sv = _value(neuron.spike_value, layer.out_features)
        w = layer.weight.detach().to(torch.float64) * (input_scale if i == 0 else values[-1][None, :])
        units.append(float(theta.max()) / THRESHOLD_TARGET)
        values.append(sv)
        float_w.append(w)
    shift_in = _shift_for(float(float_w[0].abs().max()) / units[0])
    deep_ratio = [float(w.abs().max()) / u for w, u in zip(float_w[1:], units[1:])]
    out_w = out_layer.weight.detach().to(torch.float64) * values[-1][None, :]
    shift_rec = min(MAX_SHIFT, max([_shift_for(r) for r in deep_ratio], default=0))
    shift_in = min(MAX_SHIFT, shift_in)
    for i, (path, layer, neuron) in enumerate(hidden):
        shift = shift_in if i == 0 else shift_rec
        # a larger unit where the shared shift cannot reach this layer's largest weight
        units[i] = max(units[i], float(float_w[i].abs().max()) / (W_MAX * 2**shift))
        theta = _value(neuron.threshold, layer.out_features)
        th = torch.clamp(torch.round(theta / units[i]), 1, S_MAX).to(torch.int64)
        cols = slice(starts[i], starts[i] + layer.out_features)
        q = _quantize(float_w[i] / units[i], shift)
        if i == 0:
            w_in[: first.in_features, cols] = q.T
        else:
            rows = slice(starts[i - 1], starts[i - 1] + hidden[i - 1][1].out_features)
            w_rec[rows, cols] = q.T
        thresholds[cols] = th
        where = f"hidden neurons {starts[i]}-{starts[i] + layer.out_features - 1}"
        plans.append(LayerPlan(path, "Linear + IF neurons", layer.out_features, layer.in_features, WEIGHT_BITS, shift,
                               int(th.max()), _zeroed(float_w[i], q), where))
        if layer.bias is not None:
            b = layer.bias.detach().to(torch.float64) / units[i]  # per step, membrane units
            if i == 0:
                w_in[channels - 1, cols] = _quantize(b / MAX_INPUT_SPIKES, shift_in)
            else:
                w_rec[0, cols] = _quantize(b / bias_rate, shift_rec)
    if biased_deep:
        w_in[channels - 1, 0] = W_MAX >> shift_in if shift_in else W_MAX
    # read-out: membranes integrate the last hidden layer's spikes (and the bias) over T steps
    logit = max(float(out_w.abs().sum(1).max()), 1e-12)
    unit_out = logit * T / 2**13  # the largest possible |membrane| stays within int16 with margin
    shift_out = min(MAX_SHIFT, _shift_for(float(out_w.abs().max()) / unit_out))
    unit_out = max(unit_out, float(out_w.abs().max()) / (W_MAX * 2**shift_out))
    q_out = _quantize(out_w / unit_out, shift_out)
    last = slice(starts[-1], starts[-1] + hidden[-1][1].out_features)
    w_out[last] = q_out.T
    if out_layer.bias is not None and biased_deep:
        w_out[0] = _quantize(out_layer.bias.detach().to(torch.float64) / unit_out / bias_rate, shift_out)
    plans.append(LayerPlan(out_path, "Linear read-out", out_layer.out_features, out_layer.in_features, WEIGHT_BITS,
                           shift_out, None, _zeroed(out_w, q_out), f"read-out neurons 0-{out_layer.out_features - 1}"))
    dep = XyloDeployment(snn, T)
    dep.layers = plans
    dep.spec = {"weights_in": w_in, "weights_rec": w_rec, "weights_out": w_out, "threshold": thresholds,
                "threshold_out": torch.full((out_layer.out_features,), READOUT_THRESHOLD, dtype=torch.int64),
                "shift_in": shift_in, "shift_rec": shift_rec, "shift_out": shift_out, "input_scale": input_scale,
                "input_levels": input_levels, "bias_channel": bias_channel if bias_channel is None else channels - 1}
    dep.notes.append(f"inputs: {input_levels} spikes per step stand for {x_max:.4g}; membranes start at 0 (the float "
                     "SNN starts at v_init); synaptic currents halve each step (dash 1), membranes leak one unit per "
                     f"step (dash 15); each layer adds one step of delay, so {T} steps are run")
    if biased_deep:
        dep.notes.append("biases of deeper layers come from hidden neuron 0, which fires about 15 spikes per step "
                         "from the bias channel")
    dep.simulate(calibration[:64])  # notes a saturation on the calibration inputs
    return dep


def _zeroed(w: Tensor, q: Tensor) -> float:
    nonzero = w != 0
    return float(((q == 0) & nonzero).sum()) / max(int(nonzero.sum()), 1)
