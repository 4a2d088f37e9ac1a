import numpy as np
import pytest
import torch

import isospike as isp
import isospike.energy as E
from isospike.data import load_bbc_news
from isospike.devices import DeviceVariation, OptoelectronicSynapse
from isospike.train.distill import BertClassifier, distill, encode_texts, evaluate, finetune
from isospike.train.ttfs_bert import TTFSBertClassifier, binarize_per_head


@pytest.fixture(scope="module")
def tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=16)
    return BertModel(cfg).eval()


def toy(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    ids = torch.randint(5, 27, (n, 10), generator=g) + 22 * labels[:, None]  # each class its own vocabulary
    return ids, torch.ones_like(ids), labels


def test_binarize_per_head_sign_times_mean_and_straight_through():
    x = torch.tensor([[1.0, -3.0, 2.0]], requires_grad=True)
    b = binarize_per_head(x)
    assert b.tolist() == [[2.0, -2.0, 2.0]]
    b.sum().backward()
    assert x.grad.tolist() == [[1.0, 1.0, 1.0]]


def test_spiking_mode_is_identical_noise_free_and_counts(tiny_bert):
    ids, mask, _ = toy()
    m = TTFSBertClassifier(tiny_bert, torch.nn.Linear(32, 2), timesteps=15, synapse=OptoelectronicSynapse.in2o3())
    m.init_scales(ids, mask)
    with torch.no_grad():
        y = m.eval()(ids, mask)
        m.spiking(True)
        with isp.counting(m) as seen:
            ys = m(ids, mask)
    assert torch.equal(y, ys)
    st = seen.layers
    assert {"layers.0.q", "layers.0.attention", "layers.1.ff2", "head", "q_pool"} <= set(st)
    assert st["layers.0.q_in"].spikes <= st["layers.0.q_in"].neurons * len(ids)
    assert st["layers.0.q"].device_reads == st["layers.0.q"].synaptic_ops > 0
    rep = E.estimate(m, (ids, mask), hardware="optoelectronic")
    assert rep.total_j > 0 and rep.ann_total_j > 0
    m.spiking(False)
    noisy = OptoelectronicSynapse.in2o3(DeviceVariation(0.3))
    for q in m.quantizers().values():
        q.device = noisy
        object.__setattr__(q, "population", None)
    m.spiking(True)
    with torch.no_grad():
        assert not torch.equal(m(ids, mask), y)


def test_teacher_distillation_and_gelu_variant(tiny_bert):
    import copy

    ids, mask, y = toy(96)
    from isospike.train.distill import Encoded

    data = Encoded(ids, mask, y)
    teacher = BertClassifier(copy.deepcopy(tiny_bert), 2)
    finetune(teacher, data, epochs=3, lr=1e-3, batch_size=16, progress=False)
    assert evaluate(teacher, data) > 0.7
    student = TTFSBertClassifier(teacher.bert, teacher.head, timesteps=7, activation="gelu")
    student.init_scales(ids, mask)
    losses = distill(student, teacher, data, epochs=2, lr=1e-3, batch_size=16, progress=False)
    assert losses[-1] < losses[0] and len(student.hidden) == 3
    student.hidden = []  # drop the last forward's graph before copying
    frozen = copy.deepcopy(student)  # scale_lr: the quantizer steps get their own rate (0 keeps them)
    before = {n: p.detach().clone() for n, p in frozen.named_parameters()}
    distill(frozen, teacher, data, epochs=1, lr=1e-3, batch_size=16, progress=False, scale_lr=0.0)
    moved = {n for n, p in frozen.named_parameters() if not torch.equal(p, before[n])}
    assert moved and not any(n.endswith(".scale") for n in moved)
    with pytest.raises(ValueError, match="activation"):
        TTFSBertClassifier(tiny_bert, torch.nn.Linear(32, 2), activation="tanh")


def test_bbc_news_encoding():
    from isospike.models.minilm import load_minilm

    ds = load_bbc_news(seed=0)
    assert ds.num_classes == 5 and len(ds.train) + len(ds.test) == 2225
    assert np.bincount(ds.test.labels).min() > 60
    tok, _ = load_minilm()
    enc = encode_texts(tok, ds.test.texts[:8], ds.test.labels[:8], max_length=64)
    assert enc.input_ids.shape == (8, 64)
    ids, mask, labels = enc.batch(torch.arange(8))
    assert ids.shape[1] == int(mask.sum(1).max()) and len(labels) == 8


def test_masked_ttfs_keeps_logits_and_saves_spikes(tiny_bert):
    from isospike.train.ttfs import mask_ttfs

    ids, mask, _ = toy()
    m = TTFSBertClassifier(tiny_bert, torch.nn.Linear(32, 2), timesteps=15, activation="gelu")
    m.init_scales(ids, mask)

    def spiking_run():
        m.spiking(True)
        with torch.no_grad(), isp.counting(m) as seen:
            out = m(ids, mask)
        st = seen.layers
        m.spiking(False)
        return out, sum(s.spikes for s in st.values() if s.kind == "neuron"), sum(
            s.synaptic_ops for s in st.values() if s.kind == "ac")

    y0, spikes0, ops0 = spiking_run()
    silent = mask_ttfs(m, lambda: m(ids, mask))
    assert any(v != 0 for v in silent.values())  # GELU / LayerNorm outputs do not all peak at 0
    y1, spikes1, ops1 = spiking_run()
    assert torch.allclose(y0, y1, atol=1e-5) and spikes1 < spikes0 and ops1 < ops0
    with torch.no_grad():
        assert torch.allclose(m.eval()(ids, mask), y1, atol=1e-5)  # the QNN path agrees
    mask_ttfs(m, lambda: m(ids, mask), dead_zone=2)
    _, spikes2, _ = spiking_run()
    assert spikes2 < spikes1
    mask_ttfs(m, lambda: m(ids, mask), dead_zone=2, dead_zone_layers=lambda p: not p.endswith("q_probs"))
    zones = {p: q.dead_zone for p, q in m.quantizers().items()}
    assert all(z == (0 if p.endswith("q_probs") else 2) for p, z in zones.items())
    _, spikes3, _ = spiking_run()
    assert spikes2 < spikes3 < spikes1


def test_seed_ttfs_baseline_keeps_logits_and_silences_the_lowest_level(tiny_bert):
    """mask_ttfs(silence="lowest"): Matterhorn's TTFS baseline (offset levels, the lowest silent)."""
    from isospike.train.ttfs import mask_ttfs

    ids, mask, _ = toy()
    m = TTFSBertClassifier(tiny_bert, torch.nn.Linear(32, 2), timesteps=15, activation="relu")
    m.init_scales(ids, mask)

    def spiking_run():
        m.spiking(True)
        with torch.no_grad(), isp.counting(m) as seen:
            out = m(ids, mask)
        m.spiking(False)
        return out, seen.layers

    y0, st0 = spiking_run()
    silent = mask_ttfs(m, silence="lowest")  # no calibration needed
    quant = m.quantizers()
    assert all(silent[p] == (-15 if q.signed else 0) for p, q in quant.items())
    y1, st1 = spiking_run()
    assert torch.allclose(y0, y1, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(m.eval()(ids, mask), y1, atol=1e-5)
    for p, q in quant.items():  # unsigned layers unchanged; signed ones fire unless at -T
        if not q.signed:
            assert st1[p].spikes == st0[p].spikes
        else:
            assert st1[p].spikes > st0[p].spikes
    # every spike of layers.0.q_in drives the q, k and v projections (32 outputs each)
    fed = st1["layers.0.q"].synaptic_ops + st1["layers.0.k"].synaptic_ops + st1["layers.0.v"].synaptic_ops
    assert fed == st1["layers.0.q_in"].spikes * 3 * 32
    mask_ttfs(m, silence="zero")  # masking undone: signed TTFS again
    _, st2 = spiking_run()
    assert all(st2[p].spikes == st0[p].spikes for p in quant)
    with pytest.raises(ValueError, match="'zero', 'lowest', 'mode'"):
        mask_ttfs(m, silence="smallest")
    with pytest.raises(ValueError, match="pass run"):
        mask_ttfs(m)
