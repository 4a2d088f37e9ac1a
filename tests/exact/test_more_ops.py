"""Operators beyond the first model zoo (issue 32): recurrent cells and fused attention through
their decompositions, and the pinned algorithms for log, softplus, group/instance norm, cumsum,
pow with a tensor exponent, sort/topk, transposed convolution and upsampling. Each converts
bit-identical to isp.exact.reference in a tiny model's default call."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import isospike as isp


def bits(t):
    return t.contiguous().view({torch.float32: torch.int32, torch.bfloat16: torch.int16,
                                torch.float16: torch.int16}.get(t.dtype, t.dtype))


def first(y):
    if isinstance(y, tuple):
        return y[0]
    return y


class Fn(nn.Module):
    def __init__(self, f, **children):
        super().__init__()
        self.f = f
        for name, m in children.items():
            setattr(self, name, m)

    def forward(self, *args):
        return self.f(self, *args)


def check_bit_exact(model, *args):
    torch.manual_seed(0)
    model = model.eval()
    snn, ref = isp.exact.convert(model), isp.exact.reference(model)
    with torch.no_grad():
        y, r = snn(*args), ref(*args)
        native = model(*args)
    ys, rs, ns = (y if isinstance(y, tuple) else (y,)), (r if isinstance(r, tuple) else (r,)), \
        (native if isinstance(native, tuple) else (native,))
    for a, b in zip(ys, rs):
        if isinstance(a, torch.Tensor):
            assert torch.equal(bits(a), bits(b))
    return ys, ns


RECURRENT = {
    "gru": (lambda: nn.GRU(3, 2, batch_first=True), (2, 3, 3)),
    "lstm": (lambda: nn.LSTM(3, 2, batch_first=True), (2, 3, 3)),
    "lstm_cell": (lambda: nn.LSTMCell(3, 2), (2, 3)),
    "gru_cell": (lambda: nn.GRUCell(3, 2), (2, 3)),
    "mha": (lambda: nn.MultiheadAttention(4, 2, batch_first=True), (1, 3, 4)),
}


@pytest.mark.parametrize("case", sorted(RECURRENT))
def test_recurrent_cells_and_fused_attention_run_decomposed_and_bit_exact(case):
    make, shape = RECURRENT[case]
    torch.manual_seed(0)
    model = make()
    x = torch.randn(*shape)
    args = (x, x, x) if case == "mha" else (x,)
    ys, ns = check_bit_exact(model, *args)
    assert (ys[0] - ns[0]).abs().max() < 1e-5
    # the switches are restored after the forward
    assert torch.backends.mha.get_fastpath_enabled() and torch._C._get_mkldnn_enabled()


def test_transformer_encoder_with_fast_path_off_is_bit_exact():
    torch.manual_seed(0)
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 8, batch_first=True), 1)
    ys, ns = check_bit_exact(model, torch.randn(1, 3, 4))
    assert (ys[0] - ns[0]).abs().max() < 1e-5
