"""Simulations are sized before they allocate: whole-number timesteps, a memory estimate that
refuses what cannot fit (with the fix), and chunked simulation that gives the same results."""

import math

import pytest
import torch
from torch import nn

import isospike as isp
from isospike.errors import SimulationTooLargeError


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 16), nn.ReLU(),
                        nn.Linear(16, 3)).eval()
    x = torch.rand(24, 1, 4, 4)
    return ann, x, {c: isp.convert(ann, coding=c, calibration=x, **kw) for c, kw in
                    [("rate", dict(timesteps=4)), ("ttfs", {}), ("mttfs", dict(dead_zone=1)),
                     ("sigma_delta", dict(levels=8, timesteps=3))]}


@pytest.mark.parametrize("bad", [2.7, True, 0, -3, float("nan"), float("inf"), "4"])
def test_timesteps_that_are_not_whole_numbers_are_refused_not_truncated(nets, bad):
    _, x, snns = nets
    for call in (lambda: snns["rate"](x, timesteps=bad), lambda: isp.simulate(snns["rate"], x, timesteps=bad),
                 lambda: isp.convert(nets[0], coding="rate", timesteps=bad, calibration=x)):
        with pytest.raises(ValueError, match="timesteps"):
            call()
    assert torch.equal(snns["rate"](x, timesteps=4.0), snns["rate"](x, timesteps=4))  # 4.0 is the whole number 4


@pytest.mark.parametrize("coding", ["rate", "sigma_delta"])
def test_a_simulation_that_cannot_fit_is_refused_before_allocating(nets, coding):
    _, x, snns = nets
    with pytest.raises(SimulationTooLargeError, match="GiB.*fewer timesteps") as e:
        snns[coding](x, timesteps=10**12)
    assert isinstance(e.value, ValueError) and isinstance(e.value, MemoryError)
    assert "population" in str(e.value) and "\n" not in str(e.value)
    # a batch too large at a plausible T names the chunk size that fits
    big = x[:1].expand(2**22, 1, 4, 4)
    with pytest.raises(SimulationTooLargeError, match=r"batch_size=\d+"):
        isp.simulate(snns[coding], big, timesteps=4096)


def test_the_estimate_is_a_lower_bound_of_what_the_run_holds(nets):
    _, x, snns = nets
    snn = snns["rate"]
    needed, layer = snn.memory_needed(x, timesteps=8)
    # the largest population: 4 channels x 4 x 4 values per sample, as input and as output, per step
    assert layer == "1" and needed == 64 * len(x) * 8 * 2 * 4
    ttfs = snns["ttfs"]
    needed, _ = ttfs.memory_needed(x)
    assert needed == 64 * len(x) * (15 + 8 + 4)


def test_networks_without_recorded_shapes_are_measured_on_one_sample():
    torch.manual_seed(0)
    from isospike.train.qcfs import NoisyQCFS

    ann = nn.Sequential(nn.Linear(6, 10), NoisyQCFS(levels=4), nn.Linear(10, 2)).eval()
    snn = isp.convert(ann, coding="rate", timesteps=4)  # trained thresholds: no calibration, no shapes
    x = torch.rand(5, 6)
    needed, layer = snn.memory_needed(x)
    assert layer == "1" and needed == 10 * 5 * 4 * 2 * 4
    with pytest.raises(SimulationTooLargeError):
        snn(x, timesteps=10**13)


@pytest.mark.parametrize("coding", ["rate", "ttfs", "mttfs", "sigma_delta"])
def test_chunked_simulation_equals_one_run(nets, coding):
    _, x, snns = nets
    snn = snns[coding]
    whole, chunked = isp.simulate(snn, x), isp.simulate(snn, x, batch_size=5)
    assert torch.equal(whole.output, chunked.output)
    assert whole.spikes == chunked.spikes and whole.synaptic_ops == chunked.synaptic_ops
    assert whole.samples == chunked.samples == len(x)
    for name, layer in whole.layers.items():
        other = chunked.layers[name]
        assert (layer.spikes, layer.synaptic_ops, layer.samples, layer.by_step) == \
            (other.spikes, other.synaptic_ops, other.samples, other.by_step)
    with pytest.raises(ValueError, match="batch_size"):
        isp.simulate(snn, x, batch_size=0)
    assert math.isfinite(float(chunked.output.sum()))
