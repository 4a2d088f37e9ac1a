"""Operations between layers either keep samples apart (and then convert under every coding,
time folded or not) or are refused with the fix -- never a silently mixed batch."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import isospike as isp

TIME_CODINGS = ["rate", "sigma_delta"]  # the codings that fold time into the batch


class Glue(nn.Module):
    """Linear -> ReLU -> glue -> Linear, the glue given as a function of (module, hidden)."""

    def __init__(self, glue, width: int = 7, out_in: int = 7) -> None:
        super().__init__()
        self.l1, self.l2, self.glue = nn.Linear(5, width), nn.Linear(out_in, 3), glue

    def forward(self, x):
        return self.l2(self.glue(self, F.relu(self.l1(x))))


@pytest.mark.parametrize("coding", TIME_CODINGS + ["ttfs"])
@pytest.mark.parametrize("glue,fix", [
    (lambda m, h: torch.cat([h, h], 0), "dim=1"),
    (lambda m, h: h.flatten().reshape(-1, 7), "flatten"),
    (lambda m, h: h.unsqueeze(0).squeeze(0), "unsqueeze a later"),
    (lambda m, h: h.view(2, -1).reshape(-1, 7), "keep dimension 0 the batch"),
], ids=["cat0", "flatten-all", "unsqueeze0", "view-2"])
def test_batch_mixing_glue_is_refused_with_the_fix(coding, glue, fix):
    x = torch.randn(10, 5)
    with pytest.raises(isp.UnsupportedLayerError, match=fix):
        isp.convert(Glue(glue).eval(), coding=coding, timesteps=4 if coding != "ttfs" else 7, calibration=x, front="graph")


class Tokens(nn.Module):
    """[B, tokens, F] merged to [B * tokens, F] by the input's own sizes, and back."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(5, 7), nn.Linear(7, 3)
        self.bias = nn.Parameter(torch.randn(7))

    def forward(self, x):
        b, t, _ = x.shape
        h = F.relu(self.l1(x)).reshape(b * t, 7) + self.bias  # a parameter added to spikes' values
        return F.relu(self.l2(h)).reshape(b, t, 3)[..., :2]


@pytest.mark.parametrize("coding", TIME_CODINGS + ["ttfs", "mttfs"])
def test_token_merges_parameters_and_trailing_slices_convert_per_sample(coding):
    torch.manual_seed(0)
    x = torch.randn(12, 4, 5)
    ann = Tokens().eval()
    snn = isp.convert(ann, coding=coding, timesteps=6 if coding in TIME_CODINGS else 15, calibration=x)
    y = snn(x)
    assert y.shape == ann(x).shape == (12, 4, 2)
    assert torch.allclose(snn(x[3:5]), y[3:5], atol=1e-5)  # each sample on its own
    cert = isp.verify(snn, x)  # each coding's guarantee on the merged rows
    # rate: the layer driven by the input is exact; spike-driven ones carry a bounded error
    assert cert.layers[0].holds if coding == "rate" else cert.holds
    res = isp.simulate(snn, x)
    relus = {n: s for n, s in res.layers.items() if s.kind == "neuron"}
    assert [s.neurons for s in relus.values()] == [4 * 7, 4 * 3]  # per input sample, not per row
    assert all(s.samples == 12 for s in res.layers.values())


def test_simulated_steps_label_every_layer():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(5, 10), nn.ReLU(), nn.Linear(10, 3)).eval()
    x = torch.randn(10, 5)
    snn = isp.convert(ann, coding="rate", timesteps=4, calibration=x)
    res = isp.simulate(snn, x, timesteps=16)
    assert res.timesteps == 16
    assert {s.timesteps for s in res.layers.values() if s.kind == "neuron"} == {16}
    assert {s.timesteps for s in isp.simulate(snn, x).layers.values() if s.kind == "neuron"} == {4}


class Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 5)

    def forward(self, x):
        return F.gelu(self.lin(x))


def test_functional_ops_in_nested_modules_are_named_by_their_module_path():
    model = nn.Sequential(nn.Linear(5, 5), nn.Sequential(Inner())).eval()
    with pytest.raises(isp.UnsupportedLayerError, match=r"gelu at '1\.0 \(gelu\)'"):
        isp.convert(model, coding="rate", calibration=torch.randn(4, 5), front="graph")


class InplaceAlias(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.act, self.l2 = nn.Linear(5, 6), nn.ReLU(inplace=True), nn.Linear(6, 3)

    def forward(self, x):
        y = self.l1(x)
        return self.l2(y + self.act(y))  # torch: y is overwritten, so this is 2 * relu(y)


@pytest.mark.parametrize("coding", ["rate", "ttfs"])
def test_inplace_activations_overwrite_their_input_as_in_torch(coding):
    torch.manual_seed(0)
    x = torch.randn(16, 5)
    ann = InplaceAlias().eval()
    snn = isp.convert(ann, coding=coding, timesteps=64 if coding == "rate" else 63, calibration=x)
    with torch.no_grad():
        expected = ann.l2(2 * F.relu(ann.l1(x)))
        wrong = ann.l2(ann.l1(x) + F.relu(ann.l1(x)))
    err = (snn(x) - expected).abs().max()
    assert err < 0.1 < (wrong - expected).abs().max()
