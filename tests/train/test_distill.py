"""One distillation recipe for any model (isospike.train.distill): a site-coded student learns its
float teacher through its spiking forward pass (straight-through backward), on dict batches."""

import warnings

import pytest
import torch

import isospike as isp
from isospike.train.distill import distill

transformers = pytest.importorskip("transformers")


def teacher():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)  # sharper outputs: a coarse student is far from them
    return model


def batches(n: int = 6):
    g = torch.Generator().manual_seed(0)
    return [{"input_ids": torch.randint(3, 64, (8, 16), generator=g),
             "attention_mask": torch.ones(8, 16, dtype=torch.long)} for _ in range(n)]


def kl(student, model, batch) -> float:
    with torch.no_grad():
        t = torch.log_softmax(model(**batch).logits, -1)
        s = torch.log_softmax(student(**batch).logits, -1)
    return float((t.exp() * (t - s)).sum(-1).mean())


def test_a_site_coded_llm_learns_its_teacher_through_its_spiking_forward():
    model, data = teacher(), batches()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        student = isp.convert(model, coding="ttfs", timesteps=1, calibration=data[:2])
        before = kl(student, model, data[0])
        losses = distill(student, model, data, epochs=3, lr=3e-3, progress=False)
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert kl(student, model, data[0]) < 0.9 * before
    with torch.no_grad():  # still a QNN-equal network
        assert torch.equal(student(**data[0]).logits, isp.equivalent(student)(**data[0]).logits)


def test_max_steps_and_device_noise_are_honoured():
    model, data = teacher(), batches(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = isp.convert(model, coding="ttfs", calibration=data[:2])
        with pytest.raises(ValueError, match="synapse devices"):
            distill(plain, model, data, epochs=1, progress=False, noise=isp.devices.DeviceVariation(0.1))
        device = isp.devices.OptoelectronicSynapse.in2o3()
        optical = isp.convert(model, coding="ttfs", calibration=data[:2], synapse=device)
        losses = distill(optical, model, data, epochs=2, lr=1e-4, progress=False, max_steps=3,
                         noise=isp.devices.DeviceVariation(0.1))
    assert len(losses) == 1  # three steps: all in the first epoch
    assert all(m.device.variation is None for m in optical.sites().values())  # the nominal devices afterwards
