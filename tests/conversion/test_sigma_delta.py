import copy

import pytest
import torch
from torch import nn

import isospike as isp
from isospike.conversion.sigma_delta import SigmaDeltaPopulation


def _quantized_reference(model: nn.Module, thresholds: dict[str, float]) -> nn.Module:
    """The ANN with every ReLU replaced by theta * round(ReLU(x) / theta)."""

    class Quant(nn.Module):
        def __init__(self, th):
            super().__init__()
            self.th = th

        def forward(self, x):
            return self.th * torch.round(torch.relu(x) / self.th)

    ref = copy.deepcopy(model).eval()
    for path, th in thresholds.items():
        parent, _, name = path.rpartition(".")
        setattr(ref.get_submodule(parent) if parent else ref, name, Quant(th))
    return ref


def _mlp():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 3)).eval()


def test_registered_and_equal_to_the_quantized_ann():
    assert "sigma_delta" in isp.codings()
    model = _mlp()
    x = torch.randn(64, 6)
    snn = isp.convert(model, coding="sigma_delta", calibration=x, levels=8)
    ref = _quantized_reference(model, snn.info["thresholds"])
    assert torch.equal(snn(x), ref(x))
    for (_, pop), th in zip(snn.neurons(), snn.info["thresholds"].values()):
        assert isinstance(pop, SigmaDeltaPopulation) and pop.threshold == th


def test_digits_cnn_matches_the_ann_and_counts_every_spike(trained_digits_cnn, digits):
    x = digits.test.x[:200]
    snn = isp.convert(trained_digits_cnn, coding="sigma_delta", calibration=digits.train.x[:256], levels=16)
    res = isp.simulate(snn, x)
    ann_pred = trained_digits_cnn(x).argmax(-1)
    assert (res.output.argmax(-1) == ann_pred).float().mean() >= 0.98
    neuron = [s for s in res.layers.values() if s.kind == "neuron"]
    assert res.spikes == sum(s.spikes for s in neuron) > 0


def test_static_input_spikes_once_and_holds_its_value():
    model = _mlp()
    x = torch.randn(16, 6)
    snn = isp.convert(model, coding="sigma_delta", calibration=x, levels=8)
    one = isp.simulate(snn, x, timesteps=1)
    many = isp.simulate(snn, x, timesteps=5)
    assert torch.equal(one.output, many.output) and one.spikes == many.spikes
    for stats in many.layers.values():
        if stats.kind == "neuron":
            assert stats.by_step[1:] == [0, 0, 0, 0]


def test_synaptic_events_are_spikes_times_fan_out():
    model = _mlp()
    x = torch.randn(8, 6)
    res = isp.simulate(isp.convert(model, coding="sigma_delta", calibration=x, levels=4), x, timesteps=3)
    names = list(res.layers)
    first_pop, second_syn = res.layers[names[1]], res.layers[names[2]]
    assert second_syn.kind == "ac"
    assert second_syn.synaptic_ops == first_pop.spikes * 9  # every hidden neuron reaches all 9 targets


def test_limited_spikes_per_step_converge_to_the_same_output():
    model = _mlp()
    x = torch.randn(32, 6)
    free = isp.convert(model, coding="sigma_delta", calibration=x, levels=8)
    capped = isp.convert(model, coding="sigma_delta", calibration=x, levels=8, max_spikes_per_step=1, timesteps=60)
    assert torch.equal(capped(x), free(x))
    early = isp.simulate(capped, x, timesteps=2)
    assert not torch.equal(early.output, free(x))  # still settling after 2 steps


def test_errors():
    model = _mlp()
    with pytest.raises(ValueError, match="calibration"):
        isp.convert(model, coding="sigma_delta")
    with pytest.raises(ValueError, match="levels"):
        isp.convert(model, coding="sigma_delta", calibration=torch.randn(4, 6), levels=0)
    with pytest.raises(isp.UnsupportedLayerError, match="Tanh"):
        isp.convert(nn.Sequential(nn.Linear(2, 2), nn.Tanh()), coding="sigma_delta", calibration=torch.randn(4, 2),
                    front="graph")
    with pytest.raises(ValueError, match="threshold"):
        SigmaDeltaPopulation(0.0, static_input=True)
