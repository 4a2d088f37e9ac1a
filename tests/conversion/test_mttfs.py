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


def _signed_qnn(first_bias: float | None = None, zero_first: bool = False):
    """A QNN with a signed TTFS layer (the seed baseline differs from signed TTFS only there)."""
    from isospike.train.ttfs import TTFSQuant

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 16), TTFSQuant(15, 0.1, signed=True), nn.Linear(16, 8), TTFSQuant(15, 0.1),
                        nn.Linear(8, 3)).eval()
    with torch.no_grad():
        if zero_first:  # every value of the signed layer is 0
            net[0].weight.zero_()
            net[0].bias.zero_()
        if first_bias is not None:  # every value clipped to a saturated level
            net[0].bias.fill_(first_bias)
    return net


def test_seed_baseline_equals_the_qnn_and_moves_only_silence():
    net = _signed_qnn()
    x = torch.randn(128, 5)
    with torch.no_grad():
        ref = net(x)
    plain = isp.convert(net, coding="ttfs", calibration=x)
    seed = isp.convert(net, coding="ttfs", calibration=x, silence="lowest")
    a, b = isp.simulate(plain, x), isp.simulate(seed, x)
    assert torch.allclose(a.output, ref, atol=1e-5) and torch.allclose(b.output, ref, atol=1e-5)
    pops = [n for n, m in seed.neurons() if isinstance(m, TTFSPopulation)]
    signed, unsigned = (seed.graph_module.get_submodule(p) for p in pops)
    assert int(signed.silent_level) == -15 and signed.silence == "lowest" and signed.masked
    assert int(unsigned.silent_level) == 0 and not unsigned.masked  # unsigned: the lowest level is 0
    assert seed.info["silence"] == "lowest" and "silence" not in plain.info
    names = list(b.layers)
    # signed layer: one spike per neuron off the lowest level; events = spikes x fan-out
    levels = torch.round(torch.clamp(net[0](x) / 0.1, -15, 15))
    assert b.layers[names[1]].spikes == int((levels != -15).sum())
    assert a.layers[names[1]].spikes == int((levels != 0).sum())
    assert b.layers[names[2]].synaptic_ops == b.layers[names[1]].spikes * 8
    assert b.layers[names[3]].spikes == a.layers[names[3]].spikes  # the unsigned layer is unchanged
    assert isp.verify(seed, x[:32]).holds


@pytest.mark.parametrize("bias,zero,silent_under", [(-100.0, False, "lowest"), (None, True, "zero")])
def test_a_layer_on_the_silent_level_fires_nothing(bias, zero, silent_under):
    """All values at the lowest level: silent under the seed baseline, every neuron fires under
    signed TTFS; all values at 0: the other way round."""
    net = _signed_qnn(bias, zero)
    x = torch.randn(32, 5)
    spikes = {}
    for silence in ("zero", "lowest"):
        res = isp.simulate(isp.convert(net, coding="ttfs", calibration=x, silence=silence), x)
        spikes[silence] = res.layers[list(res.layers)[1]].spikes
    other = "zero" if silent_under == "lowest" else "lowest"
    assert spikes[silent_under] == 0 and spikes[other] == 32 * 16


def test_seed_baseline_on_relu_networks_is_plain_ttfs():
    net = _shifted_net()
    x = torch.randn(64, 5)
    a = isp.simulate(isp.convert(net, coding="ttfs", calibration=x), x)
    b = isp.simulate(isp.convert(net, coding="ttfs", calibration=x, silence="lowest"), x)
    assert torch.equal(a.output, b.output) and a.spikes == b.spikes and a.synaptic_ops == b.synaptic_ops


def test_silence_option_is_validated():
    from isospike.devices import OptoelectronicSynapse

    net = _signed_qnn()
    x = torch.randn(8, 5)
    with pytest.raises(ValueError, match="'zero', 'lowest'.*got 'mode'.*coding='mttfs'"):
        isp.convert(net, coding="ttfs", calibration=x, silence="mode")
    with pytest.raises(ValueError, match="silence must be one of"):
        isp.convert(net, coding="ttfs", calibration=x, silence=0)
    with pytest.raises(ValueError, match="synapse=None"):
        isp.convert(net, coding="ttfs", calibration=x, silence="lowest", synapse=OptoelectronicSynapse.in2o3())
    with pytest.raises(ValueError, match="silent_level"):
        TTFSPopulation(15, 0.1, signed=True, silent_level=3, silence="lowest")
    with pytest.raises(ValueError, match="silence"):
        TTFSPopulation(15, 0.1, silence="median")
