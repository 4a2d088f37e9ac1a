"""Every network on a CUDA device (skipped without one; run by benchmarks/gpu_suite.py on a lent GPU).

A network converted on CPU and moved with ``.to("cuda")`` runs on CUDA inputs with every state
tensor on the device, and gives the CPU network's outputs (float kernels differ in the last bits
between devices, so rate/TTFS outputs are compared at a tolerance; the exact network's outputs are
the claim and are compared bit for bit).
"""

import copy

import pytest
import torch
from torch import nn

import isospike as isp
from isospike.exact import counting

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def _cnn() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 5)).eval()


@pytest.mark.parametrize("coding,timesteps", [("rate", 16), ("sigma_delta", 16), ("ttfs", 15), ("mttfs", 15)])
@pytest.mark.parametrize("make,shape", [(_mlp, (12,)), (_cnn, (1, 8, 8))], ids=["mlp", "cnn"])
def test_converted_networks_run_on_cuda_like_on_cpu(coding, timesteps, make, shape):
    ann = make()
    calib = torch.rand(64, *shape)
    snn = isp.convert(ann, coding=coding, timesteps=timesteps, calibration=calib)
    x = torch.rand(9, *shape)
    want = snn(x)
    gpu = copy.deepcopy(snn).to("cuda")
    y = gpu(x.cuda())
    assert y.is_cuda and y.shape == want.shape
    assert torch.allclose(y.cpu(), want, atol=1e-3, rtol=1e-3), (y.cpu() - want).abs().max()
    stats = isp.simulate(gpu, x.cuda())
    assert stats.spikes > 0


def test_an_exact_network_on_cuda_is_bit_identical_and_counts_the_same():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 3)).eval()
    x = torch.randn(4, 6)
    ref = isp.exact.reference(model)(x)
    exact = isp.exact.convert(model)
    with counting() as cpu_counts:
        want = exact(x)
    gpu = isp.exact.convert(copy.deepcopy(model).to("cuda"))
    with counting() as gpu_counts:
        y = gpu(x.cuda())
    assert y.is_cuda
    assert torch.equal(y.cpu().view(torch.int32), want.view(torch.int32))
    assert torch.equal(want.view(torch.int32), ref.view(torch.int32))
    assert (gpu_counts.spikes, gpu_counts.synaptic_events) == (cpu_counts.spikes, cpu_counts.synaptic_events)
