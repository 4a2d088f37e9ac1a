import pytest
import torch
from torch import nn

import isospike as isp
from isospike.conversion.ttfs import TTFSPopulation


def _shifted_net():
    """A net whose hidden activations mostly sit on a nonzero level (a large positive bias)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    with torch.no_grad():
        net[0].weight.mul_(0.05)
        net[0].bias.fill_(1.0)
    return net


def test_mttfs_without_dead_zone_equals_ttfs_and_spikes_less():
    net = _shifted_net()
    x = torch.randn(256, 5)
    ttfs = isp.convert(net, coding="ttfs", timesteps=15, calibration=x)
    mttfs = isp.convert(net, coding="mttfs", timesteps=15, calibration=x)
    assert "mttfs" in isp.codings()
    a, b = isp.simulate(ttfs, x), isp.simulate(mttfs, x)
    assert torch.allclose(a.output, b.output, atol=1e-5)
    assert b.spikes < a.spikes
    first = next(iter(mttfs.info["silent_levels"].values()))
    assert first > 0  # the bias moved the mode off level 0
    syn = [s for s in b.layers.values() if s.kind == "ac"]
    assert sum(s.synaptic_ops for s in syn) < sum(s.synaptic_ops for s in a.layers.values() if s.kind == "ac")


def test_per_layer_decoded_values_are_identical_to_ttfs():
    net = _shifted_net()
    x = torch.randn(64, 5)
    outs = {}
    for coding in ("ttfs", "mttfs"):
        snn = isp.convert(net, coding=coding, timesteps=15, calibration=x)
        got = []
        hooks = [m.register_forward_hook(lambda mod, i, o: got.append(o.clone())) for _, m in snn.neurons()]
        snn(x)
        for h in hooks:
            h.remove()
        outs[coding] = got
    for a, b in zip(outs["ttfs"], outs["mttfs"]):
        assert torch.equal(a, b)


def test_synaptic_events_equal_spikes_times_fan_out():
    net = _shifted_net()
    x = torch.randn(32, 5)
    res = isp.simulate(isp.convert(net, coding="mttfs", timesteps=15, calibration=x), x)
    names = list(res.layers)
    assert res.layers[names[2]].synaptic_ops == res.layers[names[1]].spikes * 8


@pytest.mark.parametrize("k", [1, 3])
def test_dead_zone_trades_accuracy_for_sparsity(k):
    net = _shifted_net()
    x = torch.randn(256, 5)
    base = isp.simulate(isp.convert(net, coding="mttfs", timesteps=15, calibration=x), x)
    dz = isp.simulate(isp.convert(net, coding="mttfs", timesteps=15, calibration=x, dead_zone=k), x)
    assert dz.spikes < base.spikes


def test_per_channel_silent_levels_on_a_cnn(trained_digits_cnn, digits):
    x = digits.test.x[:100]
    ttfs = isp.convert(trained_digits_cnn, coding="ttfs", timesteps=15, calibration=digits.train.x[:256])
    snn = isp.convert(trained_digits_cnn, coding="mttfs", timesteps=15, calibration=digits.train.x[:256], per_channel=True)
    assert torch.allclose(snn(x), ttfs(x), atol=1e-4)
    levels = next(iter(snn.info["silent_levels"].values()))
    assert isinstance(levels, list) and len(levels) > 1


def test_errors():
    net = _shifted_net()
    with pytest.raises(ValueError, match="calibration"):
        isp.convert(net, coding="mttfs")
    with pytest.raises(ValueError, match="dead_zone"):
        isp.convert(net, coding="mttfs", calibration=torch.randn(8, 5), dead_zone=-1)
    with pytest.raises(ValueError, match="device"):
        from isospike.devices import OptoelectronicSynapse
        TTFSPopulation(15, 0.1, silent_level=3, device=OptoelectronicSynapse.in2o3())
