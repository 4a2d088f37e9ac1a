"""The baseline for SpikingGamma: a feedforward LIF network trained with a surrogate gradient.

Hidden layers are LIF neurons with reset by subtraction, written in physical time so that the
same weights run at any step dt: V <- beta V + (1 - beta) I, beta = exp(-dt / tau_mem), a
spike (at most one per step) when V >= threshold. The backward pass replaces the Heaviside
derivative by the fast-sigmoid surrogate 1 / (1 + slope |V - threshold|)^2 (Zenke & Ganguli
2018) -- the approximation SpikingGamma does without. The read-out is a leaky integrator of the
last hidden layer's spikes, scaled by 1 / (rate of one spike per ms) so that its units do not
depend on dt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from isospike.models.spiking_gamma import GammaRun


class FastSigmoidSpike(torch.autograd.Function):
    """Heaviside forward, fast-sigmoid surrogate derivative backward."""

    @staticmethod
    def forward(ctx, v: Tensor, slope: float) -> Tensor:
        ctx.save_for_backward(v)
        ctx.slope = slope
        return (v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (v,) = ctx.saved_tensors
        return grad / (1 + ctx.slope * v.abs()) ** 2, None


class LIFSequenceNet(nn.Module):
    """``n_in -> hidden (LIF)... -> n_out`` (leaky read-out), the surrogate-gradient baseline.

    Args:
        tau_mem_ms: membrane time constants (ms): (min, max), spread log-uniformly over each
            layer's neurons; learn_tau trains them (one per neuron, as in parametric LIF).
        tau_out_ms: read-out time constant (ms). threshold: firing threshold; slope: surrogate
        sharpness.
    """

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int, tau_mem_ms: tuple[float, float] = (5.0, 50.0),
                 tau_out_ms: float = 10.0, threshold: float = 0.25, slope: float = 5.0, learn_tau: bool = True) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("the LIF baseline needs at least one hidden layer")
        sizes = [n_in, *hidden, n_out]
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        lo, hi = (float(t) for t in tau_mem_ms)
        if not 0 < lo <= hi:
            raise ValueError(f"tau_mem_ms must be (min, max) with 0 < min <= max, got {tau_mem_ms}")
        self.log_tau = nn.ParameterList(
            nn.Parameter(torch.linspace(math.log(lo), math.log(hi), h), requires_grad=learn_tau) for h in hidden)
        self.tau_out_ms = float(tau_out_ms)
        self.threshold, self.slope = float(threshold), float(slope)
        self.config = dict(n_in=n_in, hidden=list(hidden), n_out=n_out, tau_mem_ms=(lo, hi),
                           tau_out_ms=tau_out_ms, threshold=threshold, slope=slope, learn_tau=learn_tau)

    @property
    def populations(self) -> list[str]:
        return [f"hidden{i}" for i in range(1, len(self.fcs))]

    def forward(self, x_seq: Tensor, dt_ms: float) -> Tensor:
        return self.run(x_seq, dt_ms).outputs

    def run(self, x_seq: Tensor, dt_ms: float) -> GammaRun:
        """Read-out ``[T, B, n_out]`` and spike counts for the input ``[T, B, n_in]``."""
        if x_seq.dim() != 3:
            raise ValueError(f"expected an input sequence [T, batch, n_in], got {tuple(x_seq.shape)}")
        T, B = x_seq.shape[:2]
        betas = [torch.exp(-dt_ms / lt.exp()) for lt in self.log_tau]
        beta_out = math.exp(-dt_ms / self.tau_out_ms)
        hidden = self.fcs[:-1]
        # self.fcs holds only nn.Linear layers (nn.ModuleList is typed as holding any nn.Module)
        v = [x_seq.new_zeros(B, cast(nn.Linear, fc).out_features) for fc in hidden]
        out_v = x_seq.new_zeros(B, cast(nn.Linear, self.fcs[-1]).out_features)
        counts = [0.0] * len(hidden)
        outs = []
        for t in range(T):
            s = x_seq[t]
            for i, fc in enumerate(hidden):
                v[i] = betas[i] * v[i] + (1 - betas[i]) * fc(s)
                s = FastSigmoidSpike.apply(v[i] - self.threshold, self.slope)
                v[i] = v[i] - self.threshold * s
                counts[i] += float(s.detach().sum())
            # spikes per ms drive the read-out, so its steady state is independent of dt
            out_v = beta_out * out_v + (1 - beta_out) * self.fcs[-1](s / dt_ms)
            outs.append(out_v)
        return GammaRun(torch.stack(outs), {p: int(c) for p, c in zip(self.populations, counts)}, T, dt_ms, B)
