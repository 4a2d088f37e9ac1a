"""Model forms the exact conversion must get right or refuse: in-place aliasing, shape
arithmetic, implicit softmax dimensions, empty and unbatched inputs, vector products, dtypes.
The independent reference is the PyTorch model itself (and numpy float32)."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

import isospike as isp
from isospike.conversion.graph import resolve_inplace

ulp = isp.metrics.ulp_distance


def bits(t):
    return t.contiguous().view(torch.int32)


def run_all(model, *xs):
    """(gate network output, reference output, torch output) on the same inputs."""
    model = model.eval()
    snn, ref = isp.exact.convert(model), isp.exact.reference(model)
    with torch.no_grad():  # clones: in-place models overwrite their inputs, converted ones as the original
        native = model(*[x.clone() for x in xs])
    return snn(*[x.clone() for x in xs]), ref(*[x.clone() for x in xs]), native


def assert_exact_and_close(model, *xs, atol=1e-5):
    y, r, native = run_all(model, *xs)
    assert torch.equal(bits(y), bits(r))
    assert y.shape == native.shape
    assert (r - native).abs().max() <= atol * (1 + native.abs().max()) if r.numel() else True
    return y, native


# ---------------------------------------------------------------- softmax without dim
class _FSoftmaxNoDim(nn.Module):
    def forward(self, x):
        return F.softmax(x)


@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 3, 4), (2, 3, 2, 2)])
@pytest.mark.parametrize("make", [lambda: nn.Softmax(), lambda: nn.Sequential(nn.Softmax()), _FSoftmaxNoDim])
def test_softmax_without_dim_uses_torchs_implicit_dimension(make, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape) * 3
    model = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's own deprecation warning
        with torch.no_grad():
            native = model(x)
        r = isp.exact.reference(model)(x)
    assert ulp(r, native).max() <= 4  # the last dimension would be off by orders of magnitude


def test_softmax_without_dim_gates_equal_reference():
    x = torch.randn(2, 3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert_exact_and_close(nn.Sequential(nn.Softmax()), x)


# ---------------------------------------------------------------- in-place aliasing
class _InplaceReluModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.lin(x)
        return y + self.act(y)  # torch: 2 * relu(y)


class _InplaceReluFunctional(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        y = self.lin(x)
        a = F.relu(y, inplace=True)
        b = F.relu(y * 2, True)  # positional inplace flag
        return y * 3 + a - b


class _InplaceOperators(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        y = self.lin(x)
        alias = y
        before = y * 0.5  # read before the mutation: keeps the old value
        y += x  # operator.iadd: alias sees it too
        y.mul_(2)
        y.relu_()
        return alias - before


class _InplaceOnInput(nn.Module):
    def forward(self, x):
        b = x * 1.5
        x.relu_()
        return x + b


@pytest.mark.parametrize("make", [_InplaceReluModule, _InplaceReluFunctional, _InplaceOperators, _InplaceOnInput])
def test_inplace_operations_are_seen_by_later_readers(make):
    torch.manual_seed(0)
    x = torch.randn(3, 4)
    assert_exact_and_close(make(), x, atol=1e-6)
    # the converted network runs the original's own forward: it overwrites its input as the original does
    model = make().eval()
    x_native, x_gates = x.clone(), x.clone()
    with torch.no_grad():
        model(x_native)
    isp.exact.convert(model)(x_gates)
    assert torch.equal(bits(x_gates), bits(x_native))


def test_resolve_inplace_redirects_only_later_uses():
    class M(nn.Module):
        def forward(self, x):
            a = x * 3
            r = torch.relu_(x)
            return a + x + r

    gm = fx.symbolic_trace(M())
    resolve_inplace(gm)
    nodes = {n.name: n for n in gm.graph.nodes}
    assert nodes["mul"].args[0] is nodes["x"]  # before the mutation: the placeholder
    assert nodes["add"].args == (nodes["mul"], nodes["relu_"])  # after it: the mutated value
    assert nodes["relu_"].meta["mutates"] is nodes["x"]
    x = torch.tensor([-1.0, 2.0])
    assert gm(x.clone()).tolist() == M()(x.clone()).tolist() == [-3.0 + 0 + 0, 6.0 + 2 + 2]

    class NotInplace(nn.Module):  # operator.and_ ends in "_" but is not in place
        def forward(self, x):
            return (x & 1) + x

    gm = fx.symbolic_trace(NotInplace())
    resolve_inplace(gm)
    assert not any("mutates" in n.meta for n in gm.graph.nodes)


def test_inplace_on_a_view_changes_its_base_as_in_torch():
    class ViewMutation(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            y = self.lin(x)
            y.view(-1).relu_()
            return y + 1

    class RebindAfterView(nn.Module):  # the usual pattern: the base is not read again
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            y = self.lin(x).flatten(1)
            return F.relu(y, inplace=True)

    # eager capture runs the forward as torch does: the mutation through the view reaches y
    assert_exact_and_close(ViewMutation(), torch.randn(3, 4))
    assert_exact_and_close(RebindAfterView(), torch.randn(3, 4))


# ---------------------------------------------------------------- dtypes
def test_float64_models_and_inputs_are_refused():
    dtype = torch.float64
    for api in (isp.exact.convert, isp.exact.reference):
        with pytest.raises(TypeError, match=r"model\.float\(\)"):
            api(nn.Linear(2, 2).to(dtype))
        net = api(nn.Sequential(nn.Sigmoid()))  # parameter-free: only the input tells
        with pytest.raises(TypeError, match=rf"{dtype}.*x\.float\(\)"):
            net(torch.ones(2, dtype=dtype))
        with pytest.raises(TypeError, match=rf"{dtype}.*x\.float\(\)"):
            api(nn.Linear(2, 2))(torch.ones(1, 2, dtype=dtype))


def test_integer_inputs_still_pass():
    model = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 2))
    ids = torch.tensor([[0, 4, 2]])
    assert_exact_and_close(model, ids)


# ---------------------------------------------------------------- empty, unbatched, zero-size
EMPTY = {
    "linear": (lambda: nn.Linear(8, 4), (0, 8)),
    "layernorm": (lambda: nn.LayerNorm(8), (0, 8)),
    "rmsnorm_tokens": (lambda: nn.RMSNorm(8), (0, 3, 8)),
    "conv": (lambda: nn.Conv2d(3, 2, 3), (0, 3, 6, 6)),
    "maxpool": (lambda: nn.MaxPool2d(2), (0, 3, 6, 6)),
    "avgpool": (lambda: nn.AvgPool2d(2), (0, 3, 6, 6)),
    "adaptive": (lambda: nn.AdaptiveAvgPool2d(2), (0, 3, 6, 6)),
    "batchnorm": (lambda: nn.BatchNorm2d(3), (0, 3, 4, 4)),
    "mlp": (lambda: nn.Sequential(nn.Linear(8, 6), nn.GELU(), nn.LayerNorm(6), nn.Softmax(-1)), (0, 8)),
    "softmax_empty_dim": (lambda: nn.Softmax(-1), (2, 0)),
    "linear_to_nothing": (lambda: nn.Linear(3, 0), (2, 3)),
}


@pytest.mark.parametrize("case", sorted(EMPTY))
def test_empty_tensors_give_torchs_empty_shape(case):
    make, shape = EMPTY[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zero-element initialisation warning
        model = make()
    y, native = assert_exact_and_close(model, torch.randn(*shape))
    assert y.numel() == 0 and y.dtype == torch.float32


def test_linear_from_zero_features_is_its_bias():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = nn.Linear(0, 3)
    y, native = assert_exact_and_close(model, torch.randn(2, 0))
    assert torch.equal(bits(y), bits(model.bias.detach().expand(2, 3)))  # +0 + b = b, as torch


@pytest.mark.parametrize("make", [lambda: nn.Conv2d(3, 2, 3, padding=1, stride=2), lambda: nn.MaxPool2d(2, padding=1),
                                  lambda: nn.AvgPool2d(3, 2), lambda: nn.AdaptiveAvgPool2d((2, 3))])
def test_unbatched_2d_inputs_work_as_in_torch(make):
    torch.manual_seed(0)
    model = make()
    x = torch.randn(3, 6, 6)
    y, native = assert_exact_and_close(model, x)
    assert torch.equal(bits(y), bits(isp.exact.reference(model)(x[None])[0]))  # a batch of one


# ---------------------------------------------------------------- products and functional forms
class _VectorProducts(nn.Module):
    def __init__(self):
        super().__init__()
        self.v = nn.Parameter(torch.randn(4))
        self.m = nn.Parameter(torch.randn(4, 5))

    def forward(self, x):  # x [B, 3, 4]
        return (x @ self.v)[..., None] + (self.v @ self.m)[:3, None] + self.v @ self.v


class _FunctionalForms(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 3))
        self.v = nn.Parameter(torch.randn(3))

    def forward(self, x):
        h = -torch.mm(x, self.w)
        h = F.gelu(h, approximate="tanh") - torch.neg(h.neg())
        a = h.softmax(-1) + F.softmax(h, dim=0, dtype=torch.float32) + torch.softmax(h, 1)
        return a.matmul(self.v)


class _SubclassedLinear(nn.Linear):
    """fx traces into a subclass's forward: F.linear with the weight and bias as attributes."""

    def forward(self, x):
        return F.linear(x, self.weight, self.bias) * 2


@pytest.mark.parametrize("make,shape", [(_VectorProducts, (2, 3, 4)), (_FunctionalForms, (2, 4)),
                                        (lambda: nn.Sequential(_SubclassedLinear(4, 3)), (2, 4))])
def test_matrix_vector_products_and_functional_forms(make, shape):
    torch.manual_seed(0)
    assert_exact_and_close(make(), torch.randn(*shape))


def test_subclassed_linear_trains_like_torch():
    torch.manual_seed(0)
    layer = _SubclassedLinear(4, 3)
    snn = isp.exact.convert(nn.Sequential(layer)).train()
    x = torch.randn(2, 4)
    snn(x).square().sum().backward()
    layer(x).square().sum().backward()
    for p, q in zip(snn.parameters(), layer.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5)


def test_functional_variants_that_change_the_value_are_refused():
    class Cases(nn.Module):
        def __init__(self, f):
            super().__init__()
            self.f = f

        def forward(self, x):
            return self.f(x)

    refused = {
        r"^aten\._to_copy at '<Cases>'.*float64": lambda x: F.softmax(x, dim=-1, dtype=torch.float64),
        r"^aten\.floor_divide at '<Cases>'": lambda x: x // 2,
        r"^aten\.atan at '<Cases>'.*no gate circuit": lambda x: torch.atan(x),
        r"^aten\.cosh at '<Cases>'": lambda x: torch.cosh(x),
    }
    x = torch.rand(3, 4) + 0.5
    for pattern, f in refused.items():
        with pytest.raises(isp.UnsupportedLayerError, match=pattern):
            isp.exact.convert(Cases(f))(x)
    # options that only change the formula are computed: alpha, sums of everything
    assert_exact_and_close(Cases(lambda x: torch.sub(x, x.flip(0), alpha=2)), x)
    assert_exact_and_close(Cases(lambda x: x.sum() + x.sum(0)), x)
    assert_exact_and_close(Cases(lambda x: x.cumprod(-1)), x)  # a circuit since issue 32


def test_errors_name_the_module_path_of_a_functional_call():
    class Inner(nn.Module):
        def forward(self, x):
            return torch.lgamma(x)

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Sequential(Inner())])

        def forward(self, x):
            return self.blocks[0](x)

    with pytest.raises(isp.UnsupportedLayerError, match=r"^aten\.lgamma at 'blocks\.0\.0'.*docs/exact.md") as e:
        isp.exact.convert(Outer())(torch.rand(2, 3))
    assert e.value.layer_type == "aten.lgamma" and e.value.path == "blocks.0.0" and e.value.coding == "exact"


# ---------------------------------------------------------------- shape arithmetic
class _FlattenBySizes(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), x.size(1) * x.size(2))


class _SplitHeads(nn.Module):
    def forward(self, x):
        B, T, D = x.shape
        return x.view(B, T, 2, D // 2).transpose(1, 2)


class _ScaleBySize(nn.Module):
    def forward(self, x):
        return x * x.size(-1) ** -0.5


class _AugmentedSize(nn.Module):
    def forward(self, x):
        n = x.size(-1)
        m = n
        n += 2  # rebinds n only: m keeps the size
        return x.view(-1, m) * n


@pytest.mark.parametrize("make,products", [(_FlattenBySizes, 0), (_SplitHeads, 0), (_ScaleBySize, 1),
                                           (_AugmentedSize, 1)])
def test_shape_arithmetic_stays_python(make, products):
    x = torch.randn(2, 3, 6)
    assert_exact_and_close(make(), x)
    # only products with a scale are arithmetic; the size arithmetic runs no gate
    snn = isp.exact.convert(make())
    snn(x)
    assert snn.counts().by_op.get("mul", isp.exact.OpCounts()).calls == products
    assert set(snn.counts().by_op) <= {"mul"}


def test_scaling_by_a_size_rounds_the_scale_to_float32_like_torch():
    x = torch.randn(4, 3)
    y, _, native = run_all(_ScaleBySize(), x)
    expected = torch.from_numpy(x.numpy() * np.float32(3 ** -0.5))  # numpy float32 product
    assert torch.equal(bits(y), bits(expected)) and torch.equal(bits(native), bits(expected))


class _Attention(nn.Module):
    """A hand-written multi-head self-attention block with shapes read from the input."""

    def __init__(self, d: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = q.view(B, T, self.heads, D // self.heads).transpose(1, 2)
        k = k.reshape(B, T, self.heads, -1).permute(0, 2, 1, 3)
        v = v.view(B, T, self.heads, D // self.heads).transpose(1, 2)
        att = F.softmax(q @ k.transpose(-2, -1) * (D // self.heads) ** -0.5, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, D)
        return self.norm(x + self.out(y))


def test_hand_written_attention_is_bit_exact_and_close_to_torch():
    torch.manual_seed(0)
    model = _Attention()
    x = torch.randn(2, 4, 8)
    y, native = assert_exact_and_close(model, x)
    assert ulp(y, native).max() <= 64


# ---------------------------------------------------------------- documented limits
def test_layernorm_of_huge_rows_agrees_between_gates_and_reference():
    x = torch.tensor([[4e37, 0.0, 0.0, 7e36, 0.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    y, r, native = run_all(nn.LayerNorm(5, elementwise_affine=False), x)
    assert torch.equal(bits(y), bits(r))
    assert (r[0] == 0).all() and math.isfinite(r[0].sum())  # (x - mean)^2 overflows: documented zeros
    assert ulp(r[1], native[1]).max() <= 4
