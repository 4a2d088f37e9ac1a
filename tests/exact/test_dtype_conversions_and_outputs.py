"""Dtype conversions inside converted models, and Hugging Face outputs recorded by class: the gate
network, its reference and the original agree, or the conversion raises."""

import pytest
import torch
from torch import nn

import isospike as isp


class Cast(nn.Module):
    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def forward(self, x):
        return x.to(self.dtype)


def test_int64_to_float32_is_rounded_once():
    # through float64, 2**60 + 2**36 + 1 was rounded twice (to 2**60) in the reference
    i = torch.tensor([2**60 + 2**36 + 1, -(2**60 + 2**36 + 1), 2**53 + 1, 2**63 - 1, -2**63, 7])
    net, ref = isp.exact.convert(Cast(torch.float32)), isp.exact.reference(Cast(torch.float32))
    assert torch.equal(ref(i), i.float())  # torch's int64 -> float32 is correctly rounded
    assert torch.equal(net(i), ref(i))


def test_float32_to_int64_equals_torch_everywhere():
    """A 64-bit conversion circuit: values beyond the int32 range convert, and NaN, infinities and
    values beyond the int64 range give -2^63, as torch on x86."""
    x = torch.tensor([1.5, -2.7, 2.0**30, -2.0**31, 0.0, -0.0, 3e9, -3e9, 2.0**62, float("nan"), float("inf"),
                      -float("inf"), 1e19, -1e30])
    net = isp.exact.convert(Cast(torch.int64))
    assert torch.equal(net(x), x.long()) and torch.equal(isp.exact.reference(Cast(torch.int64))(x), x.long())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_nan_narrowed_inside_a_model_is_the_canonical_nan_in_both(dtype):
    x = torch.tensor([float("nan"), -float("nan"), 1.0, 3e38, -1e-30])
    got = isp.exact.convert(Cast(dtype))(x).view(torch.int16)
    assert torch.equal(got, isp.exact.reference(Cast(dtype))(x).view(torch.int16))
    assert torch.equal(got[:2], torch.full((2,), 0x7FC0 if dtype == torch.bfloat16 else 0x7E00, dtype=torch.int16))


def test_base_hugging_face_models_keep_hidden_states_and_attentions():
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = tf.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, attn_implementation="eager")
    model = tf.BertModel(config).eval()
    ids = torch.randint(0, 64, (2, 7))
    kw = dict(output_hidden_states=True, output_attentions=True)
    want, got, ref = model(ids, **kw), isp.exact.convert(model)(ids, **kw), isp.exact.reference(model)(ids, **kw)
    assert list(got.keys()) == list(want.keys()) == list(ref.keys())
    assert len(got.hidden_states) == len(want.hidden_states) == 3 and len(got.attentions) == 2
    for a, b in zip(got.hidden_states + got.attentions, ref.hidden_states + ref.attentions):
        assert torch.equal(a, b)


@pytest.mark.parametrize("backend", ["bitsliced", "torch"])
def test_same_format_conversion_gives_the_canonical_nan_like_every_circuit(backend):
    # docs/exact.md: any NaN input gives the canonical quiet NaN; a same-format conversion returned
    # signalling NaNs and payloads unchanged
    x = torch.tensor([0x7F800001, -1, 0x3F800000], dtype=torch.int32).view(torch.float32)
    got = isp.exact.to_float32(x, backend=backend).view(torch.int32)
    assert got.tolist() == [0x7FC00000, 0x7FC00000, 0x3F800000]
    h = torch.tensor([0x7C01, -1, 0x3C00], dtype=torch.int16).view(torch.float16)
    assert isp.exact.to_float16(h, backend=backend).view(torch.int16).tolist() == [0x7E00, 0x7E00, 0x3C00]
