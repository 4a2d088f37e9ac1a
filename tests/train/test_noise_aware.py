import math

import pytest
import torch
from torch import nn

import isospike as isp
from isospike.conversion.rate_analysis import layer_gaps
from isospike.models import ResNet
from isospike.train import NoisyQCFS, fit_classifier, noise_aware, quantize_relus
from isospike.train.qcfs import floor_ste


def qcfs_formula(z, lam, L):
    return lam * torch.clamp(torch.floor(z * L / lam + 0.5) / L, 0, 1)


def test_sigma_zero_is_exactly_qcfs_in_train_and_eval():
    m = NoisyQCFS(levels=4, init_lambda=2.0, sigma=0.0)
    z = torch.linspace(-3, 5, 1001)
    for mode in (True, False):
        m.train(mode)
        assert torch.equal(m(z), qcfs_formula(z, torch.tensor(2.0), 4))


@pytest.mark.parametrize("kind", ["gaussian", "uniform"])
def test_noise_is_zero_mean_with_the_set_std_and_only_in_training(kind):
    torch.manual_seed(0)
    m = NoisyQCFS(levels=4, init_lambda=1.0, noise=kind, sigma=0.3)
    z = torch.rand(200_000)
    clean = qcfs_formula(z, torch.tensor(1.0), 4)
    with torch.no_grad():
        d = m.train()(z) - clean
    assert abs(float(d.mean())) < 0.005 and abs(float(d.std()) - 0.3) < 0.005
    assert torch.equal(m.eval()(z), clean)


def test_straight_through_gradients_reach_input_and_lambda():
    x = torch.tensor([0.3, 1.7], requires_grad=True)
    floor_ste(x).sum().backward()
    assert torch.equal(x.grad, torch.ones(2))
    m = NoisyQCFS(levels=4, init_lambda=2.0)
    z = torch.tensor([0.5, 1.0, 3.0], requires_grad=True)
    m(z).sum().backward()
    assert z.grad is not None and m.lam.grad is not None and m.lam.grad.abs() > 0


def test_single_layer_constant_input_with_T_equal_L_gives_the_qcfs_output_exactly():
    L = 4
    net = nn.Sequential(nn.Linear(1, 64, bias=False), NoisyQCFS(levels=L, init_lambda=1.0))
    with torch.no_grad():
        net[0].weight.copy_((torch.arange(64, dtype=torch.float32) - 16).reshape(64, 1) / 32)  # dyadic
    x = torch.tensor([[1.0], [0.5], [-0.25]])
    snn = isp.convert(net, "rate", timesteps=L)
    assert snn.info["trained_thresholds"] == ["1"]  # no calibration data needed
    assert torch.equal(snn(x), net.eval()(x))


def test_deep_snn_approaches_the_clipped_relu_network_as_T_grows():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 32), NoisyQCFS(4, 2.0), nn.Linear(32, 16), NoisyQCFS(4, 2.0), nn.Linear(16, 3)).eval()
    clipped = quantize_relus(nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 3)),
                             levels=1 << 20, init_lambda=2.0).eval()
    clipped.load_state_dict({k: v for k, v in net.state_dict().items()}, strict=False)
    for i in (1, 3):
        clipped[i].lam.data.copy_(net[i].lam.data)
    x = torch.randn(200, 8)
    snn = isp.convert(net, "rate", timesteps=8)
    with torch.no_grad():
        target = clipped(x)
    errs = [float((snn(x, timesteps=T) - target).abs().mean()) for T in (8, 64, 512)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.02


def test_quantize_relus_swaps_activations_and_pooling_on_a_copy():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 9, 2))
    q = quantize_relus(model, levels=8, init_lambda={"1": 3.0})
    assert isinstance(q[1], NoisyQCFS) and q[1].levels == 8 and q[1].spike_threshold == 3.0
    assert isinstance(q[2], nn.AvgPool2d) and isinstance(model[1], nn.ReLU) and isinstance(model[2], nn.MaxPool2d)
    with pytest.raises(ValueError, match="no nn.ReLU"):
        quantize_relus(nn.Linear(2, 2))
    with pytest.raises(ValueError):
        NoisyQCFS(levels=0)


def test_resnet_with_residual_blocks_converts_and_converges():
    torch.manual_seed(0)
    net = quantize_relus(ResNet(blocks=1, widths=(4, 8), in_channels=1, num_classes=3), levels=8, init_lambda=1.5).eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
    x = torch.rand(16, 1, 8, 8)
    snn = isp.convert(net, "rate", timesteps=8)
    assert len(dict(snn.neurons())) == 5  # stem + 2 per block
    with torch.no_grad():
        y = net(x)
    errs = [float((snn(x, timesteps=T) - y).abs().mean()) for T in (2, 32)]
    assert errs[1] < errs[0]


def test_layer_gaps_first_layer_is_exact_and_residual_in_range():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 20), NoisyQCFS(4, 1.0), nn.Linear(20, 10), NoisyQCFS(4, 1.0), nn.Linear(10, 2)).eval()
    snn = isp.convert(net, "rate", timesteps=4)
    gaps = layer_gaps(net, snn, torch.randn(100, 6), timesteps=4)
    first = gaps["1"]
    assert first.gap.abs().max() < 1e-6  # constant input, T = L: exactly the quantized value
    assert ((first.residual >= 0) & (first.residual < 1)).all() or (first.ann == 0).any()
    assert set(gaps) == {"1", "3"}


def _toy_data(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = (x.mean((1, 2, 3)) > 0).long() + 2 * (x[:, :, :4].mean((1, 2, 3)) > 0).long()
    return x, y


def test_noise_aware_recipe_history_sigma_and_checkpoint(tmp_path):
    from isospike.models import SmallCNN

    torch.manual_seed(0)
    ann = SmallCNN(input_size=8, num_classes=4)
    data = _toy_data()
    fit_classifier(ann, data, epochs=3, progress=False)
    out = noise_aware(ann, data, epochs=2, levels=4, progress=False, checkpoint_dir=tmp_path, batch_size=64)
    h = out.nq_history
    assert [e.epoch for e in h.epochs] == [0, 1]
    assert h.epochs[0].sigma["2"] == pytest.approx(0.0, abs=1e-6)  # first layer: constant input, exact
    assert all(s >= 0 for e in h.epochs for s in e.sigma.values())
    assert (tmp_path / "checkpoint.safetensors").is_file() and (tmp_path / "best.safetensors").is_file()
    assert not out.training and isinstance(out[2], NoisyQCFS) and isinstance(ann[2], nn.ReLU)
    with pytest.raises(ValueError, match="epochs"):
        noise_aware(ann, data, epochs=0)


def test_interrupted_training_resumes_to_the_same_result(tmp_path):
    from isospike.models import SmallCNN

    torch.manual_seed(1)
    ann = SmallCNN(input_size=8, num_classes=4)
    data = _toy_data(seed=1)
    kwargs = dict(epochs=3, levels=4, progress=False, batch_size=100, select="last")
    straight = noise_aware(ann, data, **kwargs)

    calls = {"n": 0}

    def interrupt_in_epoch_2(x, g):
        calls["n"] += 1
        if calls["n"] == 5:  # 3 batches per epoch: the 2nd batch of the 2nd epoch
            raise KeyboardInterrupt
        return x

    with pytest.raises(KeyboardInterrupt):
        noise_aware(ann, data, checkpoint_dir=tmp_path, augment=interrupt_in_epoch_2, **kwargs)
    resumed = noise_aware(ann, data, checkpoint_dir=tmp_path, augment=lambda x, g: x, **kwargs)
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


def test_recipes_take_a_dataloader_and_name_bad_targets_and_dtypes():
    from torch.utils.data import DataLoader, TensorDataset

    from isospike.errors import UnsupportedLayerError

    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(5, 10), nn.ReLU(), nn.Linear(10, 3))
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    kw = dict(epochs=1, progress=False, validation=(x[:16], y[:16]))
    from_pair = isp.train.noise_aware(ann, (x, y), **kw)
    from_loader = isp.train.noise_aware(ann, DataLoader(TensorDataset(x, y), batch_size=16), **kw)
    for a, b in zip(from_pair.state_dict().values(), from_loader.state_dict().values()):
        assert torch.equal(a, b)  # same data, same seed: the same model
    with pytest.raises(TypeError, match="one-hot"):
        isp.train.noise_aware(ann, (x, nn.functional.one_hot(y, 3).float()), **kw)
    with pytest.raises(TypeError, match="float64 but the model's parameters are torch.float32"):
        isp.train.noise_aware(ann, (x.double(), y), **kw)
    with pytest.raises(UnsupportedLayerError, match="LeakyReLU at '1'"):
        isp.train.noise_aware(nn.Sequential(nn.Linear(5, 5), nn.LeakyReLU(), nn.Linear(5, 3)), (x, y), **kw)
