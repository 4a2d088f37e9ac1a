"""Every coding on architectures written in the ways users write them: functional activations and
pooling, BatchNorm, Dropout, ``x.view(x.size(0), -1)``, 1-D convolutions, residual adds.

Each converted network must match its own equivalent (the certificate), survive save/load and an
NIR round trip unchanged, and report energy."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import isospike as isp

nir = pytest.importorskip("nir")

CODINGS = ["rate", "ttfs", "mttfs", "sigma_delta"]


class FunctionalBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        x = F.avg_pool2d(x, 2)
        return self.fc(x.view(x.size(0), -1))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 6, 3, padding=1)
        self.a = nn.Conv2d(6, 6, 3, padding=1)
        self.b = nn.Conv2d(6, 6, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(24, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        h = torch.relu(h + self.b(torch.relu(self.a(h))))
        return self.fc(torch.flatten(self.pool(h), 1))


class GlobalMean(nn.Module):
    """Global average pooling written as x.mean((2, 3)), a reshape by x.shape[0], a subtraction."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        h = torch.relu(self.conv2(h) - 0.1 * h)
        g = h.mean((2, 3))
        return self.fc(g.reshape(g.shape[0], -1))


class TokenLinear(nn.Module):
    """A Linear over the last axis of [batch, tokens, features], then layout changes and sums."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(5, 4)
        self.out = nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.proj(x)).transpose(1, 2)
        h = h.permute(0, 2, 1).sum(-1, keepdim=True).squeeze(-1)
        return self.out(torch.cat([h, h * 2, -h, h.sub(1)], 1))


def mlp_with_dropout() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(20, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 16), nn.ReLU(),
                         nn.Linear(16, 4))


MODELS = {
    "mlp-dropout": (mlp_with_dropout, (4, 5)),
    "functional-bn-view": (FunctionalBN, (3, 8, 8)),
    "residual": (Residual, (2, 8, 8)),
    "global-mean": (GlobalMean, (2, 8, 8)),
    "token-linear": (TokenLinear, (3, 5)),
}


NIR_EXPRESSIBLE = {"mlp-dropout", "functional-bn-view", "residual"}


def _randomize_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("arch", list(MODELS))
def test_coding_on_architecture(tmp_path, arch, coding):
    torch.manual_seed(0)
    build, shape = MODELS[arch]
    ann = build().eval()
    _randomize_bn(ann)
    x = torch.randn(24, *shape)
    snn = isp.convert(ann, coding=coding, calibration=x)
    out = snn(x)
    assert out.shape == ann(x).shape and torch.isfinite(out).all()
    # the batch size is not baked in: one sample alone gives its row of the batch
    assert torch.allclose(snn(x[3:4]), out[3:4], atol=1e-5)

    cert = isp.verify(snn, x[:8])
    if coding != "rate":  # rate is only bounded, the others are equal to their quantized network
        assert cert.holds, cert.table()

    isp.save(snn, tmp_path / "m.safetensors")
    assert torch.equal(isp.load(tmp_path / "m.safetensors")(x), out)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if arch in NIR_EXPRESSIBLE:
            isp.nir.export(snn, tmp_path / "m.nir")
            again = isp.nir.load(tmp_path / "m.nir")
            assert not again.training
            assert torch.allclose(again(x), out, atol=1e-4)
        else:  # products by constants, means, permutes: NIR 1.0 has no node for them
            with pytest.raises(TypeError, match="NIR has no node for the operation"):
                isp.nir.export(snn, tmp_path / "m.nir")

    report = isp.energy.estimate(snn, x[:4], hardware="loihi")
    assert report.total_j > 0


@pytest.mark.parametrize("coding", CODINGS)
def test_edge_inputs(coding):
    torch.manual_seed(1)
    ann = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    x = torch.randn(32, 1, 8, 8)
    # a one-shot generator of batches is accepted as calibration (it is read more than once)
    snn = isp.convert(ann, coding=coding, calibration=(b for b in x.split(8)))
    reference = isp.convert(ann, coding=coding, calibration=x)
    assert torch.equal(snn(x), reference(x))
    empty = isp.simulate(snn, x[:0])
    assert empty.output.shape == (0, 3) and empty.spikes == 0
    with pytest.raises(TypeError, match="float64.*x.to"):
        snn(x.double())
    with pytest.raises(TypeError, match="uint8.*float"):
        snn(x.to(torch.uint8))
    with pytest.raises(ValueError, match=r"shape \(32, 8, 8\)"):
        snn(x[:, 0])


@pytest.mark.parametrize("coding", CODINGS)
def test_bad_inputs_and_calibration_name_the_fix(coding):
    torch.manual_seed(2)
    ann = nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    x = torch.randn(16, 20)
    with pytest.raises(ValueError, match=r"calibration batch of shape \(8, 21\)"):
        isp.convert(ann, coding=coding, calibration=torch.randn(8, 21))
    with pytest.raises(TypeError, match="int64.*float"):
        isp.convert(ann, coding=coding, calibration=torch.ones(8, 20, dtype=torch.long))
    with pytest.raises(TypeError, match="float64.*x.to"):
        isp.convert(ann, coding=coding, calibration=x.double())
    snn = isp.convert(ann, coding=coding, calibration=x)
    with pytest.raises(ValueError, match="no batch dimension.*unsqueeze"):
        snn(x[0])
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN/inf"):
        snn(bad)
    with pytest.raises(ValueError, match="at least one input sample"):
        isp.energy.estimate(snn, x[:0])


class SharedModules(nn.Module):
    """One ReLU object at two places and one Linear applied twice (shared weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(20, 20)
        self.shared = nn.Linear(20, 20)
        self.act = nn.ReLU()
        self.out = nn.Linear(20, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.a(x))
        h = self.act(self.shared(h))
        return self.out(self.act(self.shared(h)))


@pytest.mark.parametrize("coding", CODINGS)
def test_reused_modules_get_one_population_per_call(coding):
    torch.manual_seed(3)
    ann = SharedModules().eval()
    x = torch.randn(32, 20)
    kwargs = dict(timesteps=64) if coding == "rate" else {}
    snn = isp.convert(ann, coding=coding, calibration=torch.randn(64, 20), **kwargs)
    y = snn(x)
    assert y.shape == (32, 3)
    assert (y - ann(x)).abs().max() < 0.15 * ann(x).abs().max()
    populations = [name for name, _ in snn.neurons()]
    assert len(populations) == 3  # the one ReLU object serves three call sites
    if coding != "rate":
        assert isp.verify(snn, x).holds


def test_nir_keeps_output_spike_values_and_grouped_convolutions(tmp_path):
    torch.manual_seed(4)
    relu_out = nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 2), nn.ReLU()).eval()
    grouped = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=4), nn.ReLU(), nn.Flatten(),
                            nn.Linear(64, 3)).eval()
    for ann, x in ((relu_out, torch.randn(16, 20)), (grouped, torch.randn(8, 3, 8, 8))):
        for coding in CODINGS:
            snn = isp.convert(ann, coding=coding, calibration=x)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                isp.nir.export(snn, tmp_path / "m.nir")
            assert torch.allclose(isp.nir.load(tmp_path / "m.nir")(x), snn(x), atol=1e-5)
