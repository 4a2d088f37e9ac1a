"""One activity record (isospike.activity.LayerActivity) and one observer (isospike.counting) for
every network: converted spiking networks, the TTFS transformer, exact gate networks and plain
ANNs; the energy model reads only that record."""

import pytest
import torch
from torch import nn

import isospike as isp
import isospike.energy as E
from isospike.activity import KINDS, LayerActivity


def test_the_record_totals_per_inference_view_and_sums():
    row = LayerActivity("fc", "ac", synaptic_ops=30, dense_ops=60, input_events=12, outputs=24, timesteps=2,
                        samples=3, by_step=[18, 12], parameters=20, device_reads=30)
    assert (row.acs, row.macs, row.spikes_by_step) == (30, 0, [])
    one = row.per_inference()
    assert (one.samples, one.synaptic_ops, one.outputs, one.by_step) == (1, 10, 8, [6, 4])
    assert (one.parameters, one.timesteps) == (20, 2)  # sizes are not divided
    assert row.per_inference(6).synaptic_ops == 5  # normalized by a given batch
    more = LayerActivity("fc", "ac", synaptic_ops=6, samples=1, by_step=[6, 0, 0], parameters=20, timesteps=3)
    row.add(more)
    assert (row.synaptic_ops, row.samples, row.by_step, row.timesteps) == (36, 4, [24, 12, 0], 3)
    with pytest.raises(ValueError, match="cannot add"):
        row.add(LayerActivity("other", "ac"))
    neuron = LayerActivity("relu", "neuron", neurons=4, neuron_updates=16, spikes=4, by_step=[3, 1], samples=2)
    assert neuron.spikes_by_step == [3, 1] and neuron.spikes_per_neuron_step == 0.25
    assert LayerActivity("fc", "mac", synaptic_ops=5).macs == 5 and LayerActivity("g", "gates", synaptic_ops=7).acs == 7
    with pytest.raises(ValueError, match="kind"):
        LayerActivity("x", "total")
    with pytest.raises(TypeError):
        LayerActivity("x", "neuron", 4)  # counts are keyword-only: the two former records ordered them differently
    with pytest.raises(ValueError, match="at least one sample"):
        LayerActivity("x", "neuron").per_inference()
    assert isp.LayerStats is LayerActivity and isp.conversion.LayerStats is LayerActivity
    assert E.LayerActivity is LayerActivity and set(KINDS) == {"ann", "mac", "ac", "neuron", "gates"}


def tiny_bert_classifier():
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertModel

    from isospike.train.distill import BertClassifier
    from isospike.train.ttfs_bert import ttfs_bert

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=8)
    ids = torch.randint(0, 30, (3, 6))
    model = ttfs_bert(BertClassifier(BertModel(cfg).eval(), 2), (ids, torch.ones_like(ids)), timesteps=7)
    return model.eval(), (ids, torch.ones_like(ids))


def test_the_record_is_the_same_for_spiking_transformer_and_exact_networks():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).eval()
    x = torch.rand(3, 4)
    bert, tokens = tiny_bert_classifier()
    sources = {"spiking": (isp.convert(ann, coding="rate", timesteps=4, calibration=x), x),
               "transformer": (bert, tokens), "exact": (isp.exact.convert(ann), x)}
    kinds = {}
    for source, (net, inputs) in sources.items():
        with torch.no_grad(), isp.counting(net) as seen:
            net(*inputs) if isinstance(inputs, tuple) else net(inputs)
        rows = seen.layers
        kinds[source] = {r.kind for r in rows.values()}
        assert seen.samples == 3 and seen.calls == 1
        assert rows and all(type(r) is LayerActivity and r.kind in KINDS and r.name == k for k, r in rows.items())
        assert all(r.samples == 3 for r in rows.values()), source  # totals over the 3 samples
        activity = E.collect(net, inputs)  # the energy model reads the same rows, per inference
        assert [r.name for r in activity.layers] == list(rows)
        for mine, theirs in zip(activity.layers, rows.values()):
            assert mine == theirs.per_inference(), (source, mine.name)
        assert activity.source == ("exact" if source == "exact" else "spiking")
        totals = activity.totals()
        assert totals["synaptic_ops"] == pytest.approx(totals["macs"] + totals["acs"]) and totals["synaptic_ops"] > 0
    assert kinds["exact"] == {"gates"} and {"neuron", "ac", "mac"} <= kinds["transformer"]
    # a plain ANN through the same observer: its Linear layers, every value computed
    with torch.no_grad(), isp.counting(ann) as seen:
        ann(x)
    assert list(seen.layers) == ["0", "2"] and {r.kind for r in seen.layers.values()} == {"ann"}
    assert seen.layers["0"].dense_ops == 3 * 4 * 6 and E.collect(ann, x).source == "ann"
