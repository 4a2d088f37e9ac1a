"""Every coding on every model, on architectures the tests do not use: 12 Hugging Face decoders /
encoders / encoder-decoders and 5 vision models (tiny random configurations), each converted by
the site front end under ttfs, mttfs, sigma_delta and rate.

    python benchmarks/sites_zoo.py [codings] [models]     # ~25 minutes on 2 idle cores for all

Per pair: converts, keeps the model's class, SNN logits == ``isp.equivalent(snn)``'s (bit for
bit), greedy ``generate()`` tokens equal the QNN's on a left-padded batch (decoders and T5), spikes
from ``isp.energy.estimate`` on the model's own keyword arguments. Writes
benchmarks/results/sites_zoo.json.
"""
from _common import write_results
import sys
import warnings

import torch

warnings.filterwarnings("ignore")
import isospike as isp
import transformers as T

results = {}
torch.manual_seed(0)
def dec(cfgcls, modelcls, **kw):
    return lambda: modelcls(cfgcls(**kw)).eval()
V=96
small=dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
zoo = {
 "qwen2": dec(T.Qwen2Config, T.Qwen2ForCausalLM, **small),
 "mistral": dec(T.MistralConfig, T.MistralForCausalLM, **small),
 "phi3": dec(T.Phi3Config, T.Phi3ForCausalLM, **small, pad_token_id=0),
 "gemma": dec(T.GemmaConfig, T.GemmaForCausalLM, **small, head_dim=8),
 "gemma3": dec(T.Gemma3TextConfig, T.Gemma3ForCausalLM, **small, head_dim=8),
 "gpt_neox": dec(T.GPTNeoXConfig, T.GPTNeoXForCausalLM, vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4),
 "opt": dec(T.OPTConfig, T.OPTForCausalLM, vocab_size=V, hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4, word_embed_proj_dim=32),
 "falcon": dec(T.FalconConfig, T.FalconForCausalLM, vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4),
 "bloom": dec(T.BloomConfig, T.BloomForCausalLM, vocab_size=V, hidden_size=32, n_layer=2, n_head=4),
 "roberta_cls": dec(T.RobertaConfig, T.RobertaForSequenceClassification, vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4),
 "distilbert": dec(T.DistilBertConfig, T.DistilBertForSequenceClassification, vocab_size=V, dim=32, hidden_dim=64, n_layers=2, n_heads=4),
 "t5": dec(T.T5Config, T.T5ForConditionalGeneration, vocab_size=V, d_model=32, d_ff=64, num_layers=2, num_heads=4, d_kv=8, decoder_start_token_id=0),
}
vision = {
 "vit": dec(T.ViTConfig, T.ViTForImageClassification, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=16, patch_size=4, num_labels=5),
 "convnext": dec(T.ConvNextConfig, T.ConvNextForImageClassification, num_stages=2, hidden_sizes=[8,16], depths=[1,1], num_labels=5, image_size=32),
 "swin": dec(T.SwinConfig, T.SwinForImageClassification, image_size=32, patch_size=4, embed_dim=16, depths=[1,1], num_heads=[2,2], window_size=4, num_labels=5),
 "resnet": dec(T.ResNetConfig, T.ResNetForImageClassification, embedding_size=8, hidden_sizes=[8,16], depths=[1,1], num_labels=5),
 "mobilevit": dec(T.MobileViTConfig, T.MobileViTForImageClassification, image_size=32, num_labels=5),
}
codings = sys.argv[1].split(",") if len(sys.argv) > 1 else ["ttfs", "mttfs", "sigma_delta", "rate"]
only = sys.argv[2].split(",") if len(sys.argv) > 2 else None
def logits(o):
    return o.logits if hasattr(o, "logits") else o[0]
for name, make in {**zoo, **vision}.items():
    if only and name not in only: continue
    m = make()
    if name in vision:
        size = 16 if name == "vit" else 32
        batch = {"pixel_values": torch.randn(2, 3, size, size)}
    else:
        ids = torch.randint(1, V, (3, 12)); mask = torch.ones_like(ids); mask[0, :4] = 0
        batch = {"input_ids": ids, "attention_mask": mask}
        if name == "t5": batch["decoder_input_ids"] = torch.randint(1, V, (3, 5))
    for c in codings:
        try:
            snn = isp.convert(m, coding=c, calibration=batch)
            assert isinstance(snn, type(m)), type(snn)
            q = isp.equivalent(snn)
            with torch.no_grad():
                a, b = logits(snn(**batch)), logits(q(**batch))
            same = torch.equal(a, b)
            gen = ""
            if name not in vision and hasattr(m, "generate") and name not in ("roberta_cls", "distilbert"):
                g1 = snn.generate(**{k: v for k, v in batch.items() if k != "decoder_input_ids"}, max_new_tokens=3, do_sample=False)
                g2 = q.generate(**{k: v for k, v in batch.items() if k != "decoder_input_ids"}, max_new_tokens=3, do_sample=False)
                gen = f"gen_equal={torch.equal(g1, g2)}"
            e = isp.energy.estimate(snn, batch)
            results[f"{name}/{c}"] = {"ok": True, "class_kept": True, "sites": len(snn.sites()), "snn_equals_qnn": same,
                                      "generate_equal": gen.endswith("True") if gen else None,
                                      "spikes": sum(l.spikes for l in e.layers)}
            print(f"{name:12s} {c:12s} OK sites={len(snn.sites())} snn==qnn={same} maxdiff={float((a-b).abs().max()):.2g} {gen} spikes={sum(l.spikes for l in e.layers):.3g}", flush=True)
        except Exception as ex:
            results[f"{name}/{c}"] = {"ok": False, "error": f"{type(ex).__name__}: {str(ex)[:300]}"}
            print(f"{name:12s} {c:12s} FAIL {type(ex).__name__}: {str(ex)[:300]}", flush=True)
ok = sum(r["ok"] for r in results.values())
print(f"{ok} of {len(results)} pairs convert, keep their class and equal their QNN: "
      f"{sum(bool(r.get('snn_equals_qnn')) for r in results.values())}")
if len(sys.argv) == 1:  # the whole zoo: the published result
    print(f"written: {write_results('sites_zoo', {'results': results})}")
