"""A converted network is a drop-in replacement, or conversion refuses: forward hooks, extra forward
arguments, training mode, BatchNorm without affine parameters, casts before saving."""

import pytest
import torch
from torch import nn

import isospike as isp

CODINGS = ["rate", "ttfs", "mttfs", "sigma_delta"]


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3)).eval()


class WithOptions(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(10, 16), nn.Linear(16, 3)

    def forward(self, x, scale=2.0, mask=None):
        h = self.b(torch.relu(self.a(x))) * scale
        if mask is not None:
            h = h * mask
        return h


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(10, 3)

    def forward(self, x, y):
        return self.a(x) + y


@pytest.mark.parametrize("where", ["root", "relu", "linear"])
@pytest.mark.parametrize("kind", ["forward", "pre"])
def test_models_with_forward_hooks_are_refused_naming_the_module(where, kind):
    model = _mlp()
    target = {"root": model, "relu": model[1], "linear": model[0]}[where]
    if kind == "forward":
        target.register_forward_hook(lambda m, i, o: o * 10)
    else:
        target.register_forward_pre_hook(lambda m, i: None)
    path = {"root": "<model>", "relu": "1", "linear": "0"}[where]
    with pytest.raises(isp.UnsupportedLayerError, match=f"at '{path}'.*hook.*handle.remove"):
        isp.convert(model, coding="rate", calibration=torch.randn(32, 10), front="graph")


@pytest.mark.parametrize("coding", CODINGS)
def test_extra_forward_arguments_are_fixed_at_their_defaults_and_refused_at_call(coding, tmp_path):
    torch.manual_seed(0)
    model, x = WithOptions().eval(), torch.randn(64, 10)
    snn = isp.convert(model, coding=coding, calibration=x)
    ref = isp.equivalent(snn)
    assert torch.allclose(ref(x), snn(x), atol=1e-5)
    # the default scale (2.0) is in the network: the SNN follows model(x), not model(x, scale=1)
    err_default = (snn(x) - model(x)).abs().max()
    err_other = (snn(x) - model(x, scale=1.0)).abs().max()
    assert err_default < err_other
    with pytest.raises(TypeError, match="scale.*fixed at their defaults"):
        snn(x, scale=3.0)
    with pytest.raises(TypeError, match="positional"):
        snn(x, 2.0)
    again = isp.load(isp.save(snn, tmp_path / "snn.safetensors"))
    assert torch.equal(again(x), snn(x))


def test_forward_arguments_without_default_are_refused():
    with pytest.raises(isp.UnsupportedLayerError, match=r"more inputs than x \(y\)"):
        isp.convert(TwoInputs(), coding="rate", calibration=torch.randn(8, 10), front="graph")


@pytest.mark.parametrize("coding", CODINGS)
def test_training_mode_changes_nothing(coding):
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 16), nn.ReLU(),
                        nn.BatchNorm1d(16), nn.Linear(16, 3)).eval()
    ann[5].running_mean.uniform_(-1, 1)
    x = torch.randn(64, 10)
    snn = isp.convert(ann, coding=coding, calibration=x)
    assert not snn.training
    before = snn(x)
    nn.Sequential(snn).train()  # e.g. inside a larger model being trained
    assert snn.training
    assert torch.equal(snn(x), before) and torch.equal(snn(x), before)
    snn.eval()
    assert torch.equal(snn(x), before)


@pytest.mark.parametrize("affine", [False, True])
def test_linear_batchnorm_without_affine_parameters_folds(affine):
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16, affine=affine), nn.ReLU(), nn.Linear(16, 3))
    ann[1].running_mean.uniform_(-1, 1)
    ann[1].running_var.uniform_(0.5, 2.0)
    ann.eval()
    x = torch.randn(64, 10)
    snn = isp.convert(ann, coding="ttfs", timesteps=255, calibration=x)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in snn.modules())  # folded into the Linear
    assert (snn(x) - ann(x)).abs().max() < 0.05 * ann(x).abs().max()


@pytest.mark.parametrize("cast", [torch.float64, torch.float16])
def test_a_network_cast_after_conversion_saves_and_loads(cast, tmp_path):
    x = torch.randn(32, 10)
    snn = isp.convert(_mlp(), coding="rate", calibration=x).to(cast)
    again = isp.load(isp.save(snn, tmp_path / "snn.safetensors"))
    assert torch.equal(again(x.to(cast)), snn(x.to(cast)))
