"""Compiled kernels of the bit-sliced backend (numba).

Spike lines are packed 64 lanes (independent values) per uint64 word. ``run_program``
interprets a netlist one gate at a time over a chunk of words that stays in cache: each gate is
one bitwise expression per word (the gate's threshold function in bitwise form), so a word
evaluates 64 neurons at once.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

CHUNK = 64  # words per work item: 4,096 lanes; slots x 512 bytes stay in L2
ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(parallel=True, boundscheck=False, cache=True)
def pack_lanes(values, width, out):  # pragma: no cover - compiled
    """Spatial bit encoding. values: uint64 [N] bit patterns; out: uint64 [width, ceil(N/64)]
    with bit j of out[k, w] = bit k of values[64 w + j] (padding lanes are 0)."""
    n = values.shape[0]
    nwords = out.shape[1]
    for w in prange(nwords):
        lo = w * 64
        m = min(n, lo + 64) - lo
        vals = np.zeros(64, np.uint64)
        for j in range(m):
            vals[j] = values[lo + j]
        for k in range(width):
            kk = np.uint64(k)
            word = np.uint64(0)
            for j in range(np.uintp(64)):
                word |= ((vals[j] >> kk) & np.uint64(1)) << np.uint64(j)
            out[k, w] = word


@njit(parallel=True, boundscheck=False, cache=True)
def unpack_lanes(words, n, out):  # pragma: no cover - compiled
    """Inverse of pack_lanes: words uint64 [width, W] -> out uint64 [n] bit patterns."""
    width = words.shape[0]
    nwords = words.shape[1]
    for w in prange(nwords):
        lo = w * 64
        m = min(n, lo + 64) - lo
        vals = np.zeros(64, np.uint64)
        for k in range(width):
            x = words[k, w]
            kk = np.uint64(k)
            for j in range(np.uintp(64)):
                vals[j] |= ((x >> np.uint64(j)) & np.uint64(1)) << kk
        for j in range(m):
            out[lo + j] = vals[j]


@njit(inline="always")
def _popcount(x):  # pragma: no cover - compiled
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(parallel=True, boundscheck=False, cache=True)
def run_program(kinds, srcs, dst, n_slots, in_slots, out_slots, inputs, outputs,
                count, lane_mask, gate_fanout, input_fanout, counters):  # pragma: no cover - compiled
    """Evaluate a slot-allocated netlist on packed words.

    kinds: int8 [G] gate kind codes (isospike.exact.gates); srcs: int32 [G, 4] input slots;
    dst: int32 [G] output slot; in_slots / out_slots: int32 slot of each input / output line;
    inputs: uint64 [n_in, W]; outputs: uint64 [n_out, W] (written).
    With ``count``: counters (int64 [nchunks, 2]) receive, per chunk, the spikes fired by all
    gates and the synaptic events they cause (spikes x fan-out, input spikes included), over
    the valid lanes given by lane_mask (uint64 [W]).

    Slot storage is one flat array indexed with unsigned offsets: signed indices would make
    numba emit a negative-index check that stops LLVM from vectorizing the gate loops. A
    gate's output slot never equals one of its input slots (see compile_program), so the
    vectorized loops are exact.
    """
    W = np.uintp(CHUNK)
    nwords = inputs.shape[1]
    nchunks = (nwords + CHUNK - 1) // CHUNK
    G = kinds.shape[0]
    for ch in prange(nchunks):
        lo = ch * CHUNK
        n = min(CHUNK, nwords - lo)
        S = np.zeros(n_slots * CHUNK, np.uint64)
        for j in range(W):
            S[W + j] = ALL
        spikes = np.int64(0)
        events = np.int64(0)
        for i in range(in_slots.shape[0]):
            si = np.uintp(in_slots[i]) * W
            for j in range(n):
                S[si + j] = inputs[i, lo + j]
            if count:
                pc = np.int64(0)
                for j in range(n):
                    pc += np.int64(_popcount(inputs[i, lo + j] & lane_mask[lo + j]))
                events += pc * input_fanout[i]
        for g in range(G):
            k = kinds[g]
            d = np.uintp(dst[g]) * W
            a = np.uintp(srcs[g, 0]) * W
            b = np.uintp(srcs[g, 1]) * W
            c = np.uintp(srcs[g, 2]) * W
            e = np.uintp(srcs[g, 3]) * W
            if k == 14:  # MUX_H: h | (b & ~s)
                for j in range(W):
                    S[d + j] = S[a + j] | (S[b + j] & ~S[c + j])
            elif k == 1:  # AND
                for j in range(W):
                    S[d + j] = S[a + j] & S[b + j]
            elif k == 10:  # XOR_H: (a | b) & ~h
                for j in range(W):
                    S[d + j] = (S[a + j] | S[b + j]) & ~S[c + j]
            elif k == 8:  # MAJ
                for j in range(W):
                    S[d + j] = (S[a + j] & S[b + j]) | (S[c + j] & (S[a + j] | S[b + j]))
            elif k == 12:  # SUM_M: (~m & (a|b|c)) | (m & a & b & c)
                for j in range(W):
                    S[d + j] = (~S[e + j] & (S[a + j] | S[b + j] | S[c + j])) | (S[e + j] & S[a + j] & S[b + j] & S[c + j])
            elif k == 9:  # MAJN: (a & ~b) | (c & (a | ~b))
                for j in range(W):
                    S[d + j] = (S[a + j] & ~S[b + j]) | (S[c + j] & (S[a + j] | ~S[b + j]))
            elif k == 2:  # OR
                for j in range(W):
                    S[d + j] = S[a + j] | S[b + j]
            elif k == 5:  # ANDN
                for j in range(W):
                    S[d + j] = S[a + j] & ~S[b + j]
            elif k == 0:  # NOT
                for j in range(W):
                    S[d + j] = ~S[a + j]
            elif k == 3:  # NAND
                for j in range(W):
                    S[d + j] = ~(S[a + j] & S[b + j])
            elif k == 4:  # NOR
                for j in range(W):
                    S[d + j] = ~(S[a + j] | S[b + j])
            elif k == 6:  # AND3
                for j in range(W):
                    S[d + j] = S[a + j] & S[b + j] & S[c + j]
            elif k == 7:  # OR3
                for j in range(W):
                    S[d + j] = S[a + j] | S[b + j] | S[c + j]
            elif k == 11:  # XNOR_H: ~(a | b) | h
                for j in range(W):
                    S[d + j] = ~(S[a + j] | S[b + j]) | S[c + j]
            elif k == 13:  # PREFIX_G: g | (p & gl)
                for j in range(W):
                    S[d + j] = S[a + j] | (S[b + j] & S[c + j])
            elif k == 15:  # AND4
                for j in range(W):
                    S[d + j] = S[a + j] & S[b + j] & S[c + j] & S[e + j]
            elif k == 16:  # OR4
                for j in range(W):
                    S[d + j] = S[a + j] | S[b + j] | S[c + j] | S[e + j]
            if count:
                pc = np.int64(0)
                for j in range(n):
                    pc += np.int64(_popcount(S[d + np.uintp(j)] & lane_mask[lo + j]))
                spikes += pc
                events += pc * gate_fanout[g]
        for o in range(out_slots.shape[0]):
            so = np.uintp(out_slots[o]) * W
            for j in range(n):
                outputs[o, lo + j] = S[so + np.uintp(j)]
        if count:
            counters[ch, 0] = spikes
            counters[ch, 1] = events


@njit(parallel=True, boundscheck=False, cache=True)
def pack_gather(src, rows, width, out):  # pragma: no cover - compiled
    """Spatial bit encoding of gathered rows, one block of words per column. src: uint32/uint64
    [R, K] bit patterns; rows: int64 [L] (lane -> row of src); out: uint64 [width, K * Wl] with
    Wl = ceil(L / 64) and bit j of out[b, i * Wl + w] = bit b of src[rows[64 w + j], i]
    (padding lanes 0). Broadcast operands are packed without being expanded first."""
    L = rows.shape[0]
    K = src.shape[1]
    wl = (L + 63) // 64
    for w in prange(wl):
        lo = w * 64
        m = min(L, lo + 64) - lo
        vals = np.zeros(64, np.uint64)
        for i in range(K):
            for j in range(m):
                vals[j] = np.uint64(src[rows[lo + j], i])
            for kb in range(width):
                kk = np.uint64(kb)
                word = np.uint64(0)
                for j in range(np.uintp(64)):
                    word |= ((vals[j] >> kk) & np.uint64(1)) << np.uint64(j)
                out[kb, i * wl + w] = word
