"""Converted networks are differentiable (surrogate gradients through IF spikes, straight-through
gradients through TTFS and sigma-delta levels) without changing what they compute, and the
fine-tuning recipe trains them through their spiking forward pass."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import isospike as isp
from isospike.neurons.surrogate import ALPHA, spike, straight_through


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).eval()


CODINGS = [("rate", {"timesteps": 4}), ("ttfs", {}), ("mttfs", {"dead_zone": 1}), ("sigma_delta", {"timesteps": 3})]


@pytest.mark.parametrize("coding,options", CODINGS)
def test_every_coding_is_differentiable_and_computes_the_same_with_or_without_autograd(coding, options):
    x = torch.randn(32, 6)
    snn = isp.convert(mlp(), coding=coding, calibration=x, **options)
    with torch.no_grad():
        plain = snn(x)
    y = snn(x)
    assert y.requires_grad and torch.equal(y.detach(), plain)  # bit for bit
    F.cross_entropy(y, torch.arange(32) % 3).backward()
    grads = {name: p.grad for name, p in snn.named_parameters()}
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads.values())
    # the gradient reaches the first layer, through every population
    first = next(p for name, p in snn.named_parameters() if name.endswith("weight"))
    assert float(first.grad.abs().sum()) > 0


def test_the_surrogate_is_the_arctangent_derivative_in_threshold_units():
    theta = torch.tensor(0.8)
    v = torch.linspace(-1, 3, 41, requires_grad=True)
    s = spike(v, theta)
    assert torch.equal(s.detach(), (v.detach() >= theta).float())
    s.sum().backward()
    u = (v.detach() - theta) / theta
    expected = (ALPHA / 2) / (1 + (math.pi / 2 * ALPHA * u) ** 2) / theta
    assert torch.allclose(v.grad, expected)
    assert int(spike(torch.tensor([0.8]), theta, strict=True)) == 0 and int(spike(torch.tensor([0.8]), theta)) == 1


def test_straight_through_is_exact_forward_and_masked_backward():
    x = torch.tensor([-1.0, 0.3, 0.7, 2.0], requires_grad=True)
    value = torch.round(x.detach() * 3) / 3
    y = straight_through(x, value, (x >= 0) & (x <= 1))
    assert torch.equal(y.detach(), value)
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0]
    assert straight_through(x.detach(), value) is value  # no autograd: the value itself


def test_spiking_fine_tuning_lowers_the_loss_of_a_low_T_rate_network():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    ann = mlp()
    isp.train.fit_classifier(ann, (x, y), epochs=15, progress=False)
    snn = isp.convert(ann, coding="rate", timesteps=2, calibration=x)

    def loss() -> float:
        with torch.no_grad():
            return float(F.cross_entropy(snn(x), y))

    before = loss()
    history = isp.train.finetune_spiking(snn, (x, y), epochs=4, lr=1e-3, progress=False)
    assert len(history.train_loss) == 4 and loss() < before
    assert snn.timesteps == 2 and not snn.graph_module.training  # still the T = 2 inference network
    with pytest.raises(TypeError, match="isospike.convert"):
        isp.train.finetune_spiking(ann, (x, y))


def test_a_sequence_shaped_input_is_refused_not_guessed():
    x = torch.randn(8, 6)
    snn = isp.convert(mlp(), coding="rate", timesteps=4, calibration=x)
    with pytest.raises(ValueError, match=r"one dimension more .* \[T, batch, \.\.\.\] sequence"):
        snn(torch.randn(4, 8, 6))
