"""Integrate-and-fire (IF) and leaky integrate-and-fire (LIF) neurons.

The pure step function :func:`if_step` maps ``(input, state, parameters)`` to
``(spikes, new_state)``, :func:`if_multistep` runs T of them (a compiled kernel where no gradient
is needed); the modules :class:`IFNeuron` and :class:`LIFNeuron` are thin wrappers that keep the
state between calls. Nothing here counts: :func:`isospike.counting` reads spikes from the outputs.
Dynamics per step (float32):

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
from isospike.activity import LayerActivity
from isospike.neurons._kernels import integrate_fire_multistep, n_blocks, nonzero_per_row
from isospike.neurons.surrogate import spike

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
    s = spike(v, torch.as_tensor(p.threshold, dtype=v.dtype, device=v.device))
    if p.reset == "subtract":
        v = v - p.threshold * s.detach()
    else:
        v = v * (1 - s.detach())
    return s, IFState(v)


def _check_params(threshold: float | Tensor, leak: float, reset: str) -> None:
    if reset not in ("subtract", "zero"):
        raise ValueError(f"reset must be 'subtract' or 'zero', got {reset!r}")
    if not (0.0 < float(leak) <= 1.0):
        raise ValueError(f"leak (beta) must be in (0, 1], got {leak}")
    th = torch.as_tensor(threshold)
    if th.numel() == 0 or not torch.isfinite(th).all() or (th <= 0).any():
        raise ValueError(f"threshold must be finite and > 0, got {threshold!r}")


def if_multistep(x_steps: Tensor, p: IFParameters, spike_value: Tensor, timesteps: int, *,
                 constant_input: bool = False, v0: Tensor | None = None, binary: bool = False) -> tuple[Tensor, Tensor]:
    """Run ``timesteps`` IF/LIF steps from ``v0`` (default: ``p.v_init``) as a pure function.

    ``x_steps``: input currents ``[T, batch, ...]``, or ``[1, batch, ...]`` with
    ``constant_input`` (the same current at every step, not copied). Returns (spikes
    ``[T, batch, ...]`` worth ``spike_value`` each in ``x_steps``' dtype, or 0/1 ``torch.bool``
    events with ``binary``; the final membrane ``[batch, ...]``).

    Without autograd (float32 on the CPU, outside ``torch.compile``) it runs the compiled kernel;
    otherwise the same float32 arithmetic step by step in torch, the spikes carrying the surrogate
    gradient of :mod:`isospike.neurons.surrogate` (the reset term carries none). Both give identical
    spikes and membranes."""
    neuron_shape = tuple(x_steps.shape[1:])
    pt = IFParameters(torch.as_tensor(p.threshold, dtype=x_steps.dtype, device=x_steps.device), p.leak, p.reset,
                      torch.as_tensor(p.v_init, dtype=x_steps.dtype, device=x_steps.device))
    v = initial_state(x_steps[0], pt).v if v0 is None else v0
    use_kernel = (
        x_steps.dtype == torch.float32
        and x_steps.device.type == "cpu"
        and not (torch.is_grad_enabled() and (x_steps.requires_grad or v.requires_grad))
        and not torch.compiler.is_compiling()  # dynamo cannot trace into numba: the torch path compiles
    )
    if use_kernel:
        return _run_kernel(x_steps, constant_input, timesteps, v, pt, spike_value, binary)
    state, out = IFState(v), []
    for t in range(timesteps):
        s, state = if_step(x_steps[0 if constant_input else t], state, pt)
        out.append(s)
    spikes = torch.stack(out) if out else x_steps.new_zeros((0, *neuron_shape))
    return (spikes.bool() if binary else spikes * spike_value.to(x_steps.dtype)), state.v


def _run_kernel(x_steps: Tensor, constant: bool, T: int, v: Tensor, p: IFParameters, spike_value: Tensor,
                binary: bool) -> tuple[Tensor, Tensor]:
    neuron_shape = v.shape
    m = v.numel()
    x2 = x_steps.detach().reshape(x_steps.shape[0], m).contiguous().numpy()
    v_np = v.detach().to(torch.float32).reshape(m).contiguous().clone().numpy()
    th = _per_neuron(torch.as_tensor(p.threshold), neuron_shape, m)
    val = _per_neuron(spike_value, neuron_shape, m)
    # numpy allocates large arrays with transparent huge pages: far fewer page faults
    out = np.empty((T, m), dtype=np.uint8 if binary else np.float32)
    counts = np.empty((n_blocks(m), T), dtype=np.int64)
    with kept_threads():  # the user's torch thread count stays as set (see isospike._threads)
        integrate_fire_multistep(x2, constant, T, v_np, th, val, np.float32(p.leak), p.reset == "zero", binary, out,
                                 counts)
    spikes = torch.from_numpy(out).reshape((T, *neuron_shape))
    spikes = spikes.view(torch.bool) if binary else spikes
    return with_step_counts(spikes, torch.from_numpy(counts.sum(0))), torch.from_numpy(v_np).reshape(neuron_shape)


STEP_COUNTS = "isospike_spikes_per_step"  # the attribute a kernel-made spike tensor carries its counts in


def with_step_counts(spikes: Tensor, per_step: Tensor) -> Tensor:
    """``spikes`` carrying its spikes per step (int64 ``[T]``), which the kernel counted in the same
    pass, so that :func:`spikes_per_step` (an observer's count) costs nothing. Only this tensor
    object carries them: any operation on it gives a tensor without, which is counted afresh."""
    setattr(spikes, STEP_COUNTS, per_step)
    return spikes


def spikes_per_step(spikes: Tensor, timesteps: int) -> Tensor:
    """Spikes (nonzero entries) at each of ``timesteps`` steps of a step-major spike tensor
    (``[T, ...]`` or time-folded ``[T * batch, ...]``): int64 ``[T]`` (one parallel pass of a
    compiled kernel on the CPU: torch's row reductions of such wide rows are several times slower)."""
    if spikes.numel() == 0:
        return torch.zeros(timesteps, dtype=torch.int64)
    known = getattr(spikes, STEP_COUNTS, None)
    if isinstance(known, Tensor) and known.numel() == timesteps:
        return known
    rows = spikes.detach().reshape(timesteps, -1)
    if rows.device.type != "cpu" or torch.compiler.is_compiling() or rows.dtype == torch.bool:
        return torch.count_nonzero(rows, dim=1)
    counts = np.empty(timesteps, dtype=np.int64)
    with kept_threads():
        nonzero_per_row(rows.contiguous().numpy(), counts)
    return torch.from_numpy(counts)


class IFNeuron(nn.Module):
    """A population of IF neurons (LIF when ``leak < 1``) with explicit state.

    Shapes: single-step input ``[batch, ...]``; multi-step input ``[T, batch, ...]``; the output
    has the input's shape and dtype (float32 or float64), spikes scaled by ``spike_value``
    (nonzero: a spike is a nonzero output). The membrane ``v`` and step ``t`` carry over from
    call to call until :meth:`reset`; the dynamics themselves are the pure :func:`if_step` /
    :func:`if_multistep`. Spikes carry a surrogate gradient under autograd. The module keeps no
    counters: :func:`isospike.counting` counts its spikes from its outputs (:meth:`activity`).
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
        value = torch.as_tensor(spike_value, dtype=torch.float32)
        if value.numel() == 0 or not bool(torch.isfinite(value).all()) or bool((value == 0).any()):
            raise ValueError(f"spike_value must be finite and nonzero (a spike is a nonzero output), got {spike_value!r}")
        self.register_buffer("threshold", torch.as_tensor(threshold, dtype=torch.float32).clone())
        self.register_buffer("v_init", torch.as_tensor(v_init, dtype=torch.float32).clone())
        self.register_buffer("spike_value", value.clone())
        self.leak = float(leak)
        self.reset_mode: ResetMode = reset
        self.step_mode: StepMode = step_mode
        self.v: Tensor | None = None
        self.t = 0

    # ------------------------------------------------------------------ state
    @property
    def params(self) -> IFParameters:
        return IFParameters(self.threshold, self.leak, self.reset_mode, self.v_init)

    def reset(self) -> None:
        """Forget the membrane state (the next input starts from ``v_init`` at t = 0)."""
        self.v = None
        self.t = 0

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
        out = self.multi_step(x.unsqueeze(0))
        return out[0]

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
        v0 = self.v if self.v is not None and tuple(self.v.shape) == neuron_shape else None
        out, self.v = if_multistep(x_steps, self.params, self.spike_value, T, constant_input=constant_input, v0=v0,
                                   binary=binary)
        self.t += T
        return out

    def activity(self, args: tuple, output: Tensor) -> LayerActivity:
        """What one call did (for :func:`isospike.counting`): spikes per step, neuron updates."""
        seq = output.unsqueeze(0) if self.step_mode == "single" else output  # [T, batch, ...]
        steps, rows = seq.shape[0], seq.shape[1] if seq.dim() > 1 else 1
        neurons = seq[0].numel() // max(rows, 1) if steps else 0
        per_step = spikes_per_step(seq, steps)
        return LayerActivity("", "neuron", neurons=neurons, neuron_updates=rows * neurons * steps,
                             spikes=int(per_step.sum()), timesteps=steps, samples=rows, by_step=per_step.tolist())


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
