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


def _ties(shape):
    x = torch.randint(0, 4, shape).float()
    x.view(-1)[0] = float("nan")
    x.view(-1)[1] = -0.0
    return x


OPS = {
    # name: (model, inputs, tolerance against native torch: None = values equal bit for bit)
    "log": (Fn(lambda s, x: torch.log(x.abs() + 0.01) + torch.log(x)), (torch.randn(3, 5),), 1e-6),
    "log1p_softplus": (Fn(lambda s, x: torch.log1p(x.abs()) + F.softplus(x) + F.softplus(x, beta=2.0, threshold=3.0)),
                       (torch.randn(3, 5) * 4,), 1e-6),
    "log_softmax": (nn.LogSoftmax(-1), (torch.randn(3, 5),), 1e-6),
    "group_norm": (nn.GroupNorm(2, 4), (torch.randn(2, 4, 3, 3),), 1e-5),
    "instance_norm": (nn.InstanceNorm2d(3), (torch.randn(2, 3, 3, 3),), 1e-5),
    "instance_norm_affine_1d": (nn.InstanceNorm1d(3, affine=True), (torch.randn(2, 3, 5),), 1e-5),
    "batch_norm_no_running_stats": (nn.BatchNorm1d(3, track_running_stats=False), (torch.randn(4, 3),), 1e-5),
    "cumsum": (Fn(lambda s, x: torch.cumsum(x, 1) + torch.cumsum(x > 0, 0)), (torch.randn(3, 6),), 1e-6),
    "pow_tensor": (Fn(lambda s, x: torch.pow(x.abs(), x) + torch.pow(2.0, x) + x ** 1.5
                      + torch.tensor(0.5) ** torch.arange(1, 6, dtype=torch.int32)), (torch.randn(3, 5),), 1e-5),
    # with ties: torch's stable sort (and its unstable one on <= 16 elements, which is stable); topk's order of
    # equal values is left open by torch, so its values are compared there and its indices on distinct values
    "sort_topk": (Fn(lambda s, x: (torch.sort(x, dim=-1, stable=True), torch.sort(x, 0, descending=True),
                                   torch.topk(x, 3).values, torch.topk(x, 2, dim=0, largest=False).values,
                                   torch.topk(x.nan_to_num() + torch.arange(7) / 8, 4))), (_ties((4, 7)),), None),
    "conv_transpose2d": (nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), (torch.randn(1, 3, 4, 3),),
                         1e-5),
    "conv_transpose2d_groups_dilation": (nn.ConvTranspose2d(4, 2, (2, 3), stride=(1, 3), padding=(0, 1), dilation=(2, 1),
                                                            groups=2), (torch.randn(2, 4, 3, 3),), 1e-5),
    "conv_transpose1d": (nn.ConvTranspose1d(2, 3, 4, stride=3, bias=False), (torch.randn(2, 2, 4),), 1e-5),
    "upsample_nearest": (Fn(lambda s, x: (F.interpolate(x, scale_factor=2), F.interpolate(x, size=(5, 7)),
                                          F.interpolate(x, size=(4, 3), mode="nearest-exact"))), (torch.randn(1, 2, 3, 3),),
                         None),
    "upsample_bilinear": (Fn(lambda s, x: (F.interpolate(x, scale_factor=2, mode="bilinear"),
                                           F.interpolate(x, size=(5, 4), mode="bilinear", align_corners=True),
                                           F.interpolate(x[0], scale_factor=1.5, mode="linear"))),
                          (torch.randn(1, 2, 3, 3),), 1e-5),
}


@pytest.mark.parametrize("case", sorted(OPS))
def test_new_operators_convert_bit_exact_and_agree_with_torch(case):
    model, args, tol = OPS[case]
    torch.manual_seed(0)
    snn, ref = isp.exact.convert(model.eval()), isp.exact.reference(model)
    with torch.no_grad():
        y, r, n = snn(*args), ref(*args), model(*args)
    flat = torch.utils._pytree.tree_leaves
    for a, b, c in zip(flat(y), flat(r), flat(n)):
        assert torch.equal(bits(a), bits(b))
        if tol is None:  # data movement and comparisons: torch's own values and (stable) indices
            # torch's topk orders tied values as it likes: among equal zeros, +0 and -0 may swap places
            ties = case == "sort_topk" and a.is_floating_point() and bool(((a == c) | (a.isnan() & c.isnan())).all())
            assert ties or torch.equal(bits(a), bits(c)), case
        else:
            assert a.shape == c.shape and torch.allclose(a, c, atol=tol, rtol=tol, equal_nan=True), case


def test_batch_norm_in_training_mode_updates_running_statistics_as_torch():
    torch.manual_seed(0)
    model = nn.BatchNorm1d(3)
    x = torch.randn(5, 3)
    snn, ref = isp.exact.convert(model).train(), isp.exact.reference(model).train()
    y, r = snn(x), ref(x)
    expect = model.train()(x)  # torch's own training step on the original
    assert torch.equal(bits(y), bits(r)) and torch.allclose(y, expect, atol=1e-5)
    for name in ("running_mean", "running_var"):
        assert torch.equal(bits(getattr(snn, name)), bits(getattr(ref, name)))
        assert torch.allclose(getattr(snn, name), getattr(model, name), atol=1e-6)


def test_log_and_pow_special_values_follow_torch():
    from isospike.exact import functions as fn
    from isospike.exact.arith import GateArith, TorchArith

    nan, inf = float("nan"), float("inf")
    xs = torch.tensor([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, inf, -inf, nan, 1e-45, 3e38])
    ys = torch.tensor([0.0, -0.0, 1.0, 3.0, -3.0, 2.0, -2.5, inf, -inf, nan, 1e30])
    X, Y = torch.meshgrid(xs, ys, indexing="ij")
    for f, want in ((lambda A: fn.log(A, xs), torch.log(xs)), (lambda A: fn.log1p(A, xs), torch.log1p(xs)),
                    (lambda A: fn.pow_tensor(A, X, Y), torch.pow(X, Y))):
        got = f(TorchArith())
        assert torch.equal(bits(f(GateArith())), bits(got))
        special = ~torch.isfinite(want) | (want == 0) | (want.abs() == 1)  # exact special values
        special &= xs.abs().ge(1e-30).reshape(-1, *[1] * (want.dim() - 1)).expand_as(want)  # torch flushes tiny log1p
        canonical = torch.where(torch.isnan(want), torch.full_like(want, nan), want)
        assert torch.equal(bits(got[special]), bits(canonical[special]))


def test_refusals_name_an_alternative_that_converts():
    x = torch.randn(1, 1, 4, 4)
    with pytest.raises(isp.UnsupportedLayerError, match="'bilinear'"):
        isp.exact.convert(nn.Upsample(scale_factor=2, mode="bicubic"))(x)
    with pytest.raises(isp.UnsupportedLayerError, match="compute the layer outside"):
        isp.exact.convert(nn.Conv3d(1, 1, 1))(x[None])


ACTIVATIONS = [nn.Hardswish(), nn.Hardsigmoid(), nn.Mish(), nn.ELU(), nn.SELU(), nn.CELU(0.5), nn.PReLU(), nn.GLU(),
               nn.LogSigmoid(), nn.Softshrink(), nn.Hardshrink(), nn.Threshold(0.1, 2.0), nn.RReLU()]


def test_more_activations_are_bit_exact_and_within_two_ulp_of_torch():
    from isospike.metrics import ulp_distance

    torch.manual_seed(0)
    x = torch.cat([torch.randn(21) * 4, torch.tensor([0.0, -0.0, 1e-8, 88.6, -30.0, float("inf"), float("nan")])])
    model = Fn(lambda s, x: [m(x) for m in s.acts], acts=nn.ModuleList(ACTIVATIONS))
    ys, ns = check_bit_exact(model, x)
    for y, n, m in zip(ys[0], ns[0], ACTIVATIONS):
        assert int(ulp_distance(y, n).max()) <= 2, m


def test_pooling_with_ceil_mode_and_dilation_matches_torch():
    torch.manual_seed(0)
    pools = nn.ModuleList([nn.MaxPool2d(3, 2, ceil_mode=True), nn.MaxPool2d(2, 2, 1, dilation=2),
                           nn.AvgPool2d(3, 2, 1, ceil_mode=True), nn.AvgPool2d(3, 2, 1, ceil_mode=True,
                                                                               count_include_pad=False)])
    model = Fn(lambda s, x: [p(x) for p in s.pools] + [F.max_pool2d(x, 3, 2, 1, (1, 2), True, True)], pools=pools)
    x = torch.randn(1, 2, 7, 6)
    ys, ns = check_bit_exact(model, x)
    for y, n in zip(torch.utils._pytree.tree_leaves(ys), torch.utils._pytree.tree_leaves(ns)):
        assert y.shape == n.shape and torch.allclose(y, n, atol=1e-6) and (y.dtype != torch.int64 or torch.equal(y, n))


class _HalfBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln, self.a, self.b = nn.LayerNorm(8), nn.Linear(8, 8), nn.Linear(8, 4)

    def forward(self, x):
        h = F.gelu(self.a(self.ln(x))) + x * 0.1 - 0.3  # x * 0.1: torch multiplies by the float32 0.1
        h = torch.softmax(h @ h.transpose(-1, -2) / 2.5, -1) @ h
        return torch.sigmoid(self.b(h)).masked_fill(h[..., :4] > 0, 0.25) + h.sum(-1, keepdim=True), h.float().mean()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_half_precision_models_run_their_format_and_equal_torch_here(dtype):
    """Elementwise IEEE operations in the model's own format; products, reductions and pinned
    functions on operands widened to float32, rounded once (torch's CPU rule): bit-identical to
    the reference in that format, and here to native torch as well."""
    torch.manual_seed(0)
    model = _HalfBlock().to(dtype)
    x = torch.randn(2, 3, 8).to(dtype)
    ys, ns = check_bit_exact(model, x)
    assert ys[0].dtype == dtype and ys[1].dtype == torch.float32
    assert torch.equal(bits(ys[0]), bits(ns[0]))


def test_half_precision_elementwise_operations_use_the_format_circuit():
    x = torch.randn(64).bfloat16()
    model = Fn(lambda s, x: x * x + x)
    with isp.exact.counting() as c:
        y = isp.exact.convert(model)(x)
    assert torch.equal(bits(y), bits(model(x)))
    conversions = [op for op in c.by_op if "_to_" in op]
    assert not conversions and c.by_op["mul"].gate_evaluations == 64 * isp.exact.cost("mul", torch.bfloat16).neurons
    with pytest.raises(TypeError, match=r"float64.*\.float\(\)"):
        isp.exact.convert(nn.Linear(2, 2).double())


def test_progress_bar_counts_gate_evaluations_and_is_off_by_default(capsys, monkeypatch):
    from isospike.exact.progress import ENV, progress_of

    monkeypatch.delenv(ENV, raising=False)
    model = nn.Linear(3, 2)
    x = torch.randn(2, 3)
    quiet = isp.exact.convert(model)
    quiet(x)
    assert "gate evaluations" not in capsys.readouterr().err
    loud = isp.exact.convert(model, progress=True, count=False)
    with torch.no_grad():
        loud(x)
        loud(x)
    bar = progress_of(loud)
    assert bar.calls == 2 and bar.bar.n > 0
    with isp.exact.counting() as c:
        isp.exact.convert(model)(x)
    assert bar.bar.n == 2 * c.gate_evaluations
    bar.close()
    monkeypatch.setenv(ENV, "1")
    assert isp.exact.convert(model)._exact_progress


def test_kernels_take_no_more_threads_than_their_work():
    import numba

    from isospike._threads import kept_threads

    seen = []
    with kept_threads(1):
        seen.append(numba.get_num_threads())
    with kept_threads():
        seen.append(numba.get_num_threads())
    assert seen[0] == 1 and seen[1] <= torch.get_num_threads()


def test_exact_accumulation_is_correctly_rounded_and_identical_in_gates_and_reference():
    gmpy2 = pytest.importorskip("gmpy2")
    from isospike.exact.accumulate import exact_dot_gates, exact_dot_reference
    from isospike.exact.ops import gate_options

    torch.manual_seed(0)
    inf, nan = float("inf"), float("nan")
    a = torch.cat([torch.randn(6, 9),
                   torch.randn(6, 9) * torch.pow(2.0, torch.randint(-140, 120, (6, 9)).float())])
    b = torch.cat([torch.randn(6, 9), torch.randn(6, 9) * torch.pow(2.0, torch.randint(-140, 0, (6, 9)).float())])
    a[0, :3], b[0, :3] = torch.tensor([1e30, 1.0, -1e30]), torch.tensor([1e8, 1.0, 1e8])  # cancellation: 9 terms
    a[1], b[1] = 3e38, 10.0  # overflow
    a[2], b[2] = 1e-45, 0.5  # subnormal products below float32's range, summed exactly
    g, r = exact_dot_gates(a, b, gate_options("t", {})), exact_dot_reference(a, b)
    assert torch.equal(bits(g), bits(r))
    want = []
    for ra, rb in zip(a.tolist(), b.tolist()):
        with gmpy2.context(gmpy2.context(precision=1200)):
            s = sum((gmpy2.mpfr(x) * gmpy2.mpfr(y) for x, y in zip(ra, rb)), gmpy2.mpfr(0))
        with gmpy2.context(gmpy2.ieee(32)):
            want.append(float(gmpy2.mpfr(s)))
    assert torch.equal(bits(r), bits(torch.tensor(want, dtype=torch.float32)))
    specials = exact_dot_gates(torch.tensor([[inf, -inf], [inf, 0.0], [-0.0, 0.0], [inf, 2.0], [nan, 1.0]]),
                               torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 1.0], [1.0, 1.0]]),
                               gate_options("t", {}))
    assert torch.equal(bits(specials), bits(torch.tensor([nan, nan, 0.0, -inf, nan]).where(
        torch.tensor([False, False, True, True, False]), torch.tensor(nan).abs())))


def test_models_convert_with_exact_accumulation():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(12, 4), nn.Softmax(-1))
    x = torch.randn(2, 2, 4, 4)
    snn, ref = isp.exact.convert(model, accumulate="exact"), isp.exact.reference(model, accumulate="exact")
    y = snn(x)
    assert torch.equal(bits(y), bits(ref(x))) and torch.equal(bits(snn.reference()(x)), bits(y))
    assert torch.allclose(y, model(x), atol=1e-6)
    assert snn.counts().by_op["kulisch_term"].lanes == 2 * 3 * 4 * 18 + 2 * 4 * 12  # every product a Kulisch term
    with pytest.raises(ValueError, match="'pairwise'.*'exact'"):
        isp.exact.convert(model, accumulate="kahan")


_X = torch.cat([torch.randn(2, 5) * 3, torch.tensor([[0.0, -0.0, 0.5, -0.5, 2.5], [-2.5, 1e10, float("nan"), float("inf"),
                                                                                 -float("inf")]])])
MORE = {  # name: (function, 0 where torch's bits are the only right answer, else the ULP seen against torch)
    "norms": (lambda x: (F.normalize(x[:2], dim=-1), torch.linalg.vector_norm(x, 1, -1), x.norm(float("inf"), -1),
                         torch.linalg.vector_norm(x, 0, -1), torch.linalg.vector_norm(x[:2], 3, -1),
                         F.cosine_similarity(x[:2], x[:2].flip(0))), 2),  # torch's own sums vary with its threads
    "logsumexp": (lambda x: torch.logsumexp(x, -1), 1),
    "rounding": (lambda x: (torch.round(x), torch.floor(x), torch.ceil(x), torch.trunc(x), torch.frac(x), torch.sign(x),
                            torch.copysign(x, x.flip(0))), 0),
    "tests": (lambda x: (torch.isinf(x), torch.isnan(x), torch.isfinite(x), torch.isposinf(x), torch.isneginf(x)), 0),
    "products": (lambda x: (x.prod(-1), x[:2].prod(), torch.cumprod(x, -1)), 2),
    "fused": (lambda x: (torch.addcmul(x, x, x.flip(0), value=0.5), torch.addcdiv(x, x, x.flip(0), value=0.3),
                         torch.lerp(x, x.flip(0), 0.3), torch.var_mean(x[:2], -1)), 4),  # torch's lerp: fma
    "order_statistics": (lambda x: (torch.kthvalue(x, 2), x.median(-1), x[:2].median()), 0),
    "adaptive_max_pool": (lambda x: (F.adaptive_max_pool2d(x[None], (2, 3), return_indices=True),
                                     F.adaptive_max_pool1d(x[:2, None], 2)), 0),
}


@pytest.mark.parametrize("case", sorted(MORE))
def test_norms_rounding_products_and_order_statistics(case):
    from isospike.metrics import ulp_distance

    f, tol = MORE[case]
    ys, ns = check_bit_exact(Fn(lambda s, x: f(x)), _X)
    for y, n in zip(torch.utils._pytree.tree_leaves(ys), torch.utils._pytree.tree_leaves(ns)):
        if y.is_floating_point():
            # torch's own sums and fused kernels change with its thread count and vector path, so
            # computed results are held to closeness (their ULP against MPFR is measured in
            # benchmarks/exact_functions_ulp.py); exact operations to torch's bits
            assert torch.allclose(y, n, rtol=1e-5, atol=1e-6, equal_nan=True), case
            if tol == 0:  # rounding and selection: torch's answer is the only right one
                assert int(ulp_distance(y, n).max()) == 0, case
        else:
            assert torch.equal(y, n), case


def test_an_lstm_over_packed_variable_length_sequences_is_bit_exact():
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.head = nn.LSTM(4, 5, batch_first=True), nn.Linear(5, 2)

        def forward(self, x, lengths):
            out, _ = self.rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
            return self.head(pad_packed_sequence(out, batch_first=True)[0])

    torch.manual_seed(0)
    model, x, lengths = Tagger().eval(), torch.randn(3, 6, 4), torch.tensor([6, 3, 5])
    with torch.no_grad():
        y, r, n = isp.exact.convert(model)(x, lengths), isp.exact.reference(model)(x, lengths), model(x, lengths)
    assert torch.equal(bits(y), bits(r)) and torch.allclose(y, n, atol=1e-6)
    assert torch.equal(y[1, 3:], model.head.bias.expand(3, 2).detach())  # padded steps: zeros through the head
