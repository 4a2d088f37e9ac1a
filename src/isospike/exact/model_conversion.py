"""``isospike.exact.convert`` and ``isospike.exact.reference``: any eager PyTorch model, its
floating-point operations captured at the ATen level while its own forward runs.

    snn = isp.exact.convert(llm)          # a LlamaForCausalLM still: same class, kwargs, .generate()
    ref = isp.exact.reference(llm)        # the same pinned float32 sequence in plain torch
    torch.equal(snn(ids).logits, ref(ids).logits)   # bit for bit

Nothing is traced: the converted copy's ``forward`` is the original one, run inside a
:class:`~isospike.exact.capture.GateCapture` that computes each floating-point ATen operation with
the gate circuits (``convert``) or with the reference arithmetic (``reference``). Python control
flow, ``**kwargs``, decorators, KV caches and ``generate()`` therefore behave as in the original.
Attention runs through torch's math decomposition (``SDPBackend.MATH``), so every operation of it
is pinned. See docs/exact.md for the operations with circuits, those that pass through and those
that are refused.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._pytree import tree_flatten

from isospike.activity import LayerActivity
from isospike.exact.arith import GateArith, TorchArith
from isospike.exact.capture.dispatch import GateCapture, active_capture, module_path_hooks
from isospike.exact.counting import ExactCounts
from isospike.exact.primitives import Arith
from isospike.exact.progress import progress_of, wanted

CODING = "exact"


FORMATS = (torch.float32, torch.bfloat16, torch.float16)


def _check_float32_model(model: nn.Module, api: str) -> None:
    """Refuse floating parameters/buffers other than float32, bfloat16 and float16 (the formats
    with circuits; float64 has none)."""
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point() and t.dtype not in FORMATS:
            raise TypeError(f"isp.exact.{api}: {name!r} is {t.dtype}, but the exact circuits and their reference compute "
                            "float32, bfloat16 and float16; call model.float() (or .bfloat16() / .half()) first")


def _check_float32_inputs(args: tuple, kwargs: dict) -> None:
    """Refuse floating inputs other than float32, bfloat16 and float16 (integer inputs such as
    token ids pass)."""
    leaves, _ = tree_flatten((args, kwargs))
    for v in leaves:
        if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dtype not in FORMATS:
            raise TypeError(f"exact networks compute in float32, bfloat16 or float16, got a {v.dtype} input; pass "
                            "x.float() (or the model's own dtype)")


@contextlib.contextmanager
def decomposed_kernels() -> Iterator[None]:
    """PyTorch's fused CPU kernels off for the block, so that their steps reach the capture one by
    one: scaled dot-product attention through its math decomposition (``SDPBackend.MATH``), the
    fused attention fast path of ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` off
    (``torch.backends.mha.set_fastpath_enabled(False)``) and oneDNN off, so that ``nn.LSTM`` runs
    its cells (linear, sigmoid, tanh, products) instead of ``aten.mkldnn_rnn_layer``. The
    previous settings are restored afterwards. (The two switches are process-wide in PyTorch:
    another thread running native code meanwhile also takes the unfused kernels.)"""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    mkldnn = torch._C._get_mkldnn_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    torch._C._set_mkldnn_enabled(False)
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            yield
    finally:
        torch._C._set_mkldnn_enabled(mkldnn)
        torch.backends.mha.set_fastpath_enabled(fastpath)


class ExactNetwork(nn.Module):
    """Base of the classes :func:`convert` and :func:`reference` build: a converted model is a
    copy of the original whose class derives from this one and from the original's class
    (``ExactLlamaForCausalLM(ExactNetwork, LlamaForCausalLM)``), so it keeps the original's
    methods, attributes, call signature and return type.

    Attributes: ``arith`` (:class:`GateArith` or :class:`TorchArith`), ``source`` (the
    original class name). ``layer_counts()``: per module path, the gate activity of the last
    forward (its own operations, not its children's); ``counts()``: their sum. ``isospike.counting``
    reads the same activity as :class:`~isospike.activity.LayerActivity` rows (:meth:`activity`)."""

    coding = "exact"  # its registered coding (isospike.conversion.exact)
    _exact_base: type[nn.Module]
    _exact_arith: Arith
    _exact_count: bool
    _exact_progress: bool = False
    _exact_counts: dict[str, ExactCounts]
    _exact_samples: int = 0  # samples of the last counted call (leading size of its first tensor input)

    @property
    def arith(self) -> Arith:
        return self._exact_arith

    @property
    def source(self) -> str:
        return self._exact_base.__name__

    @property
    def counting_gates(self) -> bool:
        """Whether forward records gate activity (convert with count=True)."""
        return self._exact_count

    def layer_counts(self) -> dict[str, ExactCounts]:
        return dict(self._exact_counts)

    def check_counting(self) -> None:
        """Raise ValueError when this network does not count its gates (asked by
        :func:`isospike.counting` before it observes a call)."""
        if not self._exact_count:
            raise ValueError("this exact network does not count its gates (a reference from isospike.exact.reference / "
                             "isospike.equivalent runs plain float32 operations, or convert(..., count=False)): use "
                             "isospike.exact.convert(model) for the gate circuits' activity, or the original model as "
                             "an ANN")

    def activity(self, args: tuple, output: Any) -> list[LayerActivity]:
        """The gate activity of the call just made, per module path (``"<model>"``: operations
        outside every submodule), as rows of kind "gates" (see :meth:`ExactCounts.activity`):
        totals over the call's samples, one time step (read by :func:`isospike.counting`)."""
        self.check_counting()
        return [c.activity(path or "<model>", self._exact_samples) for path, c in self._exact_counts.items()]

    def counts(self) -> ExactCounts:
        total = ExactCounts()
        for c in self._exact_counts.values():
            for op, oc in c.by_op.items():
                total.record(op, oc)
        return total

    def reference(self) -> ExactNetwork:
        """The float32 reference of this network (same weights, same pinned operation sequence)."""
        return _exact_copy(self, TorchArith(getattr(self._exact_arith, "accumulate", "pairwise")), False)

    def _run_captured(self, forward: Callable, args: tuple, kwargs: dict) -> Any:
        if active_capture() is not None:  # called from inside a captured forward: already captured
            return forward(self, *args, **kwargs)
        _check_float32_inputs(args, kwargs)
        path_of = {id(m): name for name, m in self.named_modules() if name}
        counts: dict[str, ExactCounts] | None = {} if self._exact_count else None
        bar = None
        if getattr(self, "_exact_progress", False):
            bar = progress_of(self)
            bar.call()
        capture = GateCapture(self._exact_arith, path_of, counts, self.source, bar)
        try:
            with decomposed_kernels(), capture:
                out = forward(self, *args, **kwargs)
        except Exception:
            if capture.refused is not None:  # whatever Python made of it on the way up
                raise capture.refused from None
            raise
        self._exact_counts = counts or {}
        first = next((v for v in tree_flatten((args, kwargs))[0] if isinstance(v, torch.Tensor)), None)
        self._exact_samples = int(first.shape[0]) if first is not None and first.dim() else 1
        return out

    def extra_repr(self) -> str:
        return f"arith={self.arith.name}, source={self.source}"


_CLASSES: dict[type, type] = {}


def _exact_class(base: type[nn.Module]) -> type:
    """``Exact<base>``: ``base`` whose forward runs under capture (signature kept for
    ``inspect``, which Hugging Face's generate() consults)."""
    if base not in _CLASSES:
        original = base.forward

        @functools.wraps(original)
        def forward(self: ExactNetwork, *args: Any, **kwargs: Any) -> Any:
            return self._run_captured(original, args, kwargs)

        _CLASSES[base] = type(f"Exact{base.__name__}", (ExactNetwork, base),
                              {"forward": forward, "__module__": __name__, "_exact_base": base})
    return _CLASSES[base]


def _carry_output_recording(source: type, exact: type) -> None:
    """transformers records hidden states and attentions (output_hidden_states=True, ...) for the
    classes in its output-capturing registry, keyed by class name: the Exact class gets its base's
    entry, or those outputs would be dropped without a word."""
    capturing = sys.modules.get("transformers.utils.output_capturing")
    registry = getattr(capturing, "_CAN_RECORD_REGISTRY", None)
    if isinstance(registry, dict) and str(source) in registry:
        dict.__setitem__(registry, str(exact), dict.__getitem__(registry, str(source)))


def _exact_copy(model: nn.Module, arith: Arith, count: bool, progress: bool = False) -> ExactNetwork:
    already = isinstance(model, ExactNetwork)
    base = model._exact_base if isinstance(model, ExactNetwork) else type(model)
    net = copy.deepcopy(model)
    net.__class__ = _exact_class(base)
    _carry_output_recording(base, net.__class__)
    assert isinstance(net, ExactNetwork)  # its class now derives from ExactNetwork
    net._exact_arith = arith
    net._exact_count = bool(count) and arith.name == "gates"
    net._exact_counts = {}
    net._exact_progress = progress
    if not already:
        module_path_hooks(net)
    return net.eval()


def _convert(model: nn.Module, arith: Arith, count: bool, api: str, progress: bool = False) -> ExactNetwork:
    if not isinstance(model, nn.Module):
        raise TypeError(f"isp.exact.{api}: model must be a torch.nn.Module, got {type(model).__name__}")
    _check_float32_model(model, api)
    return _exact_copy(model, arith, count, progress)


def convert(model: nn.Module, *, backend: str = "bitsliced", count: bool = True, shard: bool = False,
            progress: bool | None = None, accumulate: str = "pairwise", **options: Any) -> ExactNetwork:
    """A copy of ``model`` (in eval mode) whose every floating-point operation is computed by
    integrate-and-fire threshold-gate circuits on spatial-bit spikes. It is called exactly like
    ``model`` and its outputs equal ``reference(model)``'s bit for bit. ``backend``/``options``:
    see :mod:`isospike.exact.ops` (e.g. backend="neuron", leak=..., noise=...). ``count``: record
    per-module gate activity (``layer_counts()``). ``shard``: split the matrix products by output
    columns across the ranks of the initialized ``torch.distributed`` process group
    (:mod:`isospike.exact.distributed`; bit-identical to one process). ``progress``: a tqdm bar
    of the gate evaluations, its description naming the forward call (the token, when
    generating); None: on when the environment variable ``ISOSPIKE_EXACT_PROGRESS`` is 1.
    ``accumulate``: "pairwise" (each product rounded, a pairwise tree of additions) or "exact"
    (every dot product of matrix products, linear layers and convolutions through a Kulisch
    accumulator, rounded once: correctly rounded; :mod:`isospike.exact.accumulate`); the
    reference takes the same argument.

    ``model`` and the floating inputs of the returned network must be float32, bfloat16 or
    float16 (TypeError otherwise, e.g. for float64: call ``model.float()``); a half-precision
    model runs its format's circuits with torch's CPU accumulation rule (docs/exact.md). An operation without a circuit raises
    :class:`~isospike.UnsupportedLayerError` naming the ATen operation and the module path."""
    arith = GateArith(backend=backend, api="isp.exact.convert", shard=shard, accumulate=accumulate, **options)
    return _convert(model, arith, count, "convert", wanted(progress))


def reference(model: nn.Module, *, accumulate: str = "pairwise") -> ExactNetwork:
    """A copy of ``model`` running the same pinned float32 operation sequence as
    :func:`convert`, in plain PyTorch: the ANN the exact SNN provably equals. ``model`` and
    the floating inputs must be float32, bfloat16 or float16; ``accumulate`` as in :func:`convert`."""
    return _convert(model, TorchArith(accumulate), False, "reference")
