"""Triton kernels of the fused gate backend (imported only where Triton is installed; see
:mod:`isospike.exact.backends.triton_bitsliced`)."""

import triton
import triton.language as tl


@triton.jit
def popcount(x):
    x = x - ((x >> 1) & 0x5555555555555555)
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F
    return ((x * 0x0101010101010101) >> 56) & 0xFF

@triton.jit
def run_gates(gate_ops, gate_srcs, gate_fanout, n_gates, in_slots, in_fanout, n_in, out_slots, n_out,
              words_in, words_out, row_stride, lane_mask, counters, scratch, n_words, n_slots,
              COUNT: tl.constexpr, BLOCK: tl.constexpr):
    """Evaluate a slot-allocated netlist (isospike.exact.backends.bitsliced.compile_program) on a
    block of BLOCK packed words per program instance.

    gate_ops: int32 [G] kind | dst slot << 5; gate_srcs: int64 [G] four 16-bit input slots (unused
    ones 0); in_slots / out_slots: int32 slot of each input / output line; words_in / words_out:
    int64 [lines, row_stride] (only the first n_words columns are read / written); scratch: int64
    [programs * n_slots * BLOCK], each program's slots. With COUNT, counters int64 [programs, 2]
    receive the spikes fired by the gates and the synaptic events (spikes x fan-out, input spikes
    included) over the lanes set in lane_mask. Only the inputs a gate kind reads are loaded."""
    pid = tl.program_id(0)
    lane = tl.arange(0, BLOCK)
    offs = pid * BLOCK + lane
    valid = offs < n_words
    base = scratch + pid.to(tl.int64) * n_slots * BLOCK + lane
    tl.store(base, tl.zeros([BLOCK], dtype=tl.int64))
    tl.store(base + BLOCK, tl.full([BLOCK], -1, dtype=tl.int64))
    spikes = tl.zeros([BLOCK], dtype=tl.int64)
    events = tl.zeros([BLOCK], dtype=tl.int64)
    mask = tl.zeros([BLOCK], dtype=tl.int64)
    if COUNT:
        mask = tl.load(lane_mask + offs, mask=valid, other=0)
    for i in range(n_in):
        v = tl.load(words_in + i * row_stride + offs, mask=valid, other=0)
        tl.store(base + tl.load(in_slots + i).to(tl.int64) * BLOCK, v)
        if COUNT:
            events += popcount(v & mask) * tl.load(in_fanout + i)
    for g in range(n_gates):
        op = tl.load(gate_ops + g)
        src = tl.load(gate_srcs + g)
        k = op & 31
        pa = base + (src & 0xFFFF) * BLOCK
        pb = base + ((src >> 16) & 0xFFFF) * BLOCK
        pc = base + ((src >> 32) & 0xFFFF) * BLOCK
        # gate codes of isospike.exact.gates, the most frequent first
        if k == 14:  # MUX_H
            y = tl.load(pa) | (tl.load(pb) & ~tl.load(pc))
        elif k == 1:  # AND
            y = tl.load(pa) & tl.load(pb)
        elif k == 10:  # XOR_H
            y = (tl.load(pa) | tl.load(pb)) & ~tl.load(pc)
        elif k == 8:  # MAJ
            a = tl.load(pa)
            b = tl.load(pb)
            y = (a & b) | (tl.load(pc) & (a | b))
        elif k == 12:  # SUM_M
            a = tl.load(pa)
            b = tl.load(pb)
            c = tl.load(pc)
            m = tl.load(base + ((src >> 48) & 0xFFFF) * BLOCK)
            y = (~m & (a | b | c)) | (m & a & b & c)
        elif k == 9:  # MAJN
            a = tl.load(pa)
            b = tl.load(pb)
            y = (a & ~b) | (tl.load(pc) & (a | ~b))
        elif k == 2:  # OR
            y = tl.load(pa) | tl.load(pb)
        elif k == 5:  # ANDN
            y = tl.load(pa) & ~tl.load(pb)
        elif k == 0:  # NOT
            y = ~tl.load(pa)
        elif k == 3:  # NAND
            y = ~(tl.load(pa) & tl.load(pb))
        elif k == 4:  # NOR
            y = ~(tl.load(pa) | tl.load(pb))
        elif k == 6:  # AND3
            y = tl.load(pa) & tl.load(pb) & tl.load(pc)
        elif k == 7:  # OR3
            y = tl.load(pa) | tl.load(pb) | tl.load(pc)
        elif k == 11:  # XNOR_H
            y = ~(tl.load(pa) | tl.load(pb)) | tl.load(pc)
        elif k == 13:  # PREFIX_G
            y = tl.load(pa) | (tl.load(pb) & tl.load(pc))
        elif k == 15:  # AND4
            y = tl.load(pa) & tl.load(pb) & tl.load(pc) & tl.load(base + ((src >> 48) & 0xFFFF) * BLOCK)
        else:  # 16: OR4
            y = tl.load(pa) | tl.load(pb) | tl.load(pc) | tl.load(base + ((src >> 48) & 0xFFFF) * BLOCK)
        tl.store(base + (op >> 5).to(tl.int64) * BLOCK, y)
        if COUNT:
            pcount = popcount(y & mask)
            spikes += pcount
            events += pcount * tl.load(gate_fanout + g)
    for o in range(n_out):
        v = tl.load(base + tl.load(out_slots + o).to(tl.int64) * BLOCK)
        tl.store(words_out + o * row_stride + offs, v, mask=valid)
    if COUNT:
        tl.store(counters + 2 * pid, tl.sum(spikes, axis=0))
        tl.store(counters + 2 * pid + 1, tl.sum(events, axis=0))


@triton.jit
def pack_lanes(values, out, n, n_words, width, BLOCK_W: tl.constexpr):
    """Spatial bit encoding: values int64 [n] bit patterns -> out int64 [width, n_words] (row
    stride n_words) with bit j of out[k, w] = bit k of values[64 w + j]; padding lanes 0."""
    w = tl.program_id(0) * BLOCK_W + tl.arange(0, BLOCK_W)
    j = tl.arange(0, 64).to(tl.int64)
    lane = w[:, None] * 64 + j[None, :]
    v = tl.load(values + lane, mask=lane < n, other=0)
    for k in range(width):
        # distinct powers of two: their sum is their OR (bit 63 wraps to the sign bit, as it should)
        word = tl.sum(((v >> k) & 1) << j[None, :], axis=1)
        tl.store(out + k * n_words + w, word, mask=w < n_words)


@triton.jit
def unpack_lanes(words, values, n, n_words, width, BLOCK_W: tl.constexpr):
    """Inverse of pack_lanes: words int64 [width, n_words] -> values int64 [n]."""
    w = tl.program_id(0) * BLOCK_W + tl.arange(0, BLOCK_W)
    j = tl.arange(0, 64).to(tl.int64)
    acc = tl.zeros([BLOCK_W, 64], dtype=tl.int64)
    for k in range(width):
        x = tl.load(words + k * n_words + w, mask=w < n_words, other=0)
        acc |= ((x[:, None] >> j[None, :]) & 1) << k
    lane = w[:, None] * 64 + j[None, :]
    tl.store(values + lane, acc, mask=lane < n)
