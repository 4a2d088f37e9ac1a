import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import isospike as isp
from isospike.conversion.evaluation import evaluate_over_time
from isospike.conversion.graph import fold_batchnorm, trace
from isospike.conversion.timefold import CountingSynapse, TimeBroadcast, TimeFoldedNeuron
from isospike.train import accuracy


def mlp(seed=0, sizes=(12, 32, 24, 5)):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval()


def test_codings_registry_lists_rate():
    assert "rate" in isp.codings()


def test_first_layer_spike_counts_equal_the_shifted_floor_quantizer():
    # Constant input current z, threshold theta, V(0) = theta/2, reset by subtraction:
    # n(T) = clip(floor(T z / theta + 1/2), 0, T). Dyadic values keep the float arithmetic exact.
    T = 16
    z = torch.arange(-32, 96, dtype=torch.float32) / 64.0  # -0.5 .. 1.48
    n = isp.neurons.IFNeuron(threshold=1.0, v_init=0.5, step_mode="multi")
    counts = n.multi_step(z[None, :], constant_input=True, timesteps=T).sum(0)[0]
    expected = torch.clamp(torch.floor(T * z + 0.5), 0, T)
    assert torch.equal(counts, expected)


def test_first_hidden_layer_rate_equals_quantized_relu_in_a_network():
    model = mlp()
    x = torch.randn(64, 12)
    T = 8
    snn = isp.convert(model, "rate", timesteps=T, calibration=x, percentile=100.0)
    theta = snn.info["thresholds"]["1"]
    z = model[0](x).double()
    steps = snn.graph_module.get_submodule("1")
    with torch.no_grad():
        v = steps.run(model[0](x), T)[1].double()  # the population's final membrane on its input current
    # V(T) = theta/2 + T z - theta n  =>  n = (theta/2 + T z - V(T)) / theta; compare with the formula
    n = torch.round((theta / 2 + T * z - v) / theta)
    q = torch.clamp(torch.floor(T * z / theta + 0.5), 0, T)
    near_tie = ((T * z / theta + 0.5) - torch.round(T * z / theta + 0.5)).abs() < 1e-4
    assert torch.equal(n[~near_tie], q[~near_tie])


def test_snn_converges_to_ann_as_timesteps_grow():
    model = mlp(1)
    x = torch.randn(200, 12)
    snn = isp.convert(model, "rate", timesteps=8, calibration=x, percentile=100.0)
    with torch.no_grad():
        y = model(x)
    errs = [float((snn(x, timesteps=T) - y).abs().max()) for T in (8, 64, 512)]
    scale = float(y.abs().max())
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.05 * scale


def test_digits_cnn_at_T32_within_one_point_of_ann(trained_digits_cnn, digits):
    ann_acc = accuracy(trained_digits_cnn, digits.test)
    snn = isp.convert(trained_digits_cnn, "rate", timesteps=32, calibration=digits.train.x[:512])
    snn_acc = accuracy(snn, digits.test)
    assert ann_acc > 0.95
    assert abs(ann_acc - snn_acc) <= 0.01


def test_model_is_not_modified(trained_digits_cnn, digits):
    before = copy.deepcopy(trained_digits_cnn.state_dict())
    isp.convert(trained_digits_cnn, "rate", timesteps=4, calibration=digits.train.x[:64])
    after = trained_digits_cnn.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(isinstance(m, nn.ReLU) for m in trained_digits_cnn.modules())


def test_batchnorm_folding_preserves_the_function():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 8), nn.BatchNorm1d(8))
    model.train()
    for _ in range(3):
        model(torch.randn(16, 2, 8, 8))  # move the running statistics away from (0, 1)
    model.eval()
    gm = trace(model, "rate")
    folded = fold_batchnorm(gm)
    assert folded == [("0", "1"), ("4", "5")]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gm.modules())
    x = torch.randn(5, 2, 8, 8)
    with torch.no_grad():
        assert torch.allclose(gm(x), model(x), atol=1e-5)


class ResidualNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.fc2 = nn.Linear(16, 4)
        self.skip = nn.Linear(6, 4)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        return self.fc2(h) + self.skip(x)


def test_functional_relu_and_skip_from_the_input_are_converted():
    torch.manual_seed(0)
    model = ResidualNet().eval()
    x = torch.randn(50, 6)
    snn = isp.convert(model, "rate", timesteps=256, calibration=x, percentile=100.0)
    mods = dict(snn.graph_module.named_modules())
    assert any(isinstance(m, TimeBroadcast) for m in mods.values())  # skip(x) is constant over time
    assert isinstance(mods["relu"], TimeFoldedNeuron) and mods["relu"].static_input
    with torch.no_grad():
        assert float((snn(x) - model(x)).abs().max()) < 0.05 * float(model(x).abs().max())


class Nested(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(4, 4), act)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.block(x))


@pytest.mark.parametrize(
    "act,name,path,hint",
    [
        (nn.Sigmoid(), "Sigmoid", "block.1", "ReLU"),
        (nn.GELU(), "GELU", "block.1", "exact"),
        (nn.Softplus(), "Softplus", "block.1", ""),
    ],
)
def test_unsupported_layer_names_type_and_path(act, name, path, hint):
    with pytest.raises(isp.UnsupportedLayerError) as info:
        isp.convert(Nested(act), "rate", timesteps=4, calibration=torch.randn(8, 4), front="graph")
    err = info.value
    assert err.layer_type == name and err.path == path and err.coding == "rate"
    assert name in str(err) and path in str(err) and hint in str(err)


def test_maxpool_error_explains_the_fix():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 9, 3))
    with pytest.raises(isp.UnsupportedLayerError, match=r"MaxPool2d at '2'.*average pooling"):
        isp.convert(model, "rate", timesteps=4, calibration=torch.randn(4, 1, 8, 8), front="graph")


class FunctionalSigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return torch.sigmoid(self.fc(x))


class Product(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3)
        self.b = nn.Linear(3, 3)

    def forward(self, x):
        return torch.relu(self.a(x)) * torch.relu(self.b(x))


def test_unsupported_functions_are_named():
    with pytest.raises(isp.UnsupportedLayerError, match="sigmoid"):
        isp.convert(FunctionalSigmoid(), "rate", timesteps=4, calibration=torch.randn(4, 3), front="graph")
    with pytest.raises(isp.UnsupportedLayerError, match="not linear"):
        isp.convert(Product(), "rate", timesteps=4, calibration=torch.randn(4, 3), front="graph")


def test_argument_errors():
    model = mlp()
    with pytest.raises(ValueError, match="unknown coding"):
        isp.convert(model, "morse", timesteps=4, calibration=torch.randn(4, 12))
    with pytest.raises(ValueError, match="timesteps must be a whole number >= 1"):
        isp.convert(model, "rate", timesteps=0, calibration=torch.randn(4, 12))
    with pytest.raises(TypeError, match="unexpected option.*threshold.*accepted: timesteps, .*percentile"):
        isp.convert(model, "rate", calibration=torch.randn(4, 12), threshold=2.0)
    with pytest.raises(ValueError, match="reset must be one of 'subtract', 'zero'"):
        isp.convert(model, "rate", calibration=torch.randn(4, 12), reset="hard")
    with pytest.raises(TypeError, match="fold_bn must be True or False"):
        isp.convert(model, "rate", calibration=torch.randn(4, 12), fold_bn="yes")
    with pytest.raises(ValueError, match="calibration"):
        isp.convert(model, "rate", timesteps=4)
    with pytest.raises(TypeError, match="nn.Module"):
        isp.convert(lambda x: x, "rate", timesteps=4, calibration=torch.randn(4, 12))
    with pytest.raises(ValueError, match="percentile"):
        isp.convert(model, "rate", timesteps=4, calibration=torch.randn(4, 12), percentile=0)
    with pytest.raises(TypeError, match="calibration"):
        isp.convert(model, "rate", timesteps=4, calibration=3)


def test_calibration_accepts_tensor_pair_labelled_data_and_loader():
    model = mlp()
    x = torch.randn(100, 12)
    y = torch.zeros(100, dtype=torch.int64)
    ref = isp.convert(model, "rate", timesteps=4, calibration=x, percentile=100.0).info["thresholds"]
    for cal in ((x, y), isp.data.LabelledData(x, y), DataLoader(TensorDataset(x, y), batch_size=7), [x[:50], x[50:]]):
        th = isp.convert(model, "rate", timesteps=4, calibration=cal, percentile=100.0).info["thresholds"]
        assert th == pytest.approx(ref)


def test_simulate_reports_per_layer_counts_that_add_up(trained_digits_cnn, digits):
    x = digits.test.x[:20]
    snn = isp.convert(trained_digits_cnn, "rate", timesteps=6, calibration=digits.train.x[:128])
    res = isp.simulate(snn, x)
    assert torch.allclose(res.output, snn(x))
    neuron_layers = {k: v for k, v in res.layers.items() if v.kind == "neuron"}
    assert list(neuron_layers) == ["2", "5", "9"]  # the three ReLUs of SmallCNN(8x8)
    assert neuron_layers["2"].neurons == 16 * 8 * 8 and neuron_layers["9"].neurons == 64
    assert res.spikes == sum(v.spikes for v in neuron_layers.values()) > 0
    for v in neuron_layers.values():
        assert sum(v.by_step) == v.spikes and len(v.by_step) == 6
        assert v.neuron_updates == v.neurons * 20 * 6
        assert 0.0 < v.spikes_per_neuron_step < 1.0
    assert res.layers["0"].kind == "mac"  # analog input
    assert res.layers["3"].kind == "ac"  # driven by the spikes of layer 2
    # spikes of a layer feeding an average pool: each spike is one synaptic event of the pool
    assert res.layers["6"].synaptic_ops == res.layers["5"].spikes


def _brute_force_linear_ops(x, w):
    return int(sum(int(((x[b] != 0)[None, :] & (w != 0)).sum()) for b in range(len(x))))


def test_counting_synapse_linear_and_conv_match_brute_force():
    torch.manual_seed(0)
    lin = nn.Linear(10, 6)
    with torch.no_grad():
        lin.weight[lin.weight.abs() < 0.1] = 0
    x = (torch.rand(3 * 4, 10) > 0.6).float()
    c = CountingSynapse(lin, spike_input=True, static_input=False)
    with isp.counting(c) as seen:
        c(x, 3)
    row = seen.layers["<model>"]
    assert row.synaptic_ops == _brute_force_linear_ops(x, lin.weight) == sum(row.by_step)
    assert row.dense_ops == 12 * 60 and len(row.by_step) == 3 and row.samples == 4

    def ops(synapse, x):
        with isp.counting(synapse) as seen:
            synapse(x, 1)
        return seen.layers["<model>"]

    conv = nn.Conv2d(2, 3, 3, padding=1, stride=2)
    with torch.no_grad():
        conv.weight[conv.weight.abs() < 0.1] = 0
    xc = (torch.rand(4, 2, 7, 7) > 0.5).float()
    cc = ops(CountingSynapse(conv, spike_input=True, static_input=True), xc)
    cols = F.unfold(xc, 3, padding=1, stride=2)  # [B, 2*9, L]
    wmask = (conv.weight != 0).reshape(3, -1).float()
    brute = int(((cols != 0).float().transpose(1, 2) @ wmask.T).sum())
    assert cc.synaptic_ops == brute
    in_bounds = int((F.unfold(torch.ones(1, 2, 7, 7), 3, padding=1, stride=2) != 0).sum())  # padding has no synapses
    assert cc.dense_ops == 4 * in_bounds * 3

    xp = (torch.rand(2, 3, 6, 6) > 0.5).float()
    assert ops(CountingSynapse(nn.AvgPool2d(2), spike_input=True, static_input=True), xp).synaptic_ops == int((xp != 0).sum())

    xa = torch.ones(1, 1, 5, 7)
    # windows along H (5 -> 2): sizes 3, 3; along W (7 -> 3): 3, 3, 3 -> 2*3 outputs x 9 inputs each
    assert ops(CountingSynapse(nn.AdaptiveAvgPool2d((2, 3)), spike_input=True, static_input=True), xa).synaptic_ops == 6 * 9


def test_evaluate_over_time_matches_separate_runs(trained_digits_cnn, digits):
    data = digits.test.subset(60)
    snn = isp.convert(trained_digits_cnn, "rate", timesteps=8, calibration=digits.train.x[:128])
    rows = evaluate_over_time(snn, data, [2, 5, 8], batch_size=25)
    for r in rows:
        res = isp.simulate(snn, data.x, timesteps=r.timesteps)
        assert r.accuracy == pytest.approx(float((res.output.argmax(1) == data.y).float().mean()))
        assert r.spikes_per_sample == pytest.approx(res.spikes_per_sample)
    with pytest.raises(ValueError):
        evaluate_over_time(snn, data, [0])


def test_never_active_relu_gets_a_harmless_threshold():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(-1.0)
    with pytest.warns(UserWarning, match=r"never positive on the calibration data \('1'\)"):
        snn = isp.convert(model, "rate", timesteps=4, calibration=torch.randn(10, 3))
    assert snn.info["never_active_on_calibration"] == ["1"]
    x = torch.randn(5, 3)
    with torch.no_grad():
        assert torch.allclose(snn(x), model(x))


def test_counting_is_scoped_and_changes_no_output(trained_digits_cnn, digits):
    x = digits.test.x[:64]
    snn = isp.convert(trained_digits_cnn, "rate", timesteps=8, calibration=digits.train.x[:256])
    with torch.no_grad():
        plain = snn(x)
        with isp.counting(snn) as seen:
            counted = snn(x)
        with isp.counting(snn) as outer:
            snn(x)
            with isp.counting(snn) as inner:  # nested observers each see what happened in their block
                snn(x)
    assert torch.equal(plain, counted)
    assert seen.samples == 64 and seen.calls == 1 and seen.spikes > 0
    assert outer.samples == 128 and inner.samples == 64 and outer.spikes == 2 * inner.spikes == 2 * seen.spikes
    # no hook is left behind, and the modules keep no counters
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in snn.modules())
    assert not any(hasattr(m, "spikes") or hasattr(m, "samples") for m in snn.modules())
    assert isp.simulate(snn, x).layers == seen.layers
    assert isp.energy.estimate(snn, x, hardware="loihi").total_j > 0


def test_calibration_with_nan_is_refused_and_one_hot_pairs_are_read_as_inputs_and_targets():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(5, 10), nn.ReLU(), nn.Linear(10, 3)).eval()
    x = torch.randn(20, 5)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        isp.convert(ann, coding="rate", calibration=bad)
    one_hot = nn.functional.one_hot(torch.randint(0, 3, (20,)), 3).float()
    a = isp.convert(ann, coding="rate", calibration=(x, one_hot))
    b = isp.convert(ann, coding="rate", calibration=x)
    assert a.info["thresholds"] == b.info["thresholds"]
