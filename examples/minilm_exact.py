"""all-MiniLM-L6-v2, the real pretrained sentence encoder, computed entirely by integrate-and-
fire threshold-gate circuits on spatial-bit spikes, and checked bit for bit.

    python examples/minilm_exact.py

The encoder and its mean pooling are one module (SentenceEmbedder); exact conversion captures
every floating-point operation of its forward. About 20 seconds per 16-token sentence on 2 cores.
"""

import time

import torch

import isospike as isp
from isospike.models.minilm import SentenceEmbedder, load_minilm

sentences = [
    "Spiking neurons can add floating-point numbers exactly.",
    "The weather in Amsterdam was grey and windy all week.",
]
tokenizer, encoder = load_minilm()
embedder = SentenceEmbedder(encoder).eval()
snn = isp.exact.convert(embedder)  # every multiply, add, exp, division ... by neuron gates
ref = isp.exact.reference(embedder)  # the same pinned float32 sequence in plain PyTorch

torch.set_grad_enabled(False)  # inference only
for text in sentences:
    enc = tokenizer([text], return_tensors="pt")
    start = time.perf_counter()
    emb = snn(**enc)
    seconds = time.perf_counter() - start
    native = embedder(**enc)
    ulp = isp.metrics.ulp_distance(emb, native)
    print(f"{text!r} ({enc['input_ids'].shape[1]} tokens, {seconds:.1f} s through the gates)")
    print(f"  identical to the reference bit for bit: {torch.equal(emb.view(torch.int32), ref(**enc).view(torch.int32))}")
    print(f"  vs unmodified transformers: mean {ulp.float().mean():.1f} ULP, max {ulp.max()} ULP, "
          f"cosine similarity {torch.cosine_similarity(emb, native).item():.9f}")
    counts = snn.counts()
    print(f"  {counts.gate_evaluations / 1e9:.0f} G neuron (gate) evaluations, {counts.spikes / 1e9:.0f} G spikes")
