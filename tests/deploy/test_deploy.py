"""isp.deploy: quantization to the chips' integer formats, refusals naming the constraint, and the
vendor simulators against isospike's own simulation of the same integer network."""

import importlib.util

import pytest
import torch
from torch import nn

import isospike as isp
from isospike.deploy import DeploymentError

XYLOSIM = importlib.util.find_spec("xylosim") is not None and importlib.util.find_spec("rockpool") is not None
NO_XYLOSIM = ("xylosim (the C++ core of rockpool's Xylo simulator) is not installed: `pip install xylosim==0.1.3` "
              "builds it from source (pybind11 and a C++ compiler)")


@pytest.fixture(scope="module")
def wine():
    """scikit-learn's wine data (13 features, 3 classes) scaled to [0, 1], a trained MLP and its rate SNN."""
    from sklearn.datasets import load_wine

    d = load_wine()
    x = torch.tensor(d.data, dtype=torch.float32)
    x = (x - x.min(0).values) / (x.max(0).values - x.min(0).values)
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.Adam(ann.parameters(), 1e-2)
    for _ in range(300):
        opt.zero_grad()
        nn.functional.cross_entropy(ann(x[:120]), y[:120]).backward()
        opt.step()
    ann.eval()
    snn = isp.convert(ann, coding="rate", timesteps=32, calibration=x[:120])
    return x, y, ann, snn


def test_xylo_quantizes_and_isospike_simulates_the_integer_network(wine):
    x, y, _, snn = wine
    dep = isp.deploy(snn, target="xylo", calibration=x[:120])  # the package is callable
    assert dep.target == "xylo" and dep.timesteps == 32 + 3
    s = dep.spec
    for name in ("weights_in", "weights_rec", "weights_out"):
        assert s[name].abs().max() <= 127  # int8
    assert 0 < int(s["threshold"].min()) and int(s["threshold"].max()) <= 2**15 - 1  # int16
    assert s["weights_in"].shape == (14, 1 + 32 + 16)  # 13 inputs + the bias channel; bias neuron + two layers
    assert [p.path for p in dep.layers] == ["0", "2", "4"] and "hidden neurons" in dep.layers[0].where
    with torch.no_grad():
        float_decisions = snn(x[120:]).argmax(-1)
    ours = dep.simulate(x[120:])
    assert ours.trace.shape == (58, 35, 3) and ours.spikes.shape == (58, 49)
    assert float((ours.scores.argmax(-1) == float_decisions).float().mean()) >= 0.9
    assert "layer" in dep.table() and "int8 << " in dep.table()


def test_xylo_refuses_what_does_not_fit_naming_layer_and_constraint(wine):
    x, _, _, snn = wine
    digits_like = nn.Sequential(nn.Flatten(), nn.Linear(64, 20), nn.ReLU(), nn.Linear(20, 10)).eval()
    cal = torch.rand(32, 1, 8, 8)
    with pytest.raises(DeploymentError, match=r"layer '1' \(Linear\) has 64 inputs.*16 input channels"):
        isp.deploy(digits_like, target="xylo", calibration=cal)
    wide = nn.Sequential(nn.Linear(4, 600), nn.ReLU(), nn.Linear(600, 500), nn.ReLU(), nn.Linear(500, 2)).eval()
    with pytest.raises(DeploymentError, match=r"1101 neurons.*Xylo has 1000"):
        isp.deploy(wide, target="xylo", calibration=torch.rand(32, 4))
    many = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 10)).eval()
    with pytest.raises(DeploymentError, match=r"layer '2' \(Linear\) has 10 outputs; Xylo has 8 read-out"):
        isp.deploy(many, target="xylo", calibration=torch.rand(32, 4))
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 2)).eval()
    with pytest.raises(DeploymentError, match=r"layer '0' \(Conv2d\).*target='speck'"):
        isp.deploy(conv, target="xylo", calibration=torch.rand(8, 1, 8, 8))
    with pytest.raises(DeploymentError, match="spike counts.*>= 0"):
        isp.deploy(snn, target="xylo", calibration=x[:120] - 0.5)
    ttfs = isp.convert(many, coding="ttfs", calibration=torch.rand(32, 4))
    with pytest.raises(DeploymentError, match="ttfs-coded.*rate"):
        isp.deploy(ttfs, target="xylo", calibration=torch.rand(32, 4))
    with pytest.raises(ValueError, match="unknown deployment target"):
        isp.deploy(snn, target="loihi9", calibration=x)


@pytest.mark.skipif(not XYLOSIM, reason=NO_XYLOSIM)
def test_xylo_simulator_equals_isospikes_simulation_spike_for_spike(wine):
    x, y, _, snn = wine
    dep = isp.deploy(snn, target="xylo", calibration=x[:120])
    agreement = dep.check(x[120:], y[120:])
    assert agreement.decisions_equal == 1.0 and agreement.spike_counts_equal == 1.0 and agreement.outputs_identical
    assert agreement.float_snn_decisions_equal >= 0.9
    assert agreement.accuracy["xylo simulator"] >= 0.85
    assert "vendor simulator vs isospike" in agreement.table()


SINABS = importlib.util.find_spec("sinabs") is not None
NO_SINABS = "sinabs is not installed (`pip install --no-deps sinabs==3.1.3`; the Makefile installs it)"


@pytest.fixture(scope="module")
def digits_rate(trained_digits_cnn, digits):
    return isp.convert(trained_digits_cnn, coding="rate", timesteps=8, calibration=digits.train.x[:256])


@pytest.mark.skipif(not SINABS, reason=NO_SINABS)
def test_speck_maps_the_cnn_to_cores_and_sinabs_equals_isospike_spike_for_spike(digits_rate, digits):
    dep = isp.deploy(digits_rate, target="speck", calibration=digits.train.x[:256])
    assert [p.path for p in dep.layers] == ["0", "3", "8", "10"]
    assert all(p.where.startswith("core ") for p in dep.layers)  # sinabs' mapper placed every layer
    assert len({p.where for p in dep.layers}) == 4
    for op in dep.ops:
        if op.weight is not None:
            assert op.weight.abs().max() <= 127 and 1 <= op.threshold <= 2**15 - 1
    x, y = digits.test.x[:24], digits.test.y[:24]
    agreement = dep.check(x, y)
    assert agreement.decisions_equal == 1.0 and agreement.spike_counts_equal == 1.0 and agreement.outputs_identical
    assert agreement.float_snn_decisions_equal >= 0.85
    assert "samna" not in __import__("sys").modules  # the placeholder is gone once sinabs is loaded


@pytest.mark.skipif(not SINABS, reason=NO_SINABS)
def test_speck_refuses_layers_no_core_holds_naming_the_memory():
    big = nn.Sequential(nn.Conv2d(2, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 256, 5, padding=2), nn.ReLU(),
                        nn.Flatten(), nn.Linear(256 * 16 * 16, 2)).eval()
    x = torch.rand(8, 2, 16, 16)
    with pytest.raises(DeploymentError, match=r"layer '2' \(Conv2d \+ IF neurons\) needs .* kernel \(weight\) memory"):
        isp.deploy(big, target="speck", calibration=x)


def test_speck_refuses_what_the_cores_cannot_run():
    maxpool = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(4 * 16, 2)).eval()
    with pytest.raises((DeploymentError, isp.UnsupportedLayerError)):
        isp.deploy(maxpool, target="speck", calibration=torch.rand(8, 1, 8, 8))
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    with pytest.raises(DeploymentError, match=r"images \[N, C, H, W\]"):
        isp.deploy(mlp, target="speck", calibration=torch.rand(8, 4))
