import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import isospike as isp
import isospike.energy as E
from isospike.energy.activity import ann_activity
from isospike.energy.hardware import PRESETS, mesh_hops, placement, sram_pj_per_bit
from isospike.models import SmallCNN
from isospike.train import quantize_relus


def sparse_cnn(seed=0):
    torch.manual_seed(seed)
    m = SmallCNN(input_size=8).eval()
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1:
                p[p.abs() < 0.05] = 0  # some zero weights: effective < dense
    return m


def neurobench_synops(net, x):
    pytest.importorskip("neurobench")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import TorchModel

    loader = DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=len(x))
    return Benchmark(TorchModel(net), loader, [], [], [[], [SynapticOperations]]).run()["SynapticOperations"]


def test_ann_counts_equal_neurobench():
    m = sparse_cnn()
    x = torch.rand(16, 1, 8, 8) * (torch.rand(16, 1, 8, 8) > 0.3)
    nb = neurobench_synops(m, x)
    ours = ann_activity(m, x)
    conn = [a for a in ours.layers if a.name in ("0", "3", "8", "10")]  # Linear/Conv: NeuroBench's connection layers
    assert sum(a.macs for a in conn) == pytest.approx(nb["Effective_MACs"])
    assert sum(a.dense_ops for a in conn) == pytest.approx(nb["Dense"])
    assert nb["Effective_ACs"] == 0


def test_spiking_counts_equal_neurobench():
    # thresholds of 1 make the spikes 0/1 tensors, which NeuroBench recognises as spikes
    m = quantize_relus(sparse_cnn(1), levels=4, init_lambda=1.0).eval()
    x = torch.rand(8, 1, 8, 8)
    snn = isp.convert(m, "rate", timesteps=4)
    nb = neurobench_synops(snn, x)
    act = E.collect(snn, x)
    conn = {"0", "3", "8", "10"}
    ours_ac = sum(a.acs for a in act.layers if a.name in conn)
    ours_mac = sum(a.macs for a in act.layers if a.name in conn)
    ours_dense = sum(a.dense_ops for a in act.layers if a.name in conn)
    # layer 8 follows an average pool (non-binary input): a MAC layer for both NeuroBench and us
    assert ours_ac == pytest.approx(nb["Effective_ACs"])
    assert ours_mac == pytest.approx(nb["Effective_MACs"])
    assert ours_dense == pytest.approx(nb["Dense"])


def test_estimate_full_vs_ops_and_categories():
    m = sparse_cnn()
    x = torch.rand(32, 1, 8, 8)
    snn = isp.convert(m, "rate", timesteps=6, calibration=x)
    full = E.estimate(snn, x, hardware="horowitz45")
    ops = E.estimate(snn, x, hardware="horowitz45", mode="ops")
    c = full.by_category
    assert math.isclose(sum(c.values()), full.total_j) and c["data_movement"] > 0
    assert ops.total_j == pytest.approx(c["compute"] - sum(r.compute_j for r in full.layers if r.kind == "neuron"))
    assert full.ratio_to_ann is not None and full.ann_total_j > 0
    s = full.table()
    assert "total" in s and "horowitz45" in s
    d = full.as_dict()
    assert d["total_j"] == full.total_j and len(d["layers"]) == len(full.layers) and d["sources"]


def test_counts_scale_with_activity_and_hardware_presets_differ():
    m = sparse_cnn()
    x = torch.rand(16, 1, 8, 8)
    snn = isp.convert(m, "rate", timesteps=4, calibration=x)
    short = E.estimate(snn, x)
    longer = E.estimate(isp.convert(m, "rate", timesteps=16, calibration=x), x)
    assert longer.total_j > 2 * short.total_j  # 4x the steps, ~4x the events
    totals = {name: E.estimate(snn, x, hardware=name).total_j for name in PRESETS}
    assert len(set(totals.values())) == len(totals)
    cim = E.estimate(snn, x, hardware="cim-memristor")
    assert sum(r.data_movement_j for r in cim.layers if r.kind == "ac") == 0  # no weight movement in a crossbar


def test_ann_and_exact_networks_are_estimated():
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    x = torch.rand(5, 4)
    rep = E.estimate(m, x)
    assert rep.ann_total_j is None and rep.total_j > 0 and all(r.kind == "ann" for r in rep.layers)
    ex = isp.exact.convert(m)
    er = E.estimate(ex, x, hardware="loihi")
    assert er.total_j > 0 and {r.kind for r in er.layers} == {"gates"}
    assert any("spatial" in n for n in er.notes)


def test_hardware_helpers_and_errors(tmp_path):
    assert sram_pj_per_bit(8 * 1024) == pytest.approx(10 / 64)
    assert sram_pj_per_bit(20 * 1024) == pytest.approx((10 + 10 * 12 / 24) / 64)
    assert sram_pj_per_bit(4 * 1024 * 1024) == pytest.approx(1300 / 64)
    cores, width = placement([100, 3000, 10], 1024)
    assert [len(c) for c in cores] == [1, 3, 1] and width == 3
    assert mesh_hops(cores[0], cores[1], width) > 0
    assert all(p.sources for p in PRESETS.values())
    with pytest.raises(ValueError, match="unknown hardware"):
        E.estimate(nn.Linear(2, 2), torch.rand(1, 2), hardware="gpu9000")
    with pytest.raises(ValueError, match="mode"):
        E.estimate(nn.Linear(2, 2), torch.rand(1, 2), mode="vibes")
    rep = E.estimate(nn.Sequential(nn.Linear(2, 2)), torch.rand(3, 2))
    out = rep.plot(tmp_path / "e.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_bad_hardware_and_uncountable_networks_are_refused_or_named():
    with pytest.raises(ValueError, match="neurons_per_core"):
        E.get_hardware("loihi").with_(neurons_per_core=0)
    with pytest.raises(ValueError, match="ac_pj"):
        E.get_hardware("loihi").with_(ac_pj=float("nan"))
    with pytest.raises(ValueError, match="mac_pj"):
        E.get_hardware("horowitz45").with_(mac_pj=-1.0)
    with pytest.raises(TypeError, match="preset name"):
        E.estimate(nn.Linear(2, 2), torch.rand(1, 2), hardware=["loihi"])
    m = nn.Sequential(nn.Linear(4, 3))
    for reference in (isp.exact.reference(m), isp.equivalent(isp.exact.convert(m))):
        with pytest.raises(ValueError, match="does not count its gates"):
            E.estimate(reference, torch.rand(2, 4))

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.att = nn.MultiheadAttention(4, 1, batch_first=True)

        def forward(self, x):
            return self.att(x, x, x)[0]

    with pytest.warns(UserWarning, match="MultiheadAttention at 'att' are not counted"):
        E.estimate(Attention(), torch.rand(2, 3, 4))
    snn = isp.convert(nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)).eval(), coding="rate",
                      calibration=torch.rand(8, 4))
    with pytest.raises(TypeError, match="one input tensor"):
        E.estimate(snn, (torch.rand(2, 4), torch.rand(2, 4)))  # a tuple: one call's positional arguments


def test_an_ann_on_crossbars_feeds_its_activations_bit_serially():
    layer = nn.Linear(6, 3)
    hw = E.get_hardware("cim-memristor")
    rep = E.estimate(nn.Sequential(layer), torch.rand(4, 6), hardware=hw)
    bits = hw.cim_input_bits
    expected = bits * (18 * hw.crossbar_cell_pj + 6 * hw.dac_pj + 3 * hw.adc_pj) * 1e-12
    assert rep.by_category["compute"] == pytest.approx(expected)
    assert E.estimate(nn.Sequential(layer), torch.rand(4, 6), hardware=hw.with_(cim_input_bits=1)).by_category[
        "compute"] == pytest.approx(expected / bits)


def test_one_collected_activity_prices_like_estimate_on_every_preset_and_mode():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).eval()
    x = torch.rand(8, 4)
    snn = isp.convert(ann, coding="rate", timesteps=4, calibration=x)
    activity = E.collect(snn, x)
    for hw in PRESETS:
        for mode in ("full", "ops"):
            if mode == "ops" and E.get_hardware(hw).compute_in_memory:
                with pytest.raises(ValueError, match="no meaning"):
                    E.price(activity, hw, mode)
                continue
            a, b = E.price(activity, hw, mode), E.estimate(snn, x, hardware=hw, mode=mode)
            assert a.total_j == pytest.approx(b.total_j) and a.ann_total_j == pytest.approx(b.ann_total_j)


def test_neurobench_agrees_on_the_split_and_sparsity_of_a_network_with_thresholds_not_1():
    """Percentile thresholds make rate spikes carry theta != 1, which NeuroBench reads as analog
    values (MACs). isospike.energy.neurobench_model folds theta into the driven weights and
    registers the populations: NeuroBench's MAC/AC split, dense count and activation sparsity
    then equal isospike's, on a network with a residual-free 1-d conv stack not used elsewhere."""
    pytest.importorskip("neurobench")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations

    torch.manual_seed(3)
    ann = nn.Sequential(nn.Conv1d(2, 6, 3, padding=1), nn.ReLU(), nn.Conv1d(6, 6, 3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(6 * 10, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    x = torch.rand(12, 2, 12)
    snn = isp.convert(ann, "rate", timesteps=5, calibration=x)
    assert any(float(m.neuron.spike_value.max()) != 1.0 for _, m in snn.neurons())
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=len(x))
    nb = Benchmark(E.neurobench_model(snn), loader, [], [], [[], [SynapticOperations, ActivationSparsity]]).run()
    act = E.collect(snn, x)
    synapses = [a for a in act.layers if a.kind in ("ac", "mac")]
    assert sum(a.acs for a in synapses) == pytest.approx(nb["SynapticOperations"]["Effective_ACs"])
    assert sum(a.macs for a in synapses) == pytest.approx(nb["SynapticOperations"]["Effective_MACs"])
    assert sum(a.dense_ops for a in synapses) == pytest.approx(nb["SynapticOperations"]["Dense"])
    res = isp.simulate(snn, x)
    neurons = [s for s in res.layers.values() if s.kind == "neuron"]
    sparsity = 1 - sum(s.spikes for s in neurons) / sum(s.neuron_updates for s in neurons)
    assert sparsity == pytest.approx(nb["ActivationSparsity"], abs=1e-9)
    assert torch.allclose(E.neurobench_model(snn).net(x), snn(x), atol=1e-5)  # the same function


def _tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50, n_positions=32,
                                      bos_token_id=0, eos_token_id=0)).eval()


@pytest.mark.filterwarnings("ignore")
def test_language_models_are_priced_per_token_of_their_attention_mask():
    gpt = _tiny_gpt2()
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[0, :4] = 0  # a left-padded row holds 6 tokens
    batch = {"input_ids": torch.randint(0, 50, (3, 10)), "attention_mask": mask}
    snn = isp.convert(gpt, coding="ttfs", calibration=batch)
    for hw in ("horowitz45", "cim-memristor"):
        r = isp.energy.estimate(snn, batch, hardware=hw)
        assert r.tokens == 26 and r.samples == 3
        assert r.per_token_j == pytest.approx(r.total_j * 3 / 26)
        assert r.ann_per_token_j == pytest.approx(r.ann_total_j * 3 / 26)
        assert r.as_dict()["per_token_j"] == r.per_token_j and "per token (26 tokens" in r.table()
    # token ids without a mask: every position counts; an image model has no tokens
    assert isp.energy.estimate(gpt, {"input_ids": batch["input_ids"]}).tokens == 30
    assert isp.energy.estimate(gpt, batch["input_ids"]).tokens == 30
    assert isp.energy.estimate(nn.Linear(4, 2), torch.randn(5, 4)).per_token_j is None


def test_weights_that_do_not_fit_the_chip_are_read_from_dram():
    from isospike.energy.hardware import HOROWITZ_DRAM_PJ_PER_64BIT

    net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    x = torch.rand(8, 64)
    held = {row.name: row.parameters * 4 for row in isp.energy.collect(net, x).layers}  # fp32 bytes per layer
    fits = isp.energy.get_hardware("horowitz45")
    spills = fits.with_(on_chip_weight_bytes=1024.0)
    on_chip, off_chip = (isp.energy.estimate(net, x, hardware=hw) for hw in (fits, spills))
    assert on_chip.total_j < off_chip.total_j and any("DRAM" in n for n in off_chip.notes)
    # the difference is every weight read (one per MAC, 32 bits) at DRAM instead of its layer's SRAM
    extra = 0.0
    for layer in on_chip.layers:
        extra += layer.macs * 32 * (HOROWITZ_DRAM_PJ_PER_64BIT / 64 - fits.memory_pj_per_bit_for(held[layer.name])) * 1e-12
    assert off_chip.total_j - on_chip.total_j == pytest.approx(extra, rel=1e-9)
    assert held["0"] > 64 * 256 * 4 - 1 and sum(held.values()) > 1024
    # crossbars and multi-chip systems keep every weight where it is
    assert isp.energy.get_hardware("cim-memristor").on_chip_weight_bytes == float("inf")
    with pytest.raises(ValueError, match="on_chip_weight_bytes"):
        fits.with_(on_chip_weight_bytes=-1.0)


class _SamePaddingConv(nn.Conv2d):
    """TensorFlow 'same' convolution that pads inside its own forward (as EfficientNet ports do)."""

    def forward(self, x):
        (ih, iw), (kh, kw), (sh, sw) = x.shape[-2:], self.weight.shape[-2:], self.stride
        ph = max((-(-ih // sh) - 1) * sh + kh - ih, 0)
        pw = max((-(-iw // sw) - 1) * sw + kw - iw, 0)
        x = nn.functional.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return nn.functional.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def test_convolutions_that_pad_inside_their_forward_are_counted_on_what_they_convolve():
    torch.manual_seed(0)
    net = nn.Sequential(_SamePaddingConv(3, 4, 3, stride=2), nn.ReLU(), _SamePaddingConv(4, 2, 3)).eval()
    x = torch.rand(2, 3, 7, 8)
    rows = {row.name: row for row in isp.energy.collect(net, x).layers}
    F_ = nn.functional
    # NeuroBench's convention: connections from real inputs only (padded zeros drive none)
    assert rows["0"].dense_ops == F_.conv2d(F_.pad(torch.ones(1, 3, 7, 8), [0, 1, 1, 1]), torch.ones(4, 3, 3, 3),
                                             stride=2).sum()
    h = net[1](net[0](x)).detach()
    active = F_.pad((h != 0).double(), [1, 1, 1, 1])
    assert rows["2"].synaptic_ops == F_.conv2d(active, (net[2].weight != 0).double()).sum() / 2
    isp.energy.estimate(net, torch.rand(1, 3, 32, 32))  # small inputs counted too (this raised before)
