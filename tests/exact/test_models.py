"""Whole models through the gate circuits: identical bits to the pinned float32 reference."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import isospike as isp
from isospike.exact import functions as fn
from isospike.exact.arith import GateArith, TorchArith


def bits(t):
    return t.contiguous().view(torch.int32)


def specials_like(x):
    """x with NaN, +-inf, subnormal and -0 sprinkled in."""
    y = x.clone().flatten()
    vals = torch.tensor([math.nan, math.inf, -math.inf, 1e-40, -0.0, 3e38])
    y[: len(vals)] = vals
    return y.reshape(x.shape)


class Functional(nn.Module):
    """Residual additions, matrix products and functional calls traced by torch.fx."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 6)
        self.b = nn.Linear(6, 6)

    def forward(self, x):
        h = F.gelu(self.a(x)) + x
        att = torch.softmax(torch.matmul(h, h.transpose(-1, -2)) * 0.5, dim=-1)
        return torch.sigmoid(self.b(att @ h)) - torch.tanh(h) / 3.0


CASES = {
    "linear": (lambda: nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3)), (4, 7)),
    "conv_bn_pool": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, stride=2), nn.BatchNorm2d(3), nn.SiLU(),
                                           nn.MaxPool2d(2), nn.Flatten()), (2, 2, 9, 9)),
    "avgpool_adaptive": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1)), (3, 1, 10, 10)),
    "norms": (lambda: nn.Sequential(nn.LayerNorm(8), nn.GELU(), nn.RMSNorm(8), nn.Sigmoid(), nn.Linear(8, 4), nn.Softmax(-1)), (5, 8)),
    "gelu_tanh_dropout": (lambda: nn.Sequential(nn.Linear(6, 6), nn.GELU(approximate="tanh"), nn.Dropout(0.3), nn.Identity()), (3, 6)),
    "functional": (Functional, (2, 3, 6)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_supported_layer_is_bit_exact_against_the_reference(case):
    make, shape = CASES[case]
    torch.manual_seed(0)
    model = make().eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(*shape) * 2
    snn, ref = isp.exact.convert(model), isp.exact.reference(model)
    y = snn(x)
    assert torch.equal(bits(y), bits(ref(x)))
    with torch.no_grad():
        native = model(x)
    assert (y - native).abs().max() < 1e-4 * (1 + native.abs().max())  # same function, other rounding
    # with NaN, infinities, subnormals and -0 among the inputs: still identical bits
    xs = specials_like(x)
    assert torch.equal(bits(snn(xs)), bits(ref(xs)))


def test_model_is_copied_and_counts_are_recorded():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU()).eval()
    before = model[0].weight.clone()
    snn = isp.exact.convert(model)
    snn(torch.randn(2, 4))
    assert torch.equal(model[0].weight, before) and isinstance(model[1], nn.ReLU)
    per_layer = snn.layer_counts()
    assert set(per_layer) == {"0", "1"}  # paths in the original model
    c = snn.counts()
    assert c.gate_evaluations > c.spikes > 0 and c.by_op["mul"].lanes == 2 * 3 * 4
    assert isp.exact.convert(model, count=False)(torch.randn(1, 4)).shape == (1, 3)


def test_operations_without_circuits_are_named_with_their_module_path():
    """Capture sees ATen operations: a layer whose operations have no circuit (atan) is refused at the call, naming the ATen operation and the module running it;
    nn.LSTM, whose fused CPU kernel is switched off during capture, runs its cells."""
    torch.manual_seed(0)
    x = torch.randn(4, 2, 3)
    lstm = _WithLSTM()
    assert torch.equal(bits(isp.exact.convert(lstm)(x[:2])), bits(isp.exact.reference(lstm)(x[:2])))

    class Atan(nn.Module):
        def forward(self, x):
            return torch.atan(x)

    class Activation(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = Atan()

        def forward(self, x):
            return self.act(x)

    with pytest.raises(isp.UnsupportedLayerError, match=r"^aten\.atan at 'act'.*no gate circuit") as e:
        isp.exact.convert(Activation())(x)
    assert e.value.layer_type == "aten.atan" and e.value.path == "act"
    grouped = nn.Conv2d(4, 4, 3, groups=2).eval()  # grouped and depthwise convolutions have circuits
    xi = torch.randn(1, 4, 5, 5)
    assert torch.equal(bits(isp.exact.convert(grouped)(xi)), bits(isp.exact.reference(grouped)(xi)))
    with pytest.raises(TypeError, match="nn.Module"):
        isp.exact.convert(lambda x: x)


class _WithLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(3, 3)

    def forward(self, x):
        return self.rnn(x)[0]


def test_functions_against_reference_on_special_values():
    x = torch.tensor([0.0, -0.0, 1e-45, -1e-40, 0.5, -3.0, 88.7, 89.0, -104.0, -150.0, math.inf, -math.inf, math.nan,
                      1e30, -1e30, 3.9, 10.0])
    T, G = TorchArith(), GateArith()
    for name in ("exp", "reciprocal", "rsqrt", "tanh", "erf", "gelu", "sigmoid", "silu", "relu"):
        f = getattr(fn, name)
        assert torch.equal(bits(f(G, x)), bits(f(T, x))), name
    with torch.no_grad():
        assert torch.equal(fn.exp(T, x)[[4, 5]], torch.exp(x)[[4, 5]])
    assert fn.exp(T, torch.tensor([math.inf, -math.inf])).tolist() == [math.inf, 0.0]
    assert torch.isnan(fn.erf(T, torch.tensor([math.nan]))).all()


def test_tree_sum_order_is_pairwise_and_fixed():
    A = TorchArith()
    x = torch.tensor([1e8, 1.0, -1e8, 1.0, 0.5])
    # ((1e8 + 1) + (-1e8 + 1)) + 0.5 in float32: 1e8 + 1 rounds to 1e8
    assert fn.tree_sum(A, x).item() == ((torch.tensor(1e8) + 1) + (torch.tensor(-1e8) + 1) + 0.5).item()
    with pytest.raises(ValueError):
        fn.tree_sum(A, torch.empty(0))


def test_straight_through_training_is_step_for_step_identical_to_the_reference(digits):
    from isospike.models import SmallCNN

    torch.manual_seed(0)
    base = SmallCNN(input_size=8)
    base.eval()
    snn, ref = isp.exact.convert(base, count=False), isp.exact.reference(base)
    native = base
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (snn, ref, native)]
    x, y = digits.train.x[:8], digits.train.y[:8]
    for _ in range(2):
        for m, opt in zip((snn, ref, native), opts):
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
    for (n1, p1), (n2, p2), (_, p3) in zip(snn.named_parameters(), ref.named_parameters(), native.named_parameters()):
        assert torch.equal(p1, p2), n1  # the gate SNN trains exactly like its reference ANN
        assert torch.allclose(p1, p3, atol=1e-5), n1  # and like the native ANN up to rounding


@pytest.fixture(scope="module")
def minilm():
    from isospike.models.minilm import load_minilm

    return load_minilm()


def test_one_minilm_bert_layer_with_four_tokens(minilm):
    tok, model = minilm
    layer = model.encoder.layer[0]
    torch.manual_seed(0)
    h = torch.randn(1, 4, model.config.hidden_size)
    keep = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    mask = (1.0 - keep[:, None, None, :]) * torch.finfo(torch.float32).min  # BERT's additive mask
    snn, ref = isp.exact.convert(layer), isp.exact.reference(layer)
    y = snn(h, attention_mask=mask)  # called exactly as the original layer
    y, r = (y[0], ref(h, attention_mask=mask)[0]) if isinstance(y, tuple) else (y, ref(h, attention_mask=mask))
    assert torch.equal(bits(y), bits(r))
    with torch.no_grad():
        native = layer(h, attention_mask=mask)
    native = native[0] if isinstance(native, tuple) else native
    assert (y - native).abs().max() < 1e-4
    assert snn.counts().gate_evaluations > 1e9  # a real transformer layer's worth of neurons


class _FunctionalForms(nn.Module):
    """F.relu with a keyword, x.relu(), F.silu, and one Linear used twice (shared weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(4, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = F.relu(self.shared(x), inplace=False)
        h = F.silu(self.shared(h)).relu()
        return self.head(h)


def test_functional_activation_forms_and_shared_modules_are_exact():
    torch.manual_seed(0)
    model = _FunctionalForms().eval()
    x = specials_like(torch.randn(5, 4))
    snn, ref = isp.exact.convert(model), isp.exact.reference(model)
    assert torch.equal(bits(snn(x)), bits(ref(x)))
    shared = snn.layer_counts()["shared"].by_op
    assert shared["mul"].calls == 2 and shared["add"].calls > 2  # both calls of the shared Linear ran gates
    y = torch.randn(5, 4)
    assert isp.metrics.ulp_distance(snn(y), model(y)).abs().max() <= 4


def test_activation_keywords_are_kept_or_refused():
    class Tanhish(nn.Module):
        def forward(self, x):
            return F.gelu(x, approximate="tanh")

    class Bogus(nn.Module):
        def forward(self, x):
            return F.gelu(x, approximate="erf")

    x = torch.linspace(-4, 4, 9)
    y = isp.exact.reference(Tanhish())(x)
    assert isp.metrics.ulp_distance(y, F.gelu(x, approximate="tanh")).max() <= 8  # not the erf form
    assert torch.equal(bits(isp.exact.convert(Tanhish())(x)), bits(y))
    with pytest.raises(isp.UnsupportedLayerError, match="aten.gelu.*approximate"):
        isp.exact.convert(Bogus())(x)
