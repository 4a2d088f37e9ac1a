"""The bit-sliced gate evaluation as one fused Triton kernel per circuit (CUDA).

Same algorithm and slot program as the numba backend (:mod:`isospike.exact.backends.bitsliced`):
spike lines are int64 words of 64 lanes, each gate is its bitwise threshold function, and wires
share the storage slots of :func:`~isospike.exact.backends.bitsliced.compile_program`. One program
instance evaluates the *whole* netlist for a block of ``block`` words (64 x ``block`` lanes): it
walks the gate list once, keeping its slots in a private scratch area that stays in the SM's L1/L2
cache, so a float32 operation is one kernel launch instead of one launch per gate level (the
:mod:`torch <isospike.exact.backends.torch_bitsliced>` backend's cost on a GPU).

Triton cannot index registers or shared memory by a runtime slot number, so the slots live in a
global scratch buffer; each thread reads back only the words it wrote itself (one layout for every
load and store), which needs no barrier. Under ``TRITON_INTERPRET=1`` the same kernel runs on CPU
tensors, which is how the test suite checks it bit for bit against numba without a GPU.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch
from torch import Tensor

from isospike.exact.backends.bitsliced import compile_program
from isospike.exact.backends.torch_bitsliced import _lane_mask
from isospike.exact.netlist import Netlist

SCRATCH_BUDGET = 1 << 25  # int64 words of slot scratch per launch (256 MiB); larger inputs run in chunks
# words per program instance (8,192 lanes) and warps: the best of a sweep on an H100 (benchmarks/gpu_suite.py)
DEFAULT_BLOCK = 128
DEFAULT_WARPS = 2


@functools.cache
def _triton():
    """The ``triton`` module, or None when it is not installed."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # ImportError, or a broken install (no driver libraries)
        return None
    return triton


def interpreted() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def available(device: torch.device) -> bool:
    """Whether the fused kernel can run on ``device``: Triton installed and a CUDA device (or any
    device under Triton's CPU interpreter)."""
    if _triton() is None:
        return False
    return device.type == "cuda" or (interpreted() and device.type == "cpu")


def _kernel():
    from isospike.exact.backends._triton_kernels import run_gates

    return run_gates


PACK_BLOCK = 16  # words per program instance of the (un)packing kernels


def pack(bits: Tensor, width: int, out: Tensor | None = None) -> Tensor:
    """int64 [N] bit patterns -> int64 [width, ceil(N / 64)] spike-line words, as
    :func:`isospike.exact.backends.torch_bitsliced.pack` (one kernel). ``out``: a contiguous
    [width, ceil(N / 64)] destination (e.g. rows of a larger word table)."""
    from isospike.exact.backends._triton_kernels import pack_lanes

    n = bits.shape[0]
    words = (n + 63) // 64
    if out is None:
        out = torch.empty((width, words), dtype=torch.int64, device=bits.device)
    if words:
        pack_lanes[(triton_cdiv(words, PACK_BLOCK),)](bits.contiguous(), out, n, words, width, BLOCK_W=PACK_BLOCK)
    return out


def unpack(words: Tensor, n: int) -> Tensor:
    """Inverse of :func:`pack`: int64 [width, W] -> int64 [n] bit patterns (one kernel)."""
    from isospike.exact.backends._triton_kernels import unpack_lanes

    words = words.contiguous()
    out = torch.empty(n, dtype=torch.int64, device=words.device)
    if n:
        unpack_lanes[(triton_cdiv(words.shape[1], PACK_BLOCK),)](words, out, n, words.shape[1], words.shape[0],
                                                                 BLOCK_W=PACK_BLOCK)
    return out


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


@functools.lru_cache(maxsize=64)
def _device_program(netlist: Netlist, device: torch.device) -> tuple[Tensor, ...]:
    """The slot program as the kernel reads it: two words per gate (kind | dst << 5 as int32; the
    four input slots as 16-bit fields of an int64), fan-outs, input and output slots."""
    prog = compile_program(netlist)
    as_t = lambda a, dtype: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)  # noqa: E731
    gate_ops = prog.kinds.astype(np.int64) | (prog.dst.astype(np.int64) << 5)
    gate_srcs = (prog.srcs.astype(np.int64) << np.array([0, 16, 32, 48])).sum(1)
    return (as_t(gate_ops, torch.int32), as_t(gate_srcs, torch.int64), as_t(prog.gate_fanout, torch.int64),
            as_t(prog.in_slots, torch.int32), as_t(prog.input_fanout, torch.int64), as_t(prog.out_slots, torch.int32))


def evaluate_words(netlist: Netlist, words_in: Tensor, n: int, count: bool = False, *,
                   block: int | None = None, num_warps: int | None = None) -> tuple[Tensor, tuple[int, int]]:
    """Evaluate ``netlist`` on packed words: ``words_in`` int64 [input lines, W] (inputs concatenated
    in netlist order) on a CUDA device; ``n`` valid lanes (<= 64 W). Returns the output lines' words
    int64 [output lines, W] and, with ``count``, (spikes, synaptic events) over the valid lanes.
    ``block`` (a power of two) words per program instance and ``num_warps`` tune speed only."""
    triton = _triton()
    if triton is None:
        raise RuntimeError("the fused gate kernel needs Triton (installed with CUDA builds of torch): "
                           "use backend='torch' instead")
    block = DEFAULT_BLOCK if block is None else block
    num_warps = DEFAULT_WARPS if num_warps is None else num_warps
    if block <= 0 or block & (block - 1):
        raise ValueError(f"block must be a power of two, got {block}")
    prog = compile_program(netlist)
    if prog.n_slots >= 1 << 16:
        raise ValueError(f"{netlist.name}: {prog.n_slots} storage slots exceed the fused kernel's 16-bit slot numbers")
    if max(len(prog.in_slots), len(prog.out_slots)) * words_in.shape[1] >= 2**31:
        raise ValueError("too many lanes for one call of the fused kernel (32-bit word offsets): split the input")
    device = words_in.device
    gate_ops, gate_srcs, gate_fanout, in_slots, in_fanout, out_slots = _device_program(netlist, device)
    words_in = words_in.contiguous()
    W = words_in.shape[1]
    out = torch.empty((len(prog.out_slots), W), dtype=torch.int64, device=device)
    mask = _lane_mask(0, W, n, device) if count else torch.zeros(1, dtype=torch.int64, device=device)
    per_launch = max(block, (SCRATCH_BUDGET // max(prog.n_slots * block, 1)) * block)
    spikes = events = 0
    for lo in range(0, W, per_launch):
        words = min(per_launch, W - lo)
        programs = triton.cdiv(words, block)
        scratch = torch.empty(programs * prog.n_slots * block, dtype=torch.int64, device=device)
        counters = torch.zeros((programs, 2), dtype=torch.int64, device=device)
        _kernel()[(programs,)](gate_ops, gate_srcs, gate_fanout, len(prog.kinds), in_slots, in_fanout, len(prog.in_slots),
                               out_slots, len(prog.out_slots), words_in[:, lo:], out[:, lo:], W, mask[lo:] if count else mask,
                               counters, scratch, words, prog.n_slots, COUNT=count, BLOCK=block, num_warps=num_warps)
        if count:
            totals = counters.sum(0).tolist()
            spikes += int(totals[0])
            events += int(totals[1])
    return out, (spikes, events)


def evaluate(netlist: Netlist, inputs: dict[str, Tensor], count: bool = False,
             block: int | None = None, num_warps: int | None = None) -> tuple[dict[str, Tensor], tuple[int, int]]:
    """Evaluate ``netlist`` on N lanes given each input word's bit patterns (int64 [N] tensors on
    one CUDA device). Returns the output words' bit patterns (int64 [N] each) and, with ``count``,
    (spikes fired by the gates, synaptic events): the same contract and bits as
    :func:`isospike.exact.backends.torch_bitsliced.evaluate`."""
    names = list(netlist.input_widths)
    if not names:
        raise ValueError("netlist has no inputs")
    n = int(inputs[names[0]].shape[0])
    for name in names:
        if int(inputs[name].shape[0]) != n:
            raise ValueError(f"input {name!r} has {int(inputs[name].shape[0])} lanes, expected {n}")
    device = inputs[names[0]].device
    if n == 0:
        return {name: torch.zeros(0, dtype=torch.int64, device=device) for name in netlist.outputs}, (0, 0)
    words_in = torch.empty((sum(netlist.input_widths.values()), (n + 63) // 64), dtype=torch.int64, device=device)
    row = 0
    for name in names:
        width = netlist.input_widths[name]
        pack(inputs[name], width, out=words_in[row:row + width])
        row += width
    words_out, counts = evaluate_words(netlist, words_in, n, count, block=block, num_warps=num_warps)
    outputs: dict[str, Tensor] = {}
    row = 0
    for name, bits in netlist.outputs.items():
        outputs[name] = unpack(words_out[row:row + len(bits)], n)
        row += len(bits)
    return outputs, counts
