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


def mlp_with_dropout() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(20, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 16), nn.ReLU(),
                         nn.Linear(16, 4))


MODELS = {
    "mlp-dropout": (mlp_with_dropout, (4, 5)),
    "functional-bn-view": (FunctionalBN, (3, 8, 8)),
    "residual": (Residual, (2, 8, 8)),
}


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
        isp.nir.export(snn, tmp_path / "m.nir")
    again = isp.nir.load(tmp_path / "m.nir")
    assert not again.training
    assert torch.allclose(again(x), out, atol=1e-4)

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
