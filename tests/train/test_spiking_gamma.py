import pytest
import torch

from isospike.data.sequences import frames_to_steps, rows_as_frames, steps_per_frame
from isospike.models.lif_sequence import LIFSequenceNet
from isospike.models.spiking_gamma import SpikingGammaNet
from isospike.train.gamma import evaluate_sequences, gradient_alignment, spiking_gamma


def test_rows_become_frames_held_for_their_duration():
    img = torch.arange(2 * 1 * 3 * 4, dtype=torch.float32).reshape(2, 1, 3, 4)
    frames = rows_as_frames(img)
    assert frames.shape == (2, 3, 4) and torch.equal(frames[1, 2], img[1, 0, 2])
    steps = frames_to_steps(frames, frame_ms=2.0, dt_ms=0.5)
    assert steps.shape == (12, 2, 4) and torch.equal(steps[4:8, 1], frames[1, 1].expand(4, 4))
    with pytest.raises(ValueError, match="divide"):
        steps_per_frame(2.0, 0.3)


@pytest.mark.parametrize("targets", ["labels", "waveform"])
def test_online_gradient_equals_bptt_for_a_single_layer(targets):
    # with no hidden layer the eligibility traces make the online gradient exact
    torch.manual_seed(0)
    net = SpikingGammaNet(5, [], 3, K=4, theta=0.05)
    x = torch.rand(16, 6, 5)
    y = torch.randint(0, 3, (16,)) if targets == "labels" else torch.rand(16, 6, 3)
    cos = gradient_alignment(net, (x, y), frame_ms=2.0, dt_ms=0.5)
    assert set(cos) == {"layers.0.weight", "layers.0.bias", "layers.0.v", "layers.0.log_tau"}
    for name, c in cos.items():
        assert c == pytest.approx(1.0, abs=1e-5), name


def test_online_gradient_is_aligned_with_bptt_for_hidden_layers():
    torch.manual_seed(0)
    net = SpikingGammaNet(5, [8], 3, K=4)
    cos = gradient_alignment(net, (torch.rand(16, 6, 5), torch.randint(0, 3, (16,))), frame_ms=2.0, dt_ms=0.5)
    assert min(cos.values()) > 0.9 and cos["layers.1.weight"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_training_on_digit_rows_learns(digits, mode):
    torch.manual_seed(0)
    train = (rows_as_frames(digits.train.x[:400]), digits.train.y[:400])
    test = (rows_as_frames(digits.test.x[:200]), digits.test.y[:200])
    net = SpikingGammaNet(8, [32], 10, K=3)
    before = evaluate_sequences(net, test, frame_ms=2.0, dt_ms=1.0)["accuracy"]
    spiking_gamma(net, train, epochs=5, mode=mode, frame_ms=2.0, dt_ms=1.0, lr=0.03, batch_size=32, progress=False)
    after = evaluate_sequences(net, test, frame_ms=2.0, dt_ms=1.0)
    assert after["accuracy"] > max(0.5, before + 0.3)
    assert after["spikes_per_second"] > 0 and set(after["spikes_per_second_by_population"]) == {"input", "hidden1"}
    assert len(net.history.epochs) == 5 and net.history.epochs[-1].loss < net.history.epochs[0].loss


def test_learning_a_delayed_waveform_online():
    torch.manual_seed(0)
    dt, delay = 0.5, 3.0
    x = (torch.rand(64, 40, 1) < 0.15).float()
    shift = int(delay / dt)
    y = torch.cat([torch.zeros(64, shift, 1), x[:, :-shift]], 1)
    net = SpikingGammaNet(1, [], 1, K=6, tau_ms=(0.5, 0.5), theta=0.05)
    with torch.no_grad():
        loss0 = torch.nn.functional.mse_loss(net(frames_to_steps(x, dt, dt), dt), frames_to_steps(y, dt, dt))
    spiking_gamma(net, (x, y), epochs=15, mode="online", frame_ms=dt, dt_ms=dt, lr=0.05, batch_size=16, progress=False)
    assert net.history.epochs[-1].loss < 0.6 * float(loss0)


def test_lif_baseline_trains_with_its_surrogate_gradient(digits):
    torch.manual_seed(0)
    net = LIFSequenceNet(8, [32], 10)
    train = (rows_as_frames(digits.train.x[:300]), digits.train.y[:300])
    spiking_gamma(net, train, epochs=3, frame_ms=2.0, dt_ms=1.0, progress=False)
    assert all(p.grad is not None for p in net.fcs.parameters())
    assert net.history.epochs[-1].loss < net.history.epochs[0].loss
    run = net.run(frames_to_steps(train[0][:8], 2.0, 1.0), 1.0)
    assert run.outputs.shape == (16, 8, 10) and run.spikes["hidden1"] > 0


def test_bad_training_arguments():
    net = SpikingGammaNet(2, [3], 2)
    x, y = torch.rand(4, 3, 2), torch.randint(0, 2, (4,))
    with pytest.raises(ValueError, match="mode"):
        spiking_gamma(net, (x, y), mode="bptt")
    with pytest.raises(TypeError, match="online"):
        spiking_gamma(LIFSequenceNet(2, [3], 2), (x, y), mode="online")
    with pytest.raises(ValueError, match="frames"):
        spiking_gamma(net, (x[:, 0], y))
    with pytest.raises(ValueError, match="divide"):
        spiking_gamma(net, (x, y), frame_ms=1.0, dt_ms=0.3)
    with pytest.raises(ValueError, match="waveform"):
        spiking_gamma(net, (x, torch.rand(4, 2, 2)))
