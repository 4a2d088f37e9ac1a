"""SpikingGamma neurons (seed 003): sigma-delta spiking neurons whose synapses keep a gamma
memory, trained by direct backpropagation through the continuous read-out (no surrogate).

A presynaptic neuron sends its ReLU output y by sigma-delta spikes: n = trunc((y - a yhat) / c)
signed spikes per step (several allowed at a coarse step; or round(...)), so that its targets'
reconstruction yhat stays within c <= theta of y (c / 2 when rounding). The targets keep K leaky "buckets" of that spike
train, shared by all of them (de Vries & Principe's gamma memory):

    b_1 <- a b_1 + c n                         (= yhat, the reconstruction)
    b_k <- a b_k + (1 - a) (b_{k-1} + b_{k-1}') / 2   (relaxes towards bucket k-1; ' = a step ago)

with a = exp(-dt / tau), tau in milliseconds (one per presynaptic neuron), and the spike size
c = theta tau (1 - a) / dt, which gives each spike the same area theta tau at every dt (c -> theta
as dt -> 0). So the model is defined in physical time: a finer dt changes only the
discretization, and a steady signal y costs y / (theta tau) spikes per ms at any dt. Bucket k is a
smoothed copy of the signal delayed by (k - 1) tau on average (to O(dt^2)). A postsynaptic neuron computes
y = ReLU(sum_k v_k (W b_k) + bias).

Gradients: the spike quantization is treated as lossless coding -- the first bucket's forward
value is the spiking reconstruction, its gradient the analog signal's (b_1 = y + (yhat -
y).detach()) -- and everything else (the cascade, W, v, tau, ReLU) is an ordinary
differentiable computation. No Heaviside derivative appears anywhere.

Online mode (``online=True``): the state is detached after every step (memory flat in T) and each
layer carries eligibility traces e_k = d b_k / d log(tau) forward in its memory, so the
gradient of a per-step loss with respect to W, v, bias and tau is exact for each layer given its
input spikes; only the credit assigned to earlier layers through the memory is truncated.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn


class GammaState(NamedTuple):
    """State of one layer's synaptic memory.

    yhat: the senders' sigma-delta reconstruction ``[B, n_in]`` (no gradient).
    buckets: gamma memory ``[B, K, n_in]``.
    trace: eligibility d buckets / d log(tau) ``[B, K, n_in]`` (online mode; None otherwise).
    """

    yhat: Tensor
    buckets: Tensor
    trace: Tensor | None = None


def decay(tau_ms: Tensor, dt_ms: float) -> Tensor:
    """Per-step decay a = exp(-dt / tau) (tau and dt in milliseconds)."""
    return torch.exp(-dt_ms / tau_ms)


def spike_size(theta: float, tau_ms: Tensor, dt_ms: float) -> Tensor:
    """c = theta tau (1 - a) / dt: the reconstruction step of one spike, so that a spike's area
    (c summed over its decay, times dt) is theta tau at every step dt."""
    return theta * tau_ms * -torch.expm1(-dt_ms / tau_ms) / dt_ms


def sigma_delta_spikes(y: Tensor, yhat: Tensor, a: Tensor, c: Tensor | float,
                       quantizer: str = "threshold") -> tuple[Tensor, Tensor]:
    """Signed spike counts n and the new reconstruction a yhat + c n (no gradient).

    quantizer "threshold": n = trunc((y - a yhat) / c) -- spikes once the error reaches c, so
    |y - yhat| < c (a dead band that ignores small wiggles); "round": n = round(...), |y - yhat|
    <= c / 2. ``c == 0`` means analog transmission (yhat = y)."""
    with torch.no_grad():
        if isinstance(c, float) and c == 0:
            return torch.zeros_like(y), y.clone()
        e = (y - a * yhat) / c
        n = torch.round(e) if quantizer == "round" else torch.trunc(e)
        return n, a * yhat + c * n


class StepConstants(NamedTuple):
    """What a layer's steps share within one run at step dt: decays a ``[n_in]`` (carrying the
    time-constant gradient offline), spike sizes c, d a / d log(tau), the combined weights
    ``[K * n_in, n_out]`` (v_k W folded into one matrix) and the run mode."""

    a: Tensor
    c: Tensor | float
    da: Tensor
    weight: Tensor
    dt_ms: float
    online: bool


def gamma_step(state: GammaState, y: Tensor, log_tau: Tensor, K: int, k: StepConstants,
               quantizer: str = "threshold") -> tuple[GammaState, Tensor, Tensor]:
    """One step of a presynaptic population's spikes into its gamma memory.

    y: presynaptic analog output ``[B, n]`` (differentiable); log_tau: ``[n]`` (log of ms).
    Returns (new state, buckets to use ``[B, K, n]``, spike counts ``[B, n]``)."""
    a = k.a
    n, yhat = sigma_delta_spikes(y.detach(), state.yhat, a.detach(), k.c, quantizer)
    first = y + (yhat - y).detach()  # forward: the spiking reconstruction; gradient: the signal's
    prev = state.buckets
    if K == 1:
        buckets = first.unsqueeze(1)
        return GammaState(yhat, buckets.detach() if k.online else buckets, None), buckets, n
    # trapezoidal input (mean of bucket k-1 now and a step ago): each stage then delays by
    # tau + O(dt^2) at any dt (the one-sided rule would lose dt / 2 per stage)
    cols = [first]
    for j in range(1, K):
        cols.append(a * prev[:, j] + (1 - a) * 0.5 * (cols[-1] + prev[:, j - 1]))
    buckets = torch.stack(cols, 1)
    if not k.online:
        return GammaState(yhat, buckets, None), buckets, n
    with torch.no_grad():
        tr = state.trace if state.trace is not None else torch.zeros_like(prev)
        traces = [torch.zeros_like(first)]
        for j in range(1, K):
            inflow = 0.5 * (cols[j - 1] + prev[:, j - 1])
            traces.append(k.da * (prev[:, j] - inflow) + a * tr[:, j] + (1 - a) * 0.5 * (traces[-1] + tr[:, j - 1]))
        trace = torch.stack(traces, 1)
    # forward value unchanged; d/d log_tau of anything computed from `used` = sum grad * trace
    used = buckets + (log_tau - log_tau.detach()) * trace
    return GammaState(yhat, buckets.detach(), trace), used, n


class GammaLayer(nn.Module):
    """Synapses with gamma memory onto ``n_out`` neurons (one time step per call).

    Args:
        n_in, n_out: sizes; K: buckets per presynaptic neuron.
        tau_ms: (min, max) of the presynaptic time constants in ms, spread log-uniformly over the
            inputs, or a tensor ``[n_in]``.
        theta: sigma-delta spike size of the presynaptic neurons (0: analog transmission).
        learn_tau: train the time constants (log-parametrized).
        spiking_output: ReLU neurons (a hidden layer) or a linear read-out (False).
        quantizer: sigma-delta rule of the presynaptic neurons, "threshold" (spike when the error
            reaches a spike size; default) or "round" (when it exceeds half of one).
    """

    def __init__(self, n_in: int, n_out: int, K: int = 4, tau_ms: tuple[float, float] | Tensor = (2.0, 20.0),
                 theta: float = 0.2, learn_tau: bool = True, spiking_output: bool = True,
                 quantizer: str = "threshold") -> None:
        super().__init__()
        if quantizer not in ("threshold", "round"):
            raise ValueError(f"quantizer must be 'threshold' or 'round', got {quantizer!r}")
        self.quantizer = quantizer
        if n_in < 1 or n_out < 1:
            raise ValueError(f"n_in and n_out must be >= 1, got {n_in}, {n_out}")
        if K < 1:
            raise ValueError(f"K must be >= 1, got {K}")
        if not theta >= 0:
            raise ValueError(f"theta must be >= 0, got {theta}")
        self.K, self.theta, self.spiking_output = int(K), float(theta), spiking_output
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(n_out))
        v = torch.zeros(K, n_out)
        v[0] = 1.0
        if K > 1:
            v[1:] = 0.1 * torch.randn(K - 1, n_out)
        self.v = nn.Parameter(v)
        if isinstance(tau_ms, Tensor):
            tau = tau_ms.detach().float().reshape(n_in)
        else:
            lo, hi = (float(t) for t in tau_ms)
            if not 0 < lo <= hi:
                raise ValueError(f"tau_ms must be (min, max) with 0 < min <= max, got {tau_ms}")
            tau = torch.exp(torch.linspace(math.log(lo), math.log(hi), n_in))
        if not bool((tau > 0).all()):
            raise ValueError("time constants must be > 0 ms")
        self.log_tau = nn.Parameter(tau.log(), requires_grad=learn_tau)

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]

    @property
    def tau_ms(self) -> Tensor:
        """Time constants of the presynaptic memories, ms, ``[n_in]``."""
        return self.log_tau.exp()

    def initial_state(self, batch: int, online: bool = False) -> GammaState:
        z = torch.zeros(batch, self.K, self.n_in, device=self.weight.device)
        return GammaState(torch.zeros(batch, self.n_in, device=self.weight.device), z,
                          torch.zeros_like(z) if online else None)

    def constants(self, dt_ms: float, online: bool = False) -> StepConstants:
        """Per-run constants at step ``dt_ms`` (compute once, reuse for every step of a run)."""
        if not dt_ms > 0:
            raise ValueError(f"dt_ms must be > 0, got {dt_ms}")
        tau = self.log_tau.exp()
        a = decay(tau.detach() if online else tau, dt_ms)
        c = spike_size(self.theta, tau.detach(), dt_ms) if self.theta > 0 else 0.0
        da = (a * dt_ms / tau).detach()
        # x_o = sum_k v_ko sum_i W_oi b_ki = b.flatten(K, i) @ (v_ko W_oi)[k, i, o]
        weight = (self.v.unsqueeze(1) * self.weight.t().unsqueeze(0)).reshape(self.K * self.n_in, self.n_out)
        return StepConstants(a, c, da, weight, float(dt_ms), online)

    def forward(self, y_in: Tensor, state: GammaState, dt_ms: float, online: bool = False,
                constants: StepConstants | None = None) -> tuple[Tensor, GammaState, Tensor]:
        """One step: presynaptic analog outputs ``[B, n_in]`` -> (this layer's output ``[B, n_out]``,
        new state, presynaptic spike counts ``[B, n_in]``). ``constants`` (from :meth:`constants`
        with the same dt and mode) saves recomputing them at every step."""
        if y_in.dim() != 2 or y_in.shape[1] != self.n_in:
            raise ValueError(f"expected input [batch, {self.n_in}], got {tuple(y_in.shape)}")
        k = constants if constants is not None else self.constants(dt_ms, online)
        state, buckets, n = gamma_step(state, y_in, self.log_tau, self.K, k, self.quantizer)
        x = torch.addmm(self.bias, buckets.reshape(buckets.shape[0], -1), k.weight)
        return (torch.relu(x) if self.spiking_output else x), state, n

    def extra_repr(self) -> str:
        return f"n_in={self.n_in}, n_out={self.n_out}, K={self.K}, theta={self.theta}, spiking_output={self.spiking_output}"


def detach_state(state: GammaState) -> GammaState:
    """The same state cut from the autograd graph (truncating backpropagation through time)."""
    return GammaState(state.yhat.detach(), state.buckets.detach(),
                      None if state.trace is None else state.trace.detach())
