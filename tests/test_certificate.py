import pytest
import torch
from torch import nn

import isospike as isp
from isospike.conversion.timefold import TimeFoldedNeuron


@pytest.mark.parametrize("coding,kwargs", [("ttfs", {}), ("mttfs", dict(dead_zone=1, per_channel=True)),
                                           ("sigma_delta", dict(levels=8))])
def test_equivalent_network_reproduces_the_snn_and_the_certificate_holds(trained_digits_cnn, digits, coding, kwargs):
    x = digits.test.x[:64]
    snn = isp.convert(trained_digits_cnn, coding=coding, calibration=digits.train.x[:256], **kwargs)
    eq = isp.equivalent(snn)
    assert not any(isinstance(m, TimeFoldedNeuron) for m in eq.modules())
    with torch.no_grad():
        assert torch.equal(eq(x), snn(x))
    cert = isp.verify(snn, x)
    assert cert.holds and cert.fraction_within == 1.0 and cert.summary() == "yes"
    assert {c.guarantee for c in cert.layers} == {"qnn-equivalent"} and len(cert.layers) == 3


def test_unsettled_sigma_delta_is_caught():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    x = torch.randn(32, 4) * 3
    snn = isp.convert(net, coding="sigma_delta", calibration=x, levels=32, max_spikes_per_step=1, timesteps=2)
    cert = isp.verify(snn, x)
    assert not cert.holds and cert.layers[0].violations > 0 and "NO" in cert.summary()


def test_rate_certificate(trained_digits_cnn, digits):
    x = digits.test.x[:64]
    T = 8
    snn = isp.convert(trained_digits_cnn, coding="rate", timesteps=T, calibration=digits.train.x[:256])
    cert = isp.verify(snn, x)
    first, *rest = cert.layers
    assert first.guarantee == "qnn-equivalent" and first.holds  # constant input current: exact
    assert all(c.guarantee == "bounded-error" for c in rest)
    # a bounded-error violation needs a final membrane outside [0, theta]
    pops = [m for _, m in snn.neurons()]
    currents = {}
    hooks = [p.register_forward_hook(lambda m, i, o: currents.__setitem__(m, i[0])) for p in pops]
    with torch.no_grad():
        snn(x)
    for h in hooks:
        h.remove()
    for c, pop in zip(rest, pops[1:]):
        v, th = pop.run(currents[pop], T)[1], pop.neuron.threshold
        outside = int(((v < -1e-6) | (v > th + 1e-6)).sum())
        assert c.violations <= outside
        assert c.bound == pytest.approx(float(th.max()) / 2 / T)
    # a miss of rate neurons is reported as the bounded-error certificate it is, never as "NO"
    for c in rest:
        assert c.status == "yes" if c.holds else c.status.startswith("bounded: ") and c.status.endswith(" within")
    if not cert.holds:
        assert cert.misses_only_bounds and cert.summary().startswith("bounded error: ")
        assert "NO" not in cert.summary() and "bounded error" in cert.table().splitlines()[0]


def test_bounded_share_never_rounds_a_miss_to_100_percent():
    from isospike.guarantees import BOUNDED_ERROR, QNN_EQUIVALENT, Certificate, LayerCertificate

    row = LayerCertificate("fc", BOUNDED_ERROR, 0.3, 0.1, False, violations=1, entries=100_000)
    assert row.status == "bounded: 99.99% within"
    cert = Certificate("rate", 4, [row])
    assert cert.summary() == "bounded error: 99.99% within"
    cert.layers.append(LayerCertificate("conv", QNN_EQUIVALENT, 1.0, 0.0, False, violations=3, entries=10))
    assert not cert.misses_only_bounds and cert.summary().startswith("NO (")


def test_exact_certificate_and_reference(trained_digits_cnn, digits):
    x = digits.test.x[:3]
    ex = isp.exact.convert(trained_digits_cnn)
    cert = isp.verify(ex, x)
    assert cert.holds and all(c.guarantee == "bit-exact" and c.max_ulp == 0 for c in cert.layers)
    with torch.no_grad():
        assert torch.equal(isp.equivalent(ex)(x), isp.exact.reference(trained_digits_cnn)(x))


def test_bad_inputs():
    with pytest.raises(TypeError, match="isospike.convert"):
        isp.verify(nn.Linear(2, 2), torch.zeros(1, 2))
    with pytest.raises(TypeError, match="isospike.convert"):
        isp.equivalent(nn.Linear(2, 2))


def test_networks_read_back_from_nir_keep_their_equivalent_and_certificate(tmp_path):
    pytest.importorskip("nir")
    torch.manual_seed(0)
    ann = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
                              torch.nn.Linear(16, 3)).eval()
    x = torch.rand(32, 8)
    snn = isp.convert(ann, coding="rate", timesteps=4, calibration=x)
    isp.nir.export(snn, tmp_path / "r.nir")
    loaded = isp.nir.load(tmp_path / "r.nir")  # thresholds moved into the next weights: spikes worth 1
    assert torch.allclose(isp.equivalent(loaded)(x), isp.equivalent(snn)(x), atol=1e-5)  # theta moved into weights
    a, b = isp.verify(snn, x), isp.verify(loaded, x)
    assert [(r.guarantee, r.violations) for r in a.layers] == [(r.guarantee, r.violations) for r in b.layers]
    assert a.layers[0].holds


@pytest.mark.parametrize("tolerance", [float("nan"), -1.0, float("inf")])
def test_meaningless_tolerances_are_refused(tolerance):
    ann = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)).eval()
    x = torch.rand(8, 4)
    with pytest.raises(ValueError, match="tolerance"):
        isp.verify(isp.convert(ann, coding="rate", calibration=x), x, tolerance=tolerance)


def test_reset_to_zero_neurons_follow_their_own_rule():
    """A rate network whose IF neurons reset to zero (as a foreign NIR file holds): the first layer
    is qnn-equivalent to the neuron's own quantizer (not reset-by-subtraction's formula), and the
    spike-fed layers claim no rate bound instead of reporting a failure."""
    import isospike as isp
    from isospike.conversion.timefold import TimeFoldedNeuron

    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.rand(40, 6)
    snn = isp.convert(ann, coding="rate", timesteps=7, calibration=x)
    for m in snn.modules():
        if isinstance(m, TimeFoldedNeuron):
            m.neuron.reset_mode = "zero"
    cert = isp.verify(snn, x)
    assert cert.holds, cert.table()
    kinds = [c.guarantee for c in cert.layers]
    assert kinds[0] == "qnn-equivalent" and kinds[1] == "none (reset to zero or leak)"
    assert cert.layers[0].max_abs_diff <= 1e-6  # float rounding of the mean rate only
    # the subtraction formula would not match these neurons: the quantizer really follows the rule
    first = next(m for m in snn.modules() if isinstance(m, TimeFoldedNeuron)).neuron
    from isospike.conversion.equivalent import RateQuantizer

    z = torch.linspace(0, 2, 200).unsqueeze(1) * first.threshold.max()
    zero = RateQuantizer(first.threshold, first.v_init, 7, first.spike_value, "zero")(z)
    subtract = RateQuantizer(first.threshold, first.v_init, 7, first.spike_value)(z)
    assert not torch.equal(zero, subtract)
