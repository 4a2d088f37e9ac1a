"""ATen operations that need no circuit: they move, select, copy or create values (views,
indexing, concatenation, constant and random tensors, reading a scalar) without arithmetic on
the data, so the captured forward runs them as they are.

Operations that look like data movement but add (``index_put`` with ``accumulate=True``,
``scatter`` with a reduction, ``index_add``, ``embedding_bag``) are not here: they are refused
unless a handler computes them."""

from __future__ import annotations

import torch

aten = torch.ops.aten

_NAMES = """
alias view _unsafe_view view_as reshape _reshape_alias t transpose permute expand expand_as squeeze unsqueeze select
slice narrow as_strided unfold movedim diagonal contiguous clone copy detach lift_fresh lift_fresh_copy
cat stack split split_with_sizes chunk unsafe_split unsafe_split_with_sizes unsafe_chunk unbind flip roll repeat
repeat_interleave tile index index_select gather take
embedding masked_select nonzero tril triu constant_pad_nd pad im2col pixel_shuffle pixel_unshuffle
empty empty_like empty_strided empty_permuted zeros zeros_like ones ones_like full full_like new_empty new_zeros
new_ones new_full new_empty_strided scalar_tensor arange linspace eye fill zero _local_scalar_dense
sym_size sym_stride sym_numel sym_storage_offset is_nonzero is_same_size
bernoulli rand randn rand_like randn_like randint randint_like randperm normal uniform
masked_scatter slice_scatter select_scatter diagonal_scatter as_strided_scatter _to_dense set_ resize_ resize
_pack_padded_sequence _pad_packed_sequence
"""


def _packets() -> frozenset:
    out = set()
    for name in _NAMES.split():
        packet = getattr(aten, name, None)
        if packet is not None:
            out.add(packet)
    return frozenset(out)


PASSTHROUGH = _packets()
# in-place/out forms of pass-through operations pass through too (fill_, zero_, copy_, ...)
_INPLACE_NAMES = frozenset(p.__name__ + "_" for p in PASSTHROUGH)


def passes_through(func) -> bool:
    """Whether an ATen operation only moves, selects or creates values (see the module docstring).
    ``index_put`` and ``scatter`` pass only without accumulation/reduction."""
    packet = func.overloadpacket
    if packet in PASSTHROUGH or packet.__name__ in _INPLACE_NAMES:
        return True
    return packet in (aten.index_put, aten.index_put_, aten.scatter, aten.scatter_, aten._index_put_impl_)


def accumulates(func, args: tuple, kwargs: dict) -> bool:
    """index_put(accumulate=True) and scatter(reduce=...) add or multiply: not pass-through."""
    packet = func.overloadpacket
    if packet in (aten.index_put, aten.index_put_, aten._index_put_impl_):
        acc = kwargs.get("accumulate", args[3] if len(args) > 3 else False)
        return bool(acc)
    if packet in (aten.scatter, aten.scatter_):
        return "reduce" in kwargs or len(args) > 4
    return False
