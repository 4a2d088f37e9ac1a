"""Integrate-and-fire (IF) and leaky integrate-and-fire (LIF) neurons.

The pure step function :func:`if_step` maps ``(input, state, parameters)`` to
``(spikes, new_state)``; the modules :class:`IFNeuron` and :class:`LIFNeuron` are thin wrappers
that keep the state, loop over time and count what they do. Dynamics per step (float32):

    V <- beta * V + I              (beta = 1 for IF)
    S  = [V >= theta]
    V <- V - theta * S             (reset by subtraction)  or  V <- V * (1 - S)  (reset to zero)

Spikes leave the neuron as ``S * spike_value`` (1 by default; the threshold in rate-converted
networks, so that the next layer's weights stay those of the ANN).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from isospike._threads import kept_threads
from isospike.neurons._kernels import integrate_fire_multistep, n_blocks

ResetMode = Literal["subtract", "zero"]
StepMode = Literal["single", "multi"]


class IFParameters(NamedTuple):
    """Parameters of an IF/LIF neuron population.

    threshold: firing threshold theta (float, or a tensor broadcastable to the neuron shape).
    leak: membrane decay beta per step, in (0, 1]; 1.0 is the non-leaky IF neuron.
    reset: "subtract" (V -= theta on a spike) or "zero" (V = 0 on a spike).
    v_init: membrane potential at t = 0 (float or broadcastable tensor), same units as theta.
    """

    threshold: float | Tensor = 1.0
    leak: float = 1.0
    reset: ResetMode = "subtract"
    v_init: float | Tensor = 0.0


class IFState(NamedTuple):
    """Membrane potential V, float32 tensor of the neuron shape ``[batch, ...]``."""

    v: Tensor


def initial_state(like: Tensor, p: IFParameters) -> IFState:
    """The state at t = 0 for inputs shaped like ``like`` (``[batch, ...]``)."""
    v = torch.zeros_like(like) + torch.as_tensor(p.v_init, dtype=like.dtype, device=like.device)
    return IFState(v)


def if_step(x: Tensor, state: IFState, p: IFParameters) -> tuple[Tensor, IFState]:
    """One time step. ``x`` is the input current ``[batch, ...]``; returns 0/1 spikes of x's dtype."""
    v = p.leak * state.v + x
    s = (v >= p.threshold).to(x.dtype)
    if p.reset == "subtract":
        v = v - p.threshold * s
    else:
        v = v * (1 - s)
    return s, IFState(v)


def _check_params(threshold: float | Tensor, leak: float, reset: str) -> None:
    if reset not in ("subtract", "zero"):
        raise ValueError(f"reset must be 'subtract' or 'zero', got {reset!r}")
    if not (0.0 < float(leak) <= 1.0):
        raise ValueError(f"leak (beta) must be in (0, 1], got {leak}")
    th = torch.as_tensor(threshold)
    if th.numel() == 0 or not torch.isfinite(th).all() or (th <= 0).any():
        raise ValueError(f"threshold must be finite and > 0, got {threshold!r}")


class IFNeuron(nn.Module):
    """A population of IF neurons (LIF when ``leak < 1``) with explicit state and counters.

    Shapes: single-step input ``[batch, ...]``; multi-step input ``[T, batch, ...]``; the output
    has the input's shape and dtype (float32 or float64), spikes scaled by ``spike_value``.

    Counters (zeroed by :meth:`reset_counts`, kept by :meth:`reset`): ``spikes`` (total spikes
    emitted), ``neuron_updates`` (neurons x time steps simulated), ``steps`` (time steps run) and
    ``spikes_by_step`` (list: entry t sums the spikes emitted at step t after a state reset, over
    every run since the counters were zeroed).

    The no-grad multi-step path runs a compiled kernel; with autograd it runs the same float32
    arithmetic step by step in torch (spikes carry no gradient: there is no surrogate here).
    """

    threshold: Tensor  # buffers registered in __init__
    v_init: Tensor
    spike_value: Tensor

    def __init__(
        self,
        threshold: float | Tensor = 1.0,
        reset: ResetMode = "subtract",
        v_init: float | Tensor = 0.0,
        leak: float = 1.0,
        step_mode: StepMode = "single",
        spike_value: float | Tensor = 1.0,
    ) -> None:
        super().__init__()
        _check_params(threshold, leak, reset)
        if step_mode not in ("single", "multi"):
            raise ValueError(f"step_mode must be 'single' or 'multi', got {step_mode!r}")
        self.register_buffer("threshold", torch.as_tensor(threshold, dtype=torch.float32).clone())
        self.register_buffer("v_init", torch.as_tensor(v_init, dtype=torch.float32).clone())
        self.register_buffer("spike_value", torch.as_tensor(spike_value, dtype=torch.float32).clone())
        self.leak = float(leak)
        self.reset_mode: ResetMode = reset
        self.step_mode: StepMode = step_mode
        self.v: Tensor | None = None
        self.t = 0
        self.reset_counts()

    # ------------------------------------------------------------------ state and counters
    @property
    def params(self) -> IFParameters:
        return IFParameters(self.threshold, self.leak, self.reset_mode, self.v_init)

    def reset(self) -> None:
        """Forget the membrane state (the next input starts from ``v_init`` at t = 0)."""
        self.v = None
        self.t = 0

    def reset_counts(self) -> None:
        """Zero the spike and update counters."""
        self.spikes = 0
        self.neuron_updates = 0
        self.steps = 0
        self.spikes_by_step: list[int] = []

    def _record(self, first_step: int, spikes_per_step: list[int], neurons: int) -> None:
        self.spikes += sum(spikes_per_step)
        self.steps += len(spikes_per_step)
        self.neuron_updates += neurons * len(spikes_per_step)
        needed = first_step + len(spikes_per_step)
        if len(self.spikes_by_step) < needed:
            self.spikes_by_step.extend([0] * (needed - len(self.spikes_by_step)))
        for k, n in enumerate(spikes_per_step):
            self.spikes_by_step[first_step + k] += n

    def extra_repr(self) -> str:
        th = self.threshold
        th_s = f"{th.item():.4g}" if th.numel() == 1 else f"tensor{tuple(th.shape)}"
        return f"threshold={th_s}, leak={self.leak}, reset={self.reset_mode}, step_mode={self.step_mode}"

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Tensor:
        return self.single_step(x) if self.step_mode == "single" else self.multi_step(x)

    def _check_input(self, x: Tensor, min_dim: int) -> None:
        if not x.is_floating_point():
            raise TypeError(f"{type(self).__name__} expects a floating-point input current, got {x.dtype}")
        if x.dim() < min_dim:
            raise ValueError(
                f"{type(self).__name__} expects at least {min_dim} dims "
                f"({'[batch, ...]' if min_dim == 1 else '[T, batch, ...]'}), got shape {tuple(x.shape)}"
            )

    def single_step(self, x: Tensor) -> Tensor:
        """Advance one step. ``x``: input current ``[batch, ...]``. Returns scaled spikes."""
        self._check_input(x, 1)
        p = self._params_for(x)
        if self.v is None or self.v.shape != x.shape:
            self.v = initial_state(x, p).v
        s, state = if_step(x, IFState(self.v), p)
        self.v = state.v
        self._record(self.t, [int(s.sum().item())], x.numel())
        self.t += 1
        return s * self.spike_value.to(x.dtype)

    def multi_step(
        self, x_seq: Tensor, constant_input: bool = False, timesteps: int | None = None, binary: bool = False
    ) -> Tensor:
        """Run T steps. ``x_seq``: ``[T, batch, ...]`` currents; returns ``[T, batch, ...]`` spikes
        (``spike_value`` per spike, input dtype), or 0/1 ``torch.bool`` events with ``binary=True``
        (one byte per neuron and step: the cheapest form to store or transmit).

        With ``constant_input=True``, ``x_seq`` is a single ``[batch, ...]`` current applied at
        each of ``timesteps`` steps (the input is not copied T times).
        """
        if constant_input:
            if timesteps is None or timesteps < 1:
                raise ValueError("constant_input=True needs timesteps >= 1")
            self._check_input(x_seq, 1)
            x_steps, T, neuron_shape = x_seq.unsqueeze(0), int(timesteps), tuple(x_seq.shape)
        else:
            self._check_input(x_seq, 2)
            x_steps, T, neuron_shape = x_seq, x_seq.shape[0], tuple(x_seq.shape[1:])
        p = self._params_for(x_seq)
        if self.v is None or tuple(self.v.shape) != neuron_shape:
            self.v = initial_state(x_steps[0], p).v
        use_kernel = (
            x_seq.dtype == torch.float32
            and x_seq.device.type == "cpu"
            and not (torch.is_grad_enabled() and x_seq.requires_grad)
            and not torch.compiler.is_compiling()  # dynamo cannot trace into numba: the torch path compiles
        )
        if use_kernel:
            out, per_step = self._run_kernel(x_steps, constant_input, T, binary)
        else:
            spikes = self._run_torch(x_steps, constant_input, T, p)
            per_step = spikes.reshape(T, -1).sum(1).to(torch.int64).tolist()
            out = spikes.bool() if binary else spikes * self.spike_value.to(x_seq.dtype)
        self._record(self.t, per_step, int(np.prod(neuron_shape)))
        self.t += T
        return out

    def _params_for(self, x: Tensor) -> IFParameters:
        return IFParameters(
            self.threshold.to(x.dtype), self.leak, self.reset_mode, self.v_init.to(x.dtype)
        )

    def _run_torch(self, x_steps: Tensor, constant: bool, T: int, p: IFParameters) -> Tensor:
        assert self.v is not None  # multi_step initialises the state before running
        state = IFState(self.v)
        out = []
        for t in range(T):
            s, state = if_step(x_steps[0 if constant else t], state, p)
            out.append(s)
        self.v = state.v
        return torch.stack(out)

    def _run_kernel(self, x_steps: Tensor, constant: bool, T: int, binary: bool) -> tuple[Tensor, list[int]]:
        assert self.v is not None  # multi_step initialises the state before running
        neuron_shape = self.v.shape
        m = self.v.numel()
        x2 = x_steps.detach().reshape(x_steps.shape[0], m).contiguous().numpy()
        v = self.v.detach().to(torch.float32).reshape(m).contiguous().clone().numpy()
        th = _per_neuron(self.threshold, neuron_shape, m)
        val = _per_neuron(self.spike_value, neuron_shape, m)
        # numpy allocates large arrays with transparent huge pages: far fewer page faults
        out = np.empty((T, m), dtype=np.uint8 if binary else np.float32)
        counts = np.empty((n_blocks(m), T), dtype=np.int64)
        with kept_threads():  # the user's torch thread count stays as set (see isospike._threads)
            integrate_fire_multistep(
                x2, constant, T, v, th, val, np.float32(self.leak), self.reset_mode == "zero", binary, out, counts
            )
        self.v = torch.from_numpy(v).reshape(neuron_shape)
        spikes = torch.from_numpy(out).reshape((T, *neuron_shape))
        return (spikes.view(torch.bool) if binary else spikes), counts.sum(0).tolist()


def _per_neuron(p: Tensor, neuron_shape: torch.Size, m: int) -> np.ndarray:
    """A parameter broadcast to one float32 value per neuron, as a contiguous [M] array."""
    return torch.broadcast_to(p.to(torch.float32), neuron_shape).reshape(m).contiguous().numpy()


class LIFNeuron(IFNeuron):
    """Leaky integrate-and-fire: ``V <- beta V + I`` with ``beta = leak`` in (0, 1).

    Same interface, state and counters as :class:`IFNeuron`; ``beta`` is required.
    """

    def __init__(
        self,
        beta: float,
        threshold: float | Tensor = 1.0,
        reset: ResetMode = "subtract",
        v_init: float | Tensor = 0.0,
        step_mode: StepMode = "single",
        spike_value: float | Tensor = 1.0,
    ) -> None:
        super().__init__(threshold, reset, v_init, leak=beta, step_mode=step_mode, spike_value=spike_value)

    @property
    def beta(self) -> float:
        return self.leak
