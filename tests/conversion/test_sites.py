"""Every coding on every model: the site front end (isospike.conversion.sites) on Hugging Face
decoders and encoders, a vision transformer, modern CNNs and functional weight operations."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import isospike as isp
from isospike.conversion.sites.network import CodedNetwork
from isospike.neurons.sites import ChannelScaled

transformers = pytest.importorskip("transformers")
CODINGS = ["rate", "ttfs", "mttfs", "sigma_delta"]


def gpt2():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, bos_token_id=0, eos_token_id=0,
                                  n_positions=32)
    return transformers.GPT2LMHeadModel(cfg).eval()


def llama(attn: str = "sdpa"):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                   bos_token_id=0, eos_token_id=1, pad_token_id=2)
    cfg._attn_implementation = attn
    return transformers.LlamaForCausalLM(cfg).eval()


def tokens(batch: int = 4, length: int = 10):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 64, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # a left-padded row
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("make", [gpt2, llama], ids=["gpt2", "llama"])
def test_decoders_keep_their_class_equal_their_qnn_and_generate_the_same_tokens(make, coding):
    model = make()
    inputs = tokens()
    snn = isp.convert(model, coding=coding, calibration=inputs)
    assert isinstance(snn, type(model)) and isinstance(snn, CodedNetwork) and snn.coding == coding
    qnn = isp.equivalent(snn)
    assert isinstance(qnn, type(model)) and qnn.quantized
    with torch.no_grad():
        a = snn(**inputs, output_hidden_states=True)
        b = qnn(**inputs, output_hidden_states=True)
        ann = model(**inputs)
    assert torch.equal(a.logits, b.logits)  # QNN-equal, bit for bit
    assert len(a.hidden_states) == 3 and all(torch.equal(x, y) for x, y in zip(a.hidden_states, b.hidden_states))
    assert 0 < float((a.logits - ann.logits).abs().max()) < 1.0  # coded, close to the float model
    prompt = {k: v[:2, :6] for k, v in inputs.items()}  # left-padded batch through the KV cache
    out = snn.generate(**prompt, max_new_tokens=4, do_sample=False, pad_token_id=2)
    assert torch.equal(out, qnn.generate(**prompt, max_new_tokens=4, do_sample=False, pad_token_id=2))
    cert = isp.verify(snn, inputs)
    assert cert.holds and {c.layer for c in cert.layers} == set(snn.sites())
    assert all(c.guarantee == "qnn-equivalent" for c in cert.layers)


@pytest.mark.parametrize("coding", ["ttfs", "sigma_delta"])
def test_encoders_and_a_vision_transformer(coding):
    torch.manual_seed(0)
    bert = transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=32, num_labels=3)).eval()
    vit = transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=5)).eval()
    for model, inputs in ((bert, tokens()), (vit, {"pixel_values": torch.rand(4, 3, 16, 16)})):
        snn = isp.convert(model, coding=coding, calibration=inputs)
        with torch.no_grad():
            assert torch.equal(snn(**inputs).logits, isp.equivalent(snn)(**inputs).logits)
        sim = isp.simulate(snn, inputs)
        assert sim.spikes > 0 and sim.samples == 4 and sim.output.logits.shape[0] == 4
        kinds = {r.kind for r in sim.layers.values()}
        assert {"neuron", "ac", "mac"} <= kinds
        rep = isp.energy.estimate(snn, inputs, hardware="loihi")
        assert rep.total_j > 0 and rep.ann_total_j > 0


class ModernBlock(nn.Module):
    """Conv + BN + SiLU, a squeeze-excitation gate, hardswish, GELU MLP on LayerNorm, max pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.SiLU(), nn.MaxPool2d(2))
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 8),
                                nn.Sigmoid())
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, stride=2)
        self.norm = nn.LayerNorm(8)
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8), nn.Hardswish())
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        h = self.stem(x)
        h = h * self.se(h)[:, :, None, None]
        h = self.dw(h).flatten(2).mean(-1)
        return self.head(h + self.mlp(self.norm(h)))


@pytest.mark.parametrize("coding", CODINGS)
def test_a_modern_cnn_goes_by_its_sites(coding):
    torch.manual_seed(0)
    model = ModernBlock().eval()
    x = torch.randn(8, 3, 8, 8)
    snn = isp.convert(model, coding=coding, calibration=x)  # auto: the graph front refuses SiLU / MaxPool
    assert isinstance(snn, ModernBlock) and snn.info["front"] == "sites"
    # the stem convolution reads the model's own input (direct coding): not a site
    assert "stem.0" not in snn.sites() and {"se.2", "se.4", "dw", "mlp.0", "mlp.2", "head"} <= set(snn.sites())
    with torch.no_grad():
        assert torch.equal(snn(x), isp.equivalent(snn)(x))
    res = isp.simulate(snn, x)
    assert res.layers["stem.0"].kind == "mac" and res.layers["dw"].kind == "ac" and res.layers["dw.input"].spikes > 0
    y = snn(x)  # differentiable: surrogate / straight-through gradients reach the weights
    y.sum().backward()
    assert snn.head.weight.grad is not None and float(snn.stem[0].weight.grad.abs().sum()) > 0


def test_synaptic_events_are_spikes_times_fan_out():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.GELU(), nn.Linear(5, 3)).eval()
    with torch.no_grad():
        model[2].weight[1, 0] = 0.0  # one missing synapse
    x = torch.randn(16, 6)
    snn = isp.convert(model, coding="ttfs", calibration=x)
    pop = snn.sites()["2"]
    with torch.no_grad():
        h = F.gelu(model[0](x))
        res = isp.simulate(snn, x)
    fired = pop.events(h)
    fan = (model[2].weight != 0).sum(0).to(torch.float64)
    assert res.layers["2"].synaptic_ops == pytest.approx(float((fired @ fan).sum()))
    assert res.layers["2.input"].spikes == int(fired.sum())
    assert res.layers["2"].dense_ops == 16 * 5 * 3
    assert res.layers["0"].kind == "mac" and res.layers["0"].synaptic_ops == 16 * 6 * 5  # dense input, all nonzero


class Functional(nn.Module):
    """Weights used through functional calls: x @ W, F.linear on a slice, a module called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 8) * 0.3)
        self.proj = nn.Parameter(torch.randn(12, 8) * 0.3)
        self.shared = nn.Linear(4, 4)

    def forward(self, x):
        h = torch.tanh(x @ self.w)
        q, k = F.linear(h, self.proj[:4]), F.linear(h, self.proj[4:8])
        return self.shared(torch.tanh(self.shared(q))) + k


def test_functional_weights_and_repeated_calls_are_sites():
    torch.manual_seed(0)
    model = Functional().eval()
    x = torch.randn(8, 6)
    snn = isp.convert(model, coding="sigma_delta", calibration=x)
    assert set(snn.sites()) == {"<model>", "<model>#1", "shared", "shared#1"}  # x @ W reads the input: direct
    with torch.no_grad():
        assert torch.equal(snn(x), isp.equivalent(snn)(x))


def test_a_weight_in_a_contraction_no_coding_reads_is_refused_by_name():
    class Einsum(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Linear(4, 4)
            self.w = nn.Parameter(torch.randn(4, 3))

        def forward(self, x):
            return torch.einsum("bi,ij->bj", torch.tanh(self.inner(x)), self.w)

    with pytest.raises(isp.UnsupportedLayerError, match=r"torch\.einsum.*'<model>'.*nn\.Linear"):
        isp.convert(Einsum().eval(), coding="ttfs", calibration=torch.randn(4, 4))


def test_coded_products_and_their_refusal_under_fused_attention():
    inputs = tokens()
    with pytest.raises(isp.UnsupportedLayerError, match="attn_implementation='eager'"):
        isp.convert(llama("sdpa"), coding="ttfs", calibration=inputs, products="coded")
    snn = isp.convert(llama("eager"), coding="ttfs", calibration=inputs, products="coded")
    products = [s for s in snn.sites() if ".product" in s]
    assert len(products) == 8  # 2 layers x (Q K^T, P V) x 2 operands
    with torch.no_grad():
        assert torch.equal(snn(**inputs).logits, isp.equivalent(snn)(**inputs).logits)
    assert "products" in isp.conversion.get_coding("ttfs").describe()
    assert "'binary'" in isp.conversion.get_coding("ttfs").describe()["products"]


def test_binary_products_code_the_left_operand_and_binarize_the_right_one_per_head():
    inputs = tokens()
    with pytest.raises(isp.UnsupportedLayerError, match="attn_implementation='eager'"):
        isp.convert(llama("sdpa"), coding="ttfs", calibration=inputs, products="binary")
    snn = isp.convert(llama("eager"), coding="ttfs", calibration=inputs, products="binary")
    products = [s for s in snn.sites() if ".product" in s]
    assert len(products) == 4 and all(s.endswith(".a") for s in products)  # Q and P coded; K, V binarized
    with torch.no_grad():
        assert torch.equal(snn(**inputs).logits, isp.equivalent(snn)(**inputs).logits)
        with isp.counting(snn) as seen:
            snn(**inputs)
    rows = {n: r for n, r in seen.layers.items() if n.endswith(".product") or n.endswith(".product#1")}
    assert len(rows) == 4 and all(r.kind == "ac" and r.synaptic_ops > 0 for r in rows.values())
    # the rule on its own: the per-head-vector scale runs along each operand's feature axis
    from isospike.conversion.sites.capture import binarize_per_head, feature_axis

    k = torch.randn(2, 5, 4)  # [heads, tokens, features]
    assert feature_axis(k) == -1 and feature_axis(k.transpose(-1, -2)) == -2
    kt = binarize_per_head(k.transpose(-1, -2), feature_axis(k.transpose(-1, -2)))
    assert torch.equal(kt, binarize_per_head(k).transpose(-1, -2))
    assert torch.equal(kt.abs().amax(-2), k.abs().mean(-1))


def test_calibration_forms_and_an_uncalibrated_path():
    model = gpt2()
    inputs = tokens()
    as_list = isp.convert(model, coding="ttfs", calibration=[inputs, tokens(2, 6)])
    loader = DataLoader(TensorDataset(inputs["input_ids"]), batch_size=2)
    as_loader = isp.convert(model, coding="ttfs", calibration=loader)
    assert set(as_list.sites()) == set(as_loader.sites())
    head_only = isp.convert(nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 2)).eval(), coding="ttfs",
                            calibration=torch.randn(8, 4), front="sites")
    assert isp.convert(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval(), coding="ttfs",
                       calibration=torch.randn(8, 4), front="sites").info["front"] == "sites"
    head_only._coded_index.pop("2")
    with pytest.raises(ValueError, match="not reached when this ttfs network was calibrated"):
        head_only(torch.randn(2, 4))
    with pytest.raises(ValueError, match="calibration"):
        isp.convert(model, coding="ttfs", front="sites")


def _massive_channel_inputs(rows: int = 256, seed: int = 0) -> torch.Tensor:
    """Activations with LLM-like massive values: channel 0 is ~N(0, 1) but 400 on one row in 128."""
    x = torch.randn(rows, 8, generator=torch.Generator().manual_seed(seed))
    x[::128, 0] = 400.0
    return x


def _identity_then_linear() -> nn.Sequential:
    """Linear(8, 8) passing x on exactly (identity weights), then Linear(8, 4): site "1" codes x itself."""
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(8))
        model[0].bias.zero_()
    return model


@pytest.mark.parametrize("coding", CODINGS)
def test_channel_split_keeps_massive_values_without_coarsening_the_rest(coding, tmp_path):
    torch.manual_seed(0)
    model = _identity_then_linear()
    x = _massive_channel_inputs()
    split = isp.convert(model, coding=coding, calibration=x, timesteps=15, channel_scales=True, channel_split=99.0)
    plain = isp.convert(model, coding=coding, calibration=x, timesteps=15, channel_scales=True, percentile=100.0)
    site = split.sites()["1"]
    assert site.excess is not None and float(site.scale[0]) < 10 < float(site.excess_scale[0])
    with torch.no_grad():
        ann, y_split, y_plain = model(x), split(x), plain(x)
        typical = torch.ones(len(x), dtype=torch.bool)
        typical[::128] = False
        err_split = float((y_split - ann)[typical].abs().mean())
        err_plain = float((y_plain - ann)[typical].abs().mean())
        assert err_split < 0.5 * err_plain  # the typical rows of channel 0 keep their resolution
        w0 = model[1].weight[:, 0].abs().max()
        assert float((y_split - ann)[~typical].abs().max()) < float(w0 * 400 / 15 + 1.0)  # the massive rows keep their size
        assert torch.equal(y_split, isp.equivalent(split)(x))
    rows = isp.simulate(split, x).layers
    neuron = next(r for r in rows.values() if r.kind == "neuron")
    single = next(r for r in isp.simulate(plain, x).layers.values() if r.kind == "neuron")
    assert neuron.neurons == 2 * single.neurons  # the second population: one more neuron per channel (per sign)
    with torch.no_grad():
        beyond = site.excess.events((x - x.clamp(-site.scale, site.scale)) / site.excess_scale)
    # channel 0's second population is silent on its typical rows, fires on the massive ones
    assert float(beyond[typical, 0].sum()) == 0 and float(beyond[~typical, 0].sum()) > 0
    path = isp.save(split, tmp_path / "split.safetensors")
    with torch.no_grad():
        assert torch.equal(isp.load(path)(x), y_split)
    q_path = isp.save(isp.equivalent(split), tmp_path / "split_qnn.safetensors")
    with torch.no_grad():
        assert torch.equal(isp.load(q_path)(x), y_split)


def test_split_headroom_keeps_values_beyond_the_calibration_maximum():
    model = _identity_then_linear()
    x = _massive_channel_inputs()
    unseen = torch.zeros(1, 8)
    unseen[0, 0] = 1200.0  # three times the largest value calibration saw
    kept = {}
    for headroom in (1.0, 4.0):
        snn = isp.convert(model, coding="ttfs", calibration=x, timesteps=15, channel_scales=True, channel_split=99.0,
                          split_headroom=headroom)
        site = snn.sites()["1"]
        with torch.no_grad():
            kept[headroom] = float(site(unseen)[0, 0])
    assert kept[1.0] == pytest.approx(400.0, rel=0.01)  # clipped at the calibration's largest value
    assert abs(kept[4.0] - 1200.0) <= (4 * 400.0) / 15 / 2 + 1  # within half a coarse step
    with pytest.raises(ValueError, match="split_headroom"):
        isp.convert(model, coding="ttfs", calibration=x, channel_scales=True, channel_split=99.0, split_headroom=0.5)
    with pytest.raises(ValueError, match="channel_split"):
        isp.convert(model, coding="ttfs", calibration=x, channel_scales=True, split_headroom=2.0)


@pytest.mark.parametrize("products", ["coded", "binary"])
def test_channel_scales_leave_product_operands_one_span(products):
    # P V's contracted axis runs over key positions: a scale per "channel" there broke generate() at another length
    model = llama("eager")
    inputs = tokens()
    snn = isp.convert(model, coding="ttfs", calibration=inputs, channel_scales=True, channel_split=95.0,
                      products=products)
    operands = {n: m for n, m in snn.sites().items() if ".product" in n}
    assert operands and not any(isinstance(m, ChannelScaled) for m in operands.values())
    prompt = inputs["input_ids"][:1, :3]  # shorter than the calibration's 10 tokens
    out = snn.generate(prompt, max_new_tokens=4, do_sample=False)
    assert torch.equal(out, isp.equivalent(snn).generate(prompt, max_new_tokens=4, do_sample=False))


def test_site_only_options_are_honoured_or_refused():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.rand(32, 8)
    with pytest.raises(ValueError, match="channel_scales=True"):
        isp.convert(model, coding="ttfs", calibration=x, channel_split=99.0)
    with pytest.raises(ValueError, match="channel_split"):
        isp.convert(model, coding="ttfs", calibration=x, channel_scales=True, channel_split=100.0)
    with pytest.raises(ValueError, match="front='sites'"):
        isp.convert(model, coding="ttfs", calibration=x, front="graph", channel_scales=True)
    # a traceable ReLU network that the graph front would take: channel scales send it to the sites
    assert isinstance(isp.convert(model, coding="ttfs", calibration=x, channel_scales=True), CodedNetwork)
    assert not isinstance(isp.convert(model, coding="ttfs", calibration=x), CodedNetwork)


@pytest.mark.parametrize("coding", CODINGS)
def test_channel_scales_code_each_input_channel_on_its_own_span(coding, tmp_path):
    model = llama()
    inputs = tokens()
    with torch.no_grad():  # an outlier channel, as LLM activations have: one scale per site would waste the levels
        model.model.layers[0].input_layernorm.weight[3] = 40.0
    per_site = isp.convert(model, coding=coding, calibration=inputs)
    per_channel = isp.convert(model, coding=coding, calibration=inputs, channel_scales=True)
    q = per_channel.sites()["model.layers.0.self_attn.q_proj"]
    assert q.scale.shape == (32,) and float(q.scale[3]) > 10 * float(q.scale.median())
    with torch.no_grad():
        ann = model(**inputs).logits
        err_site = float((per_site(**inputs).logits - ann).abs().mean())
        err_channel = float((per_channel(**inputs).logits - ann).abs().mean())
        assert torch.equal(per_channel(**inputs).logits, isp.equivalent(per_channel)(**inputs).logits)
    assert err_channel < err_site
    assert isp.simulate(per_channel, inputs).spikes > 0
    path = isp.save(per_channel, tmp_path / "channels.safetensors")
    with torch.no_grad():
        assert torch.equal(isp.load(path)(**inputs).logits, per_channel(**inputs).logits)
