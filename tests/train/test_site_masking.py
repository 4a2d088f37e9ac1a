"""mask_sites: M-TTFS chosen after the fact on a site-coded TTFS network."""

import pytest
import torch

import isospike as isp
from isospike.train import mask_sites

transformers = pytest.importorskip("transformers")


def _llama():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    return transformers.LlamaForCausalLM(cfg).eval()


def _inputs(batch: int = 4, length: int = 10):
    g = torch.Generator().manual_seed(1)
    return {"input_ids": torch.randint(0, 64, (batch, length), generator=g),
            "attention_mask": torch.ones(batch, length, dtype=torch.int64)}


@pytest.mark.parametrize("split", [False, True])
def test_mode_masking_is_lossless_and_matches_the_mttfs_conversion(split):
    model, x = _llama(), _inputs()
    extra = {"channel_scales": True, "channel_split": 90.0} if split else {}
    snn = isp.convert(model, coding="ttfs", calibration=x, front="sites", **extra)
    with torch.no_grad():
        before = snn(**x).logits
    spikes_before = isp.simulate(snn, x).spikes
    levels = mask_sites(snn, x)
    assert set(levels) >= set(snn.sites())
    with torch.no_grad():
        assert torch.equal(snn(**x).logits, before)  # silence moved to the most frequent level: no value changes
        assert torch.equal(isp.equivalent(snn)(**x).logits, before)
    assert isp.simulate(snn, x).spikes <= spikes_before
    # the first site sees the same activation in the float model and the SNN: the level M-TTFS conversion chose
    mttfs = isp.convert(model, coding="mttfs", calibration=x, front="sites", **extra)
    first = "model.layers.0.self_attn.q_proj"
    site = mttfs.sites()[first]
    assert levels[first] == int((site.population if split else site).silent_level)
    spikes_masked = isp.simulate(snn, x).spikes
    mask_sites(snn, x, dead_zone=1)  # lossy: fewer spikes, still equal to its QNN
    with torch.no_grad():
        assert not torch.equal(snn(**x).logits, before)
        assert torch.equal(isp.equivalent(snn)(**x).logits, snn(**x).logits)
    assert isp.simulate(snn, x).spikes < spikes_masked
    assert all(p.dead_zone == 1 for p in (m.population if hasattr(m, "population") else m for m in snn.sites().values()))


def test_rules_and_refusals(tmp_path):
    model, x = _llama(), _inputs()
    snn = isp.convert(model, coding="ttfs", calibration=x, front="sites")
    lowest = mask_sites(snn, silence="lowest")
    signed = [m for m in snn.sites().values() if m.signed]
    assert signed and all(int(m.silent_level) == -m.window for m in signed) and min(lowest.values()) == -snn.timesteps
    mask_sites(snn, x, dead_zone=2, dead_zone_sites=lambda name: "mlp" in name)
    assert {m.dead_zone for n, m in snn.sites().items() if "mlp" in n} == {2}
    assert {m.dead_zone for n, m in snn.sites().items() if "mlp" not in n} == {0}
    path = isp.save(snn, tmp_path / "masked.safetensors")  # the chosen levels and dead zones are kept
    with torch.no_grad():
        assert torch.equal(isp.load(path)(**x).logits, snn(**x).logits)
    with pytest.raises(ValueError, match="calibration"):
        mask_sites(snn)
    with pytest.raises(ValueError, match="dead_zone"):
        mask_sites(snn, x, dead_zone=-1)
    with pytest.raises(ValueError, match="isp.equivalent"):
        mask_sites(isp.equivalent(snn), x)
    with pytest.raises(TypeError, match="coding='ttfs'"):
        mask_sites(isp.convert(model, coding="rate", calibration=x, front="sites"), x)


def test_distilling_with_the_dead_zone_on_then_choosing_again():
    """The Matterhorn recipe of benchmarks/mttfs.py on any model: dead zone on, distill (spiking
    forward, straight-through backward: the masked populations train), choose the silent levels
    again for the moved weights; the result still equals its QNN and the distillation lowered
    the loss against the float teacher."""
    from isospike.train import distill

    model, x = _llama(), _inputs(batch=8)
    snn = isp.convert(model, coding="ttfs", calibration=x, front="sites")
    mask_sites(snn, x, dead_zone=1)
    weight = snn.model.layers[0].mlp.up_proj.weight.detach().clone()
    losses = distill(snn, model, [x] * 6, epochs=3, lr=1e-3, batch_size=8, progress=False)
    assert losses[-1] < losses[0]
    assert not torch.equal(snn.model.layers[0].mlp.up_proj.weight, weight)  # the weights learned
    assert all(p.dead_zone == 1 for p in snn.sites().values())  # training kept the masked populations
    mask_sites(snn, x, dead_zone=1)
    with torch.no_grad():
        assert torch.equal(isp.equivalent(snn)(**x).logits, snn(**x).logits)
