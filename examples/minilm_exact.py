"""all-MiniLM-L6-v2, the real pretrained sentence encoder, computed entirely by integrate-and-
fire threshold-gate circuits on spatial-bit spikes, and checked bit for bit.

    python examples/minilm_exact.py

Takes about 20 seconds per sentence of 16 tokens on 2 CPU cores.
"""

import time

import torch

import isospike as isp
from isospike.exact.arith import GateArith, TorchArith
from isospike.models.minilm import mean_pooling
from isospike.models.minilm import load_minilm
from isospike.models.minilm import mean_pooling as native_pooling

sentences = [
    "Spiking neurons can add floating-point numbers exactly.",
    "The weather in Amsterdam was grey and windy all week.",
]
tokenizer, model = load_minilm()
snn = isp.exact.convert(model)  # every multiply, add, exp, division ... by neuron gates
ref = isp.exact.reference(model)  # the same pinned float32 sequence in plain PyTorch

torch.set_grad_enabled(False)  # inference only
for text in sentences:
    enc = tokenizer([text], return_tensors="pt")
    start = time.perf_counter()
    hidden = snn(**enc).last_hidden_state
    seconds = time.perf_counter() - start
    emb = mean_pooling(GateArith(), hidden, enc["attention_mask"])
    emb_ref = mean_pooling(TorchArith(), ref(**enc).last_hidden_state, enc["attention_mask"])
    with torch.no_grad():
        native = native_pooling(model(**enc).last_hidden_state, enc["attention_mask"])
    ulp = isp.metrics.ulp_distance(emb, native)
    print(f"{text!r} ({enc['input_ids'].shape[1]} tokens, {seconds:.1f} s through the gates)")
    print(f"  identical to the reference bit for bit: {torch.equal(emb.view(torch.int32), emb_ref.view(torch.int32))}")
    print(f"  vs unmodified transformers: mean {ulp.float().mean():.1f} ULP, max {ulp.max()} ULP, "
          f"cosine similarity {torch.cosine_similarity(emb, native).item():.9f}")
    counts = snn.counts()
    print(f"  {counts.gate_evaluations / 1e9:.0f} G neuron (gate) evaluations, {counts.spikes / 1e9:.0f} G spikes")
