import numpy as np
import pytest
import torch

import isospike as isp
from hypothesis import given
from hypothesis import strategies as st

from isospike.neurons import IFNeuron, IFParameters, IFState, LIFNeuron, if_step, initial_state


def python_loop_reference(x: np.ndarray, threshold: float, leak: float, reset: str, v0: float):
    """The textbook IF/LIF recursion, one neuron at a time, in numpy float32 scalars."""
    T = x.shape[0]
    flat = x.reshape(T, -1).astype(np.float32)
    spikes = np.zeros_like(flat, dtype=np.uint8)
    v_final = np.zeros(flat.shape[1], dtype=np.float32)
    th, beta = np.float32(threshold), np.float32(leak)
    for i in range(flat.shape[1]):
        v = np.float32(v0)
        for t in range(T):
            v = np.float32(beta * v) + flat[t, i]
            if v >= th:
                spikes[t, i] = 1
                v = np.float32(v - th) if reset == "subtract" else np.float32(0.0)
        v_final[i] = v
    return spikes.reshape(x.shape), v_final.reshape(x.shape[1:])


@pytest.mark.parametrize("T,inp,v0", [(16, 0.25, 0.0), (40, 0.375, 0.5), (7, 1.0, 0.0), (33, 0.0625, 0.75)])
def test_if_subtract_matches_closed_form_with_constant_input(T, inp, v0):
    # Exact dyadic values: after t steps, n(t) = floor((v0 + t*I) / theta), V(t) = v0 + t*I - n(t) theta.
    n = IFNeuron(threshold=1.0, v_init=v0, step_mode="multi")
    s = n(torch.full((T, 3), inp))
    counts = s.cumsum(0)[:, 0]
    t = torch.arange(1, T + 1, dtype=torch.float32)
    assert torch.equal(counts, torch.floor((v0 + t * inp) / 1.0))
    assert torch.allclose(n.v, torch.full((3,), v0 + T * inp - float(counts[-1])))


def test_if_reset_to_zero_fires_every_ceil_theta_over_input():
    n = IFNeuron(threshold=1.0, reset="zero", step_mode="multi")
    s = n(torch.full((30, 1), 0.3))  # fires when 0.3 k >= 1 -> every 4th step, then starts again
    assert s[:, 0].nonzero().flatten().tolist() == [3, 7, 11, 15, 19, 23, 27]


def test_lif_membrane_matches_closed_form_below_threshold():
    beta, inp, T = 0.9, 0.05, 25
    n = LIFNeuron(beta=beta, threshold=1.0, step_mode="single")
    trace = []
    for _ in range(T):
        n(torch.tensor([inp]))
        trace.append(float(n.v))
    expected = [inp * (1 - beta ** t) / (1 - beta) for t in range(1, T + 1)]
    assert max(expected) < 1.0  # never fires: pure leaky integration
    assert np.allclose(trace, expected, rtol=1e-5)


@given(
    T=st.integers(1, 12),
    n=st.integers(1, 20),
    threshold=st.sampled_from([0.5, 1.0, 1.7]),
    leak=st.sampled_from([1.0, 0.9, 0.5]),
    reset=st.sampled_from(["subtract", "zero"]),
    v0=st.sampled_from([0.0, 0.25]),
    seed=st.integers(0, 2**16),
)
def test_kernel_torch_and_python_loop_agree_exactly(T, n, threshold, leak, reset, v0, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, 2, n, generator=g) * 0.8 + 0.3
    ref_spikes, ref_v = python_loop_reference(x.numpy(), threshold, leak, reset, v0)
    # compiled kernel (no grad) and torch path (grad) must both equal the reference bit for bit
    a = IFNeuron(threshold=threshold, leak=leak, reset=reset, v_init=v0, step_mode="multi")
    with torch.no_grad():
        sa = a(x)
    b = IFNeuron(threshold=threshold, leak=leak, reset=reset, v_init=v0, step_mode="multi")
    sb = b(x.clone().requires_grad_(True))
    assert np.array_equal(sa.numpy().astype(np.uint8), ref_spikes)
    assert np.array_equal(sb.detach().numpy().astype(np.uint8), ref_spikes)
    assert np.array_equal(a.v.numpy(), ref_v) and np.array_equal(b.v.detach().numpy(), ref_v)


def test_single_step_equals_multi_step_and_counts():
    x = torch.rand(10, 4, 5)
    m = IFNeuron(threshold=0.7, v_init=0.35, step_mode="multi")
    s = IFNeuron(threshold=0.7, v_init=0.35, step_mode="single")
    with isp.counting(m) as cm:
        ym = m(x)
    with isp.counting(s) as cs:
        ys = torch.stack([s(x[t]) for t in range(10)])
    assert torch.equal(ym, ys) and torch.equal(m.v, s.v)
    rm, rs = cm.layers["<model>"], cs.layers["<model>"]
    assert rm.spikes == rs.spikes == int(ym.sum())
    assert rm.neuron_updates == rs.neuron_updates == 10 * 20 and rm.neurons == rs.neurons == 5
    assert rm.by_step == ym.sum((1, 2)).long().tolist() and rs.by_step == [int(ym.sum())]
    assert cs.calls == 10 and cm.calls == 1


def test_reset_restarts_from_v_init_and_nothing_is_counted_outside_a_block():
    n = IFNeuron(threshold=1.0, v_init=0.5, step_mode="multi")
    x = torch.full((4, 2), 0.3)
    first = n(x)
    n.reset()
    assert n.v is None and n.t == 0
    with isp.counting(n) as seen:
        second = n(x)
    assert torch.equal(first, second)
    assert seen.spikes == int(first.sum()) and seen.layers["<model>"].by_step == [int(v) for v in first.sum(1)]
    assert not hasattr(n, "spikes") and not n._forward_hooks


def test_constant_input_mode_equals_repeated_input():
    x = torch.rand(3, 7)
    a = IFNeuron(threshold=0.4, step_mode="multi")
    b = IFNeuron(threshold=0.4, step_mode="multi")
    assert torch.equal(a.multi_step(x, constant_input=True, timesteps=9), b(x.expand(9, 3, 7)))
    with pytest.raises(ValueError, match="timesteps"):
        a.multi_step(x, constant_input=True)


def test_spike_value_and_per_channel_threshold():
    th = torch.tensor([0.5, 1.0, 2.0])
    n = IFNeuron(threshold=th, spike_value=th, step_mode="multi")
    out = n(torch.ones(4, 1, 3))
    assert out.sum(0).flatten().tolist() == [4 * 0.5 * 1, 4 * 1.0, 2 * 2.0]


def test_float64_input_stays_float64():
    n = IFNeuron(step_mode="multi")
    out = n(torch.rand(3, 2, dtype=torch.float64) * 2)
    assert out.dtype == torch.float64


def test_pure_step_function_matches_module():
    p = IFParameters(threshold=1.0, leak=0.8, reset="subtract", v_init=0.2)
    x = torch.rand(6, 5) * 0.9
    state = initial_state(x[0], p)
    assert isinstance(state, IFState) and torch.allclose(state.v, torch.full((5,), 0.2))
    mod = IFNeuron(threshold=1.0, leak=0.8, v_init=0.2)
    for t in range(6):
        s, state = if_step(x[t], state, p)
        assert torch.equal(s, mod(x[t]))
    assert torch.equal(state.v, mod.v)


@pytest.mark.parametrize(
    "kwargs,err",
    [
        (dict(threshold=0.0), ValueError),
        (dict(threshold=float("nan")), ValueError),
        (dict(leak=0.0), ValueError),
        (dict(leak=1.5), ValueError),
        (dict(reset="hard"), ValueError),
        (dict(step_mode="both"), ValueError),
    ],
)
def test_bad_parameters_are_rejected(kwargs, err):
    with pytest.raises(err):
        IFNeuron(**kwargs)


def test_bad_inputs_are_rejected():
    n = IFNeuron(step_mode="multi")
    with pytest.raises(TypeError, match="floating-point"):
        n(torch.ones(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\[T, batch"):
        n(torch.ones(3))


def test_empty_batch_is_fine():
    n = IFNeuron(step_mode="multi")
    with isp.counting(n) as seen:
        out = n(torch.zeros(5, 0, 3))
    assert out.shape == (5, 0, 3) and seen.spikes == 0


@pytest.mark.parametrize("grad", [False, True])
def test_binary_output_is_bool_events(grad):
    x = torch.rand(6, 3, 4, requires_grad=grad)
    a = IFNeuron(threshold=0.5, spike_value=0.5, step_mode="multi")
    b = IFNeuron(threshold=0.5, spike_value=0.5, step_mode="multi")
    events = a.multi_step(x, binary=True)
    assert events.dtype == torch.bool
    with isp.counting(b) as seen:
        spikes = b(x)
    assert torch.equal(events.float() * 0.5, spikes.detach())
    assert seen.spikes == int(events.sum())
