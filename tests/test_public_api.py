"""DESIGN.md section 1, called exactly as written there, on a model the library has not seen."""

import pytest
import torch
from torch import nn

import isospike as isp


@pytest.fixture(scope="module")
def ann_and_data():
    torch.manual_seed(7)
    ann = nn.Sequential(nn.Linear(12, 24), nn.ReLU(), nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 5)).eval()
    x_cal = torch.randn(64, 12)
    x = torch.randn(16, 12)
    return ann, x_cal, x


def test_exact_section(ann_and_data):
    ann, _, x = ann_and_data
    model = ann
    before = {k: v.clone() for k, v in model.state_dict().items()}
    snn = isp.exact.convert(model)
    ref = isp.exact.reference(model)
    y = snn(x[:3])
    assert torch.equal(y.view(torch.int32), ref(x[:3]).view(torch.int32))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # model untouched
    a, b = torch.randn(100), torch.randn(100)
    assert torch.equal(isp.exact.add(a, b), a + b)
    assert torch.equal(isp.exact.mul(a, b), a * b)
    g = torch.Generator().manual_seed(0)
    noisy = isp.exact.mul(a[:8], b[:8], backend="neuron", leak=0.5, noise=0.2, generator=g)
    assert noisy.shape == (8,) and noisy.dtype == torch.float32
    d = isp.metrics.ulp_distance(y, model(x[:3]))
    assert d.dtype == torch.int64 and d.shape == y.shape


def test_codings_section(tmp_path, ann_and_data):
    ann, x_cal, x = ann_and_data
    assert {"rate", "ttfs", "mttfs", "sigma_delta"} <= set(isp.codings())
    snns = {
        "rate": isp.convert(ann, coding="rate", timesteps=4, calibration=x_cal),
        "ttfs": isp.convert(ann, coding="ttfs", timesteps=15, calibration=x_cal,
                            synapse=isp.devices.OptoelectronicSynapse.in2o3()),
        "mttfs": isp.convert(ann, coding="mttfs", timesteps=15, calibration=x_cal, dead_zone=1),
        "sigma_delta": isp.convert(ann, coding="sigma_delta", calibration=x_cal),
    }
    for name, snn in snns.items():
        y = snn(x)
        assert y.shape == ann(x).shape, name
        res = isp.simulate(snn, x)
        assert torch.allclose(res.output, y, atol=1e-5) and isinstance(res.spikes, int) and res.spikes > 0
        for row in res.layers.values():
            assert {"neurons", "spikes", "synaptic_ops", "timesteps"} <= set(vars(row) if not isinstance(row, dict)
                                                                            else row)
        ref = isp.equivalent(snn)
        cert = isp.verify(snn, x)
        assert all(layer.guarantee in ("bit-exact", "qnn-equivalent", "bounded-error") for layer in cert.layers)
        if name != "rate":
            assert cert.holds and torch.allclose(ref(x), y, atol=1e-4)
        rep = isp.energy.estimate(snn, x, hardware="loihi")
        assert rep.total_j > 0 and set(rep.by_category) >= {"compute", "data_movement", "communication"}
        assert len(rep.layers) > 0 and isinstance(rep.table(), str)
        rep.plot(tmp_path / f"energy_{name}.png")
        assert (tmp_path / f"energy_{name}.png").stat().st_size > 0
        short = isp.energy.estimate(snn, x, hardware="horowitz45", mode="ops")
        assert short.total_j > 0
        isp.save(snn, tmp_path / "snn.safetensors")
        assert torch.equal(isp.load(tmp_path / "snn.safetensors")(x), y)
    isp.nir.export(snns["rate"], tmp_path / "model.nir")
    assert torch.allclose(isp.nir.load(tmp_path / "model.nir")(x), snns["rate"](x), atol=1e-5)


def test_coding_primitives():
    x = torch.rand(4, 10)
    spk = isp.coding.ttfs.encode(x, timesteps=15, scale=1.0)
    assert spk.shape == (15, 4, 10) and (spk.sum(0) <= 1).all()
    x_seq = torch.cumsum(0.05 * torch.randn(50, 3), 0)
    spk = isp.coding.sigma_delta.encode(x_seq, threshold=0.1)
    assert (isp.coding.sigma_delta.decode(spk, threshold=0.1) - x_seq).abs().max() <= 0.1 + 1e-6


def test_noise_aware_training_then_rate(ann_and_data):
    ann, x_cal, _ = ann_and_data
    torch.manual_seed(0)
    x_train = torch.randn(256, 12)
    y_train = ann(x_train).argmax(1)
    ann_nq = isp.train.noise_aware(ann, (x_train, y_train), epochs=3, levels=4)
    snn = isp.convert(ann_nq, coding="rate", timesteps=4, calibration=x_cal)
    agree = (snn(x_train).argmax(1) == ann_nq(x_train).argmax(1)).float().mean()
    assert agree > 0.8


def test_errors_name_the_problem():
    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.act = nn.Sigmoid()

        def forward(self, x):
            return self.act(self.fc(x))

    model = nn.Sequential(nn.Linear(4, 4), Gate())
    with pytest.raises(isp.UnsupportedLayerError, match=r"Sigmoid.*1\.act|1\.act.*Sigmoid"):
        isp.convert(model, coding="rate", timesteps=4, calibration=torch.randn(8, 4), front="graph")
    with pytest.raises((TypeError, ValueError)):
        isp.exact.add(torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))


def test_exact_is_a_coding_and_synapse_replaces_device(ann_and_data):
    """DESIGN section 1: isp.convert(model, coding="exact"), isp.codings() lists it, synapse= names
    the TTFS synapse model (device= still works for a release with a warning; a torch device
    there is a TypeError), and isp.simulate takes exact networks."""
    import warnings

    ann, cal, x = ann_and_data
    x = x[:4]
    assert "exact" in isp.codings()
    snn = isp.convert(ann, coding="exact", calibration=cal)
    assert isinstance(snn, isp.exact.ExactNetwork) and isinstance(snn, type(ann))
    assert torch.equal(snn(x).view(torch.int32), isp.exact.reference(ann)(x).view(torch.int32))
    with pytest.raises(ValueError, match="one time step"):
        isp.convert(ann, coding="exact", timesteps=4)
    res = isp.simulate(snn, x)
    assert res.timesteps == 1 and res.samples == 4 and res.spikes > 0 and res.layers
    assert all(layer.kind == "gates" for layer in res.layers.values())
    in2o3 = isp.devices.OptoelectronicSynapse.in2o3()
    a = isp.convert(ann, coding="ttfs", calibration=cal, synapse=in2o3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b = isp.convert(ann, coding="ttfs", calibration=cal, device=in2o3)
    assert any(issubclass(w.category, DeprecationWarning) and "synapse=" in str(w.message) for w in caught)
    assert torch.equal(a(x), b(x))
    for bad in ("cuda", torch.device("cpu")):
        with pytest.raises(TypeError, match=r"\.to\(device\)"):
            isp.convert(ann, coding="ttfs", calibration=cal, device=bad)
    with pytest.raises(TypeError, match="once"):
        isp.convert(ann, coding="ttfs", calibration=cal, synapse=in2o3, device=in2o3)
