import math

import pytest
import torch
from torch.func import functional_call

from isospike.models.spiking_gamma import SpikingGammaNet
from isospike.neurons.gamma import GammaLayer, spike_size


def _drive(layer: GammaLayer, y: torch.Tensor, dt: float):
    """Run a layer on presynaptic outputs y [T, B, n_in]; return yhat, buckets and spikes per step."""
    state = layer.initial_state(y.shape[1])
    yhats, buckets, spikes = [], [], []
    for t in range(y.shape[0]):
        _, state, n = layer(y[t], state, dt)
        yhats.append(state.yhat)
        buckets.append(state.buckets)
        spikes.append(n)
    return torch.stack(yhats), torch.stack(buckets), torch.stack(spikes)


@pytest.mark.parametrize("dt", [0.125, 0.5, 2.0])
def test_second_bucket_follows_the_continuous_low_pass_to_second_order(dt):
    tau = 4.0
    layer = GammaLayer(1, 1, K=3, tau_ms=torch.tensor([tau]), theta=0.0)
    T = int(80 / dt)
    _, b, _ = _drive(layer, torch.ones(T, 1, 1), dt)
    t = (torch.arange(T) + 0.5) * dt  # step k stands for the middle of [k dt, (k + 1) dt)
    err = (b[:, 0, 1, 0].detach() - (1 - torch.exp(-t / tau))).abs().max()
    assert float(err) <= (dt / tau) ** 2 / 8 + 1e-6
    assert torch.allclose(b[-1, 0, :, 0], torch.ones(3), atol=1e-3)  # every bucket settles on the signal


@pytest.mark.parametrize("quantizer,bound", [("threshold", 1.0), ("round", 0.5)])
def test_sigma_delta_reconstruction_error_is_bounded_by_the_spike_size(quantizer, bound):
    theta, dt = 0.1, 0.5
    layer = GammaLayer(3, 2, K=2, tau_ms=torch.tensor([2.0, 8.0, 30.0]), theta=theta, quantizer=quantizer)
    t = torch.arange(400) * dt
    y = torch.relu(torch.stack([torch.sin(t / 5), 2 * torch.cos(t / 13), (t % 37) / 20], -1)).unsqueeze(1)
    yhat, _, _ = _drive(layer, y, dt)
    c = spike_size(theta, layer.tau_ms.detach(), dt)
    assert bool((c <= theta).all())
    assert bool(((yhat - y).abs() <= bound * c + 1e-6).all())


def test_steady_signal_costs_the_same_spikes_per_ms_at_every_step():
    theta, tau, value, ms = 0.05, 5.0, 0.8, 200.0
    rates = []
    for dt in [0.0625, 0.25, 1.0, 2.0]:
        layer = GammaLayer(1, 1, K=1, tau_ms=torch.tensor([tau]), theta=theta)
        _, _, n = _drive(layer, torch.full((int(ms / dt), 1, 1), value), dt)
        rates.append(float(n.abs().sum()) / ms)
    expected = value / (theta * tau)  # spikes per ms of a steady signal
    for r in rates:
        assert r == pytest.approx(expected, rel=0.05)


def test_gradients_match_finite_differences_without_spikes():
    # theta = 0: the continuous read-out the spiking network is trained through
    torch.manual_seed(1)
    net = SpikingGammaNet(3, [4], 2, K=3, theta=0.0).double()
    x = torch.rand(12, 2, 3, dtype=torch.float64)
    names = [n for n, _ in net.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in net.parameters())

    def f(*ps):
        return functional_call(net, dict(zip(names, ps)), (x, 0.5))

    assert torch.autograd.gradcheck(f, params)
    assert torch.autograd.gradcheck(lambda xx: net(xx, 0.5), (x.clone().requires_grad_(True),))


def test_spiking_gradient_is_the_straight_through_gradient_of_the_read_out():
    torch.manual_seed(2)
    spiking = SpikingGammaNet(4, [16], 3, K=3, theta=0.01)
    analog = SpikingGammaNet(4, [16], 3, K=3, theta=0.0)
    analog.load_state_dict(spiking.state_dict())
    x = torch.rand(40, 8, 4)
    grads = []
    for net in (spiking, analog):
        net.zero_grad()
        net(x, 0.5)[-5:].pow(2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    cos = float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0))
    assert cos > 0.99 and torch.isfinite(grads[0]).all()


def test_delays_grow_with_the_bucket_index():
    dt, tau = 0.25, 2.0
    layer = GammaLayer(1, 1, K=5, tau_ms=torch.tensor([tau]), theta=0.0)
    y = torch.zeros(400, 1, 1)
    y[0] = 1.0 / dt  # an impulse of unit area
    _, b, _ = _drive(layer, y, dt)
    t = torch.arange(400) * dt
    b = b.detach()
    means = [(t * b[:, 0, k, 0]).sum() / b[:, 0, k, 0].sum() for k in range(5)]
    for k in range(1, 5):  # k first-order stages delay by k tau on average, to O(dt^2)
        assert abs(float(means[k]) - k * tau) <= k * dt ** 2 / tau


def test_bad_arguments():
    with pytest.raises(ValueError, match="K"):
        GammaLayer(2, 2, K=0)
    with pytest.raises(ValueError, match="theta"):
        GammaLayer(2, 2, theta=-1.0)
    with pytest.raises(ValueError, match="quantizer"):
        GammaLayer(2, 2, quantizer="floor")
    with pytest.raises(ValueError, match="tau_ms"):
        GammaLayer(2, 2, tau_ms=(5.0, 1.0))
    layer = GammaLayer(2, 2)
    with pytest.raises(ValueError, match=r"\[batch, 2\]"):
        layer(torch.zeros(3, 5), layer.initial_state(3), 1.0)
    net = SpikingGammaNet(2, [3], 2)
    with pytest.raises(ValueError, match="sequence"):
        net(torch.zeros(4, 2), 1.0)
    with pytest.raises(ValueError, match="dt_ms"):
        net(torch.zeros(4, 1, 2), 0.0)
    assert math.isclose(float(spike_size(0.2, torch.tensor(4.0), 1e-6)), 0.2, rel_tol=1e-4)
