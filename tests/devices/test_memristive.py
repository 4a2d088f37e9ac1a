import pytest
import torch
from torch import nn

import isospike as isp
from isospike.devices import MemristiveCrossbar
from isospike.devices.memristive import CrossbarLinear


def test_programmed_conductances_are_levels_in_range():
    xbar = MemristiveCrossbar(levels=5, g_min_us=2.0, g_max_us=10.0)
    w = torch.tensor([[-1.0, -0.5, 0.0, 0.26, 1.0]])
    g_pos, g_neg, per_us = xbar.program(w)
    step = 2.0
    for g in (g_pos, g_neg):
        assert bool(((g >= 2.0) & (g <= 10.0)).all())
        assert torch.allclose((g - 2.0) / step, torch.round((g - 2.0) / step))
    assert bool(((g_pos == 2.0) | (g_neg == 2.0)).all())  # one device of each pair at g_min
    eff = xbar.effective_weight(w)
    assert torch.allclose(eff, torch.tensor([[-1.0, -0.5, 0.0, 0.25, 1.0]]))
    assert per_us == pytest.approx(1.0 / 8.0)


def test_variation_is_seeded_and_bounded():
    w = torch.randn(64, 64)
    a = MemristiveCrossbar(levels=16, variation=0.05, seed=1).effective_weight(w)
    b = MemristiveCrossbar(levels=16, variation=0.05, seed=1).effective_weight(w)
    c = MemristiveCrossbar(levels=16, variation=0.05, seed=2).effective_weight(w)
    ideal = MemristiveCrossbar(levels=16).effective_weight(w)
    assert torch.equal(a, b) and not torch.equal(a, c)
    rel = ((a - ideal).std() / w.abs().max()).item()
    assert 0.02 < rel < 0.1  # two devices, 5% of the range each


def test_many_levels_and_fine_adc_approach_the_digital_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    x = torch.randn(200, 10)
    coarse = MemristiveCrossbar(levels=4, adc_bits=4).place(net, calibration=x)
    fine = MemristiveCrossbar(levels=1024, adc_bits=16, adc_percentile=100.0).place(net, calibration=x)
    err_fine = (fine(x) - net(x)).abs().max().item()
    err_coarse = (coarse(x) - net(x)).abs().max().item()
    assert err_fine < 0.01 < err_coarse
    assert all(isinstance(m, CrossbarLinear) for m in (fine[0], fine[2]))


def test_adc_quantizes_column_outputs_to_its_bits():
    torch.manual_seed(0)
    lin = nn.Linear(8, 3, bias=False)
    x = torch.randn(500, 8)
    placed = MemristiveCrossbar(levels=256, adc_bits=3, adc_percentile=100.0).place(nn.Sequential(lin), calibration=x)
    y = placed(x)
    assert len(torch.unique(y)) <= 2 ** 3


def test_place_on_a_converted_snn_keeps_counts_and_prices_the_crossbar():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.randn(64, 6)
    snn = isp.convert(net, coding="mttfs", timesteps=15, calibration=x)
    xbar = MemristiveCrossbar(levels=64, adc_bits=10)
    placed = xbar.place(snn, calibration=x)
    assert (placed(x).argmax(-1) == snn(x).argmax(-1)).float().mean() > 0.9
    a, b = isp.simulate(snn, x), isp.simulate(placed, x)
    assert a.spikes == b.spikes
    rep = isp.energy.estimate(placed, x, hardware=isp.energy.crossbar_hardware(xbar))
    assert rep.total_j > 0 and rep.hardware.crossbar_cell_pj == xbar.cell_read_pj
    # analog integration on the bit lines: the only difference is the membranes' SRAM traffic
    sram = isp.energy.estimate(placed, x, hardware=isp.energy.crossbar_hardware(xbar, analog_integration=False))
    neurons = [r for r in sram.layers if r.kind == "neuron"]
    state_bytes = {r.name: 16 * 32 / 8 if r.name == "1" else 3 * 32 / 8 for r in neurons}
    from isospike.energy.hardware import sram_pj_per_bit

    membranes = sum(2 * r.neuron_updates * 32 * sram_pj_per_bit(state_bytes[r.name]) for r in neurons) * 1e-12
    assert sram.total_j - rep.total_j == pytest.approx(membranes, rel=1e-6)
    assert sram.by_category["compute"] == pytest.approx(rep.by_category["compute"])


def test_errors():
    with pytest.raises(ValueError, match="levels"):
        MemristiveCrossbar(levels=1)
    with pytest.raises(ValueError, match="g_min"):
        MemristiveCrossbar(g_min_us=5.0, g_max_us=1.0)
    with pytest.raises(ValueError, match="calibration"):
        MemristiveCrossbar().place(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="no Linear"):
        MemristiveCrossbar(adc_bits=None).place(nn.Sequential(nn.ReLU()))


def test_crossbar_linear_over_token_sequences_adds_its_bias_per_output():
    torch.manual_seed(0)
    layer = nn.Linear(5, 4)
    x = torch.randn(3, 7, 5)  # [batch, tokens, features], as in a transformer
    placed = isp.devices.MemristiveCrossbar(levels=4096, adc_bits=None).place(layer, calibration=lambda m: [m(x)])
    assert isinstance(placed, isp.devices.memristive.CrossbarLayer)  # a bare layer is itself replaced
    assert placed(x).shape == (3, 7, 4)
    assert torch.allclose(placed(x), layer(x), atol=1e-2)


def test_place_on_a_site_coded_transformer_keeps_its_sites_and_counts():
    """A decoder converted by the site front end: the layers put on crossbars stay the sites they
    were (same names, same populations); a fine crossbar reproduces the SNN's logits closely and
    the spikes are those of the SNN."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    cfg._attn_implementation = "eager"
    model = transformers.LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 64, (3, 9), generator=torch.Generator().manual_seed(1))
    snn = isp.convert(model, coding="mttfs", timesteps=15, calibration={"input_ids": ids}, front="sites")
    xbar = MemristiveCrossbar(levels=4096, adc_bits=16, adc_percentile=100.0)
    placed = xbar.place(snn, calibration=lambda m: m(input_ids=ids))
    assert sum(isinstance(m, CrossbarLinear) for m in placed.modules()) == 2 * 7 + 1  # q k v o gate up down, head
    with torch.no_grad():
        a, b = snn(input_ids=ids).logits, placed(input_ids=ids).logits
    assert type(placed) is type(snn)
    # a fine crossbar moves a few values across a level boundary (one level each); most logits stay put
    assert (a - b).abs().mean() < 0.01 * a.abs().mean()
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.9
    s, p = isp.simulate(snn, {"input_ids": ids}), isp.simulate(placed, {"input_ids": ids})
    assert p.spikes == pytest.approx(s.spikes, rel=0.02)
    rep = isp.energy.estimate(placed, {"input_ids": ids}, hardware=isp.energy.crossbar_hardware(xbar))
    assert rep.total_j > 0
