import numpy as np
import pytest
import torch
from torch import nn

import isospike as isp
from isospike.coding import ttfs as ttfs_coding
from isospike.conversion.ttfs import TTFSPopulation
from isospike.devices import DeviceVariation, OptoelectronicSynapse
from isospike.train.ttfs import TTFSQuant, qnn_from, ttfs_layers


def test_in2o3_device_curve_and_slot_times_match_the_paper():
    dev = OptoelectronicSynapse.in2o3()
    assert dev(np.array([0.0]))[0] == pytest.approx(1.0)
    t = np.linspace(0, dev.t_end, 500)
    assert np.all(np.diff(dev(t)) <= 0) and dev(np.array([dev.t_end]))[0] == pytest.approx(0.0, abs=1e-9)
    slots = dev.slot_times(15)
    paper = [0.417, 1.69, 3.84, 6.88, 10.8, 15.6, 21.3, 28.0, 35.5, 43.9, 53.3, 63.6, 74.8, 86.9, 100.0]  # x 1e-6
    assert np.allclose(slots[1:] * 1e6, paper, rtol=0.01)
    assert torch.allclose(dev.slot_reads(15), (15 - torch.arange(16, dtype=torch.float64)) / 15, atol=1e-12)


def test_measured_samples_csv_and_validation(tmp_path):
    t = np.linspace(0, 5, 20)
    v = 3.0 * np.exp(-t)
    dev = OptoelectronicSynapse.from_samples(t, v)
    assert dev(np.array([0.0]))[0] == pytest.approx(1.0)
    assert np.all(np.diff(dev(np.linspace(0, 5, 200))) <= 1e-12)  # monotone interpolation
    (tmp_path / "d.csv").write_text("time,value\n" + "\n".join(f"{a},{b}" for a, b in zip(t, v)))
    dev2 = OptoelectronicSynapse.from_csv(tmp_path / "d.csv")
    assert np.allclose(dev2.slot_times(7), dev.slot_times(7))
    with pytest.raises(ValueError, match="increase"):
        OptoelectronicSynapse.from_samples([0, 1, 2], [1.0, 0.5, 0.7])
    with pytest.raises(ValueError, match="same length"):
        OptoelectronicSynapse.from_samples([0, 1], [1.0])


def test_device_variation_statistics_and_granularity():
    g = torch.Generator().manual_seed(0)
    f = DeviceVariation(0.1).factors(torch.Size([100000]), g)
    assert abs(float(f.mean()) - 1) < 0.002 and abs(float(f.std()) - 0.1) < 0.002
    u = DeviceVariation(0.2, "uniform").factors(torch.Size([100000]), g)
    assert float(u.min()) >= 0.8 and float(u.max()) <= 1.2
    assert DeviceVariation(0.1, granularity="run").factors(torch.Size([5, 3]), g).shape == (1, 1)
    with pytest.raises(ValueError):
        DeviceVariation(-1)


def test_ttfs_encode_decode_one_spike_per_neuron():
    x = torch.rand(4, 50) * 2
    spikes = ttfs_coding.encode(x, timesteps=15, scale=0.1)
    assert spikes.shape == (15, 4, 50) and spikes.sum(0).max() <= 1
    q = torch.clamp(torch.floor(x / 0.1 + 0.5), 0, 15)
    assert torch.allclose(ttfs_coding.decode(spikes, scale=0.1), q * 0.1)
    assert torch.equal(ttfs_coding.first_spike_slot(spikes), (15 - q).long())  # early = large
    reads = OptoelectronicSynapse.in2o3().slot_reads(15)
    assert torch.allclose(ttfs_coding.decode(spikes, scale=0.1, reads=reads), q * 0.1, atol=1e-6)


def test_ttfs_quant_levels_gradients_and_signed():
    m = TTFSQuant(timesteps=7, scale=0.5).eval()
    z = torch.linspace(-1, 5, 301)
    assert torch.allclose(m(z), 0.5 * torch.clamp(torch.floor(z / 0.5 + 0.5), 0, 7))
    m.train()
    z = torch.tensor([0.3, 1.2, 9.0], requires_grad=True)
    m(z).sum().backward()
    assert z.grad.tolist() == [1.0, 1.0, 0.0] and m.scale.grad is not None
    s = TTFSQuant(timesteps=7, scale=0.5, signed=True).eval()
    assert s(torch.tensor([-1.2, 1.2, -9.0])).tolist() == [-1.0, 1.0, -3.5]
    f = TTFSQuant(timesteps=7, scale=0.5, rounding="floor").eval()
    assert f(torch.tensor([0.99, 1.0])).tolist() == [0.5, 1.0]


def test_hybrid_forward_is_noisy_while_gradients_stay_the_qnn_ones():
    dev = OptoelectronicSynapse.in2o3(DeviceVariation(0.2))
    m = TTFSQuant(timesteps=15, scale=0.1, synapse=dev).train()
    m.generator = torch.Generator().manual_seed(0)
    clean = TTFSQuant(timesteps=15, scale=0.1).train()
    z = torch.rand(1000, requires_grad=True)
    z2 = z.detach().clone().requires_grad_(True)
    y, y_clean = m(z), clean(z2)
    assert not torch.equal(y, y_clean)
    y.sum().backward()
    y_clean.sum().backward()
    assert torch.equal(z.grad, z2.grad) and torch.equal(m.scale.grad, clean.scale.grad)
    assert torch.equal(m.eval()(z), clean.eval()(z))  # eval: nominal device


def _cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 20), nn.ReLU(),
                         nn.Linear(20, 4)).eval()


@pytest.mark.parametrize("rounding", ["round", "floor"])
def test_every_ttfs_layer_equals_its_qnn_layer(rounding):
    x = torch.rand(32, 1, 8, 8)
    dev = OptoelectronicSynapse.in2o3()
    qnn = qnn_from(_cnn(), 15, calibration=x, synapse=dev, rounding=rounding).eval()
    snn = isp.convert(qnn, "ttfs", synapse=dev)
    q_out, s_out = {}, {}
    for p, m in ttfs_layers(qnn).items():
        m.register_forward_hook(lambda mod, i, o, p=p: q_out.__setitem__(p, o))
    for p, m in snn.neurons():
        m.register_forward_hook(lambda mod, i, o, p=p: s_out.__setitem__(p, o))
    with torch.no_grad():
        y_q = qnn(x)
        with isp.counting(snn) as seen:
            y_s = snn(x)
    assert set(q_out) == set(s_out) == {"2", "5", "8"}
    for p in q_out:
        assert torch.equal(q_out[p], s_out[p]), p  # same levels, same values, layer by layer
    assert torch.equal(y_q, y_s)
    for p, _ in snn.neurons():  # at most one spike per neuron per window
        row = seen.layers[p]
        assert 0 < row.spikes <= row.neurons * row.samples and sum(row.by_step) == row.spikes


def test_post_hoc_conversion_counts_and_device_noise():
    x = torch.rand(16, 1, 8, 8)
    ann = _cnn(1)
    snn = isp.convert(ann, "ttfs", timesteps=15, calibration=x, synapse=OptoelectronicSynapse.in2o3())
    res = isp.simulate(snn, x)
    assert res.layers["7"].device_reads == res.layers["7"].synaptic_ops > 0  # a layer fed by TTFS spikes
    assert res.layers["3"].device_reads == 0  # pooling reads no device
    assert res.layers["4"].kind == "mac"  # after pooling the inputs are averages, not spikes
    assert sum(res.layers["2"].by_step) == res.layers["2"].spikes
    pop = dict(snn.neurons())["2"]
    th = pop.thresholds()
    assert torch.all(th[1:] < th[:-1])  # a decreasing staircase
    noisy = isp.convert(ann, "ttfs", timesteps=15, calibration=x,
                        synapse=OptoelectronicSynapse.in2o3(DeviceVariation(0.3)))
    assert not torch.equal(noisy(x), snn(x))
    with pytest.raises(ValueError, match="fixed window"):
        snn(x, timesteps=4)
    with pytest.raises(ValueError, match="calibration"):
        isp.convert(ann, "ttfs")


def test_ttfs_encode_refuses_an_infinite_scale_and_non_tensors():
    from isospike.coding import ttfs as ttfs_code

    with pytest.raises(ValueError, match="finite"):
        ttfs_code.encode(torch.rand(3), scale=float("inf"))
    with pytest.raises(TypeError, match="as_tensor"):
        ttfs_code.encode([0.5, 1.0])
