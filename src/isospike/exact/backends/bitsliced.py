"""The bit-sliced backend: exact, fast evaluation of a gate netlist.

Each spike line of a circuit is a packed array of 64-lane words; a threshold gate evaluated
on 64 lanes is one bitwise expression (its threshold function), computed by a compiled
interpreter over cache-sized chunks of words. Wires share a small set of storage slots
(reused once a wire's last reader has run), so a chunk's working set stays in cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from isospike._threads import kept_threads
from isospike.exact.backends._kernels import CHUNK, pack_lanes, run_program, unpack_lanes
from isospike.exact.gates import MAX_ARITY
from isospike.exact.netlist import Netlist


@dataclass(frozen=True)
class Program:
    """A netlist with wires mapped to storage slots (see :func:`compile_program`)."""

    kinds: np.ndarray  # int8 [G]
    srcs: np.ndarray  # int32 [G, 4] input slots (0 for unused)
    dst: np.ndarray  # int32 [G]
    n_slots: int
    in_slots: np.ndarray  # int32 [n_in]
    out_slots: np.ndarray  # int32 [n_out] (outputs concatenated in netlist order)
    gate_fanout: np.ndarray  # int64 [G]
    input_fanout: np.ndarray  # int64 [n_in]


@cache
def compile_program(netlist: Netlist) -> Program:
    """Assign storage slots: slot 0/1 hold the constants, each input gets a slot, each gate
    output reuses a slot freed by a wire whose last reader is an earlier gate."""
    G = netlist.n_gates
    base = netlist.first_gate_wire
    out_wires = [w for bits in netlist.outputs.values() for w in bits]
    last_use = np.full(netlist.n_wires, -1, dtype=np.int64)
    for g in range(G):
        for w in netlist.ins[g]:
            if w >= 0:
                last_use[w] = g
    pinned = set(out_wires) | {0, 1}
    slot_of = np.full(netlist.n_wires, -1, dtype=np.int64)
    slot_of[0], slot_of[1] = 0, 1
    free: list[int] = []
    n_slots = 2
    for w in range(2, base):  # inputs
        slot_of[w] = n_slots
        n_slots += 1
    dying: dict[int, list[int]] = {}
    for w in range(2, netlist.n_wires):
        if w not in pinned and last_use[w] >= 0:
            dying.setdefault(int(last_use[w]), []).append(w)
    srcs = np.zeros((G, MAX_ARITY), dtype=np.int32)
    dst = np.zeros(G, dtype=np.int32)
    for g in range(G):
        for i, w in enumerate(netlist.ins[g]):
            if w >= 0:
                srcs[g, i] = slot_of[w]
        # allocate before freeing this gate's dying inputs: the output never shares a slot
        # with an input of the same gate, so the compiled loops vectorize (no aliasing)
        if free:
            s = free.pop()
        else:
            s = n_slots
            n_slots += 1
        for w in dying.get(g, ()):
            free.append(int(slot_of[w]))
        wire = base + g
        slot_of[wire] = s
        dst[g] = s
        if wire not in pinned and last_use[wire] < 0:  # never read (cannot happen after build)
            free.append(s)
    fanout = netlist.fanout
    return Program(
        kinds=netlist.kinds.astype(np.int8),
        srcs=srcs,
        dst=dst,
        n_slots=n_slots,
        in_slots=np.arange(2, base, dtype=np.int32),
        out_slots=np.array([slot_of[w] for w in out_wires], dtype=np.int32),
        gate_fanout=fanout[base:].copy(),
        input_fanout=fanout[2:base].copy(),
    )


def pack(values: np.ndarray, width: int) -> np.ndarray:
    """uint64 [N] bit patterns -> uint64 [width, ceil(N/64)] packed spike lines."""
    values = np.ascontiguousarray(values, dtype=np.uint64)
    out = np.empty((width, (len(values) + 63) // 64), dtype=np.uint64)
    with kept_threads(_tasks(out.shape[1])):
        pack_lanes(values, width, out)
    return out


def unpack(words: np.ndarray, n: int) -> np.ndarray:
    """uint64 [width, W] packed lines -> uint64 [n] bit patterns."""
    out = np.empty(n, dtype=np.uint64)
    with kept_threads(_tasks(words.shape[1] if words.ndim == 2 else 1)):
        unpack_lanes(np.ascontiguousarray(words), n, out)
    return out


PACK_GRAIN = 256  # packed words per thread in packing and unpacking (a few microseconds of work)


def _tasks(nwords: int) -> int:
    """Threads worth starting for a packing kernel over ``nwords`` words."""
    return max(1, nwords // PACK_GRAIN)


CHUNKS_PER_THREAD = 16  # a thread is started for every 16 chunks (65,536 lanes) of a circuit evaluation


def _program_tasks(nchunks: int) -> int:
    """Threads worth starting for a circuit over ``nchunks`` chunks: each must get enough work
    (about a millisecond) to pay for the wait at the parallel region's end, which on a shared
    machine can be a scheduler time slice when one of the threads is descheduled."""
    return max(1, nchunks // CHUNKS_PER_THREAD)


def lane_mask(n: int) -> np.ndarray:
    """uint64 [ceil(n/64)]: 1-bits on the valid lanes of each word."""
    w = (n + 63) // 64
    mask = np.full(w, np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    if n % 64:
        mask[-1] = np.uint64((1 << (n % 64)) - 1)
    return mask


def evaluate(netlist: Netlist, inputs: dict[str, np.ndarray],
             count: bool = False) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
    """Evaluate ``netlist`` on N lanes. ``inputs[name]``: uint64 [N] bit patterns (the
    values of each input word). Returns the output words' bit patterns (uint64 [N] each) and,
    with ``count``, (spikes fired by the gates, synaptic events) over the N lanes."""
    n = None
    packed = []
    for name, width in netlist.input_widths.items():
        vals = np.asarray(inputs[name])
        if n is None:
            n = len(vals)
        elif len(vals) != n:
            raise ValueError(f"input {name!r} has {len(vals)} lanes, expected {n}")
        packed.append(pack(vals, width))
    if n is None:
        raise ValueError("netlist has no inputs")
    prog = compile_program(netlist)
    nwords = (n + 63) // 64
    words_in = np.concatenate(packed, axis=0) if packed else np.empty((0, nwords), np.uint64)
    words_out = np.empty((len(prog.out_slots), nwords), dtype=np.uint64)
    nchunks = (nwords + CHUNK - 1) // CHUNK
    counters = np.zeros((max(nchunks, 1), 2), dtype=np.int64)
    if nwords:
        with kept_threads(_program_tasks(nchunks)):
            run_program(prog.kinds, prog.srcs, prog.dst, prog.n_slots, prog.in_slots, prog.out_slots,
                        words_in, words_out, count, lane_mask(n), prog.gate_fanout, prog.input_fanout, counters)
    outputs = {}
    row = 0
    for name, bits in netlist.outputs.items():
        outputs[name] = unpack(words_out[row:row + len(bits)], n)
        row += len(bits)
    totals = counters.sum(0)
    return outputs, (int(totals[0]), int(totals[1]))


def evaluate_words(netlist: Netlist, words_in: np.ndarray, mask: np.ndarray,
                   count: bool = False) -> tuple[np.ndarray, tuple[int, int]]:
    """Evaluate ``netlist`` on values already packed into spike-line words: ``words_in`` uint64
    [input lines (inputs concatenated in netlist order), W]; ``mask`` uint64 [W] marks the valid
    lanes (for the counts). Returns the output lines' words [output lines, W] and, with
    ``count``, (spikes, synaptic events) over the valid lanes. Chains of operations stay packed
    between calls, without the lane transposes of :func:`evaluate`."""
    prog = compile_program(netlist)
    nwords = words_in.shape[1]
    words_out = np.empty((len(prog.out_slots), nwords), dtype=np.uint64)
    counters = np.zeros((max((nwords + CHUNK - 1) // CHUNK, 1), 2), dtype=np.int64)
    if nwords:
        with kept_threads(_program_tasks((nwords + CHUNK - 1) // CHUNK)):
            run_program(prog.kinds, prog.srcs, prog.dst, prog.n_slots, prog.in_slots, prog.out_slots,
                        np.ascontiguousarray(words_in), words_out, count, np.ascontiguousarray(mask), prog.gate_fanout,
                        prog.input_fanout, counters)
    totals = counters.sum(0)
    return words_out, (int(totals[0]), int(totals[1]))
