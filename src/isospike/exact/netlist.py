"""Building gate circuits and freezing them into netlists.

A :class:`Circuit` is built gate by gate; wires are integers (0 and 1 are the constant lines,
i.e. bias). Every gate call simplifies on the fly: a gate whose inputs are partly constant or
repeated is rewritten into the smallest gate kind that computes the same function (or into a
constant or an existing wire), and identical gates are shared. :meth:`Circuit.build` keeps only
the gates that reach an output and freezes the result into a :class:`Netlist`: numbered wires
(constants, then inputs, then gates in topological order) plus its cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from isospike.exact.gates import BY_CODE, BY_NAME, MATCHER, MAX_ARITY

ZERO, ONE = 0, 1
Bits = list[int]  # little-endian: index 0 is the least significant bit


class Circuit:
    """A threshold-gate circuit under construction."""

    def __init__(self, name: str = "circuit") -> None:
        self.name = name
        # node = ("const", v) | ("input", group, bit) | ("gate", code, ins)
        self.nodes: list[tuple] = [("const", 0), ("const", 1)]
        self.inputs: dict[str, Bits] = {}
        self.outputs: dict[str, Bits] = {}
        self._shared: dict[tuple, int] = {}

    # ------------------------------------------------------------------ wires
    def input(self, name: str, width: int) -> Bits:
        """Declare an input word of ``width`` spike lines (little-endian)."""
        if name in self.inputs:
            raise ValueError(f"input {name!r} already declared")
        bits = []
        for i in range(width):
            self.nodes.append(("input", name, i))
            bits.append(len(self.nodes) - 1)
        self.inputs[name] = bits
        return bits

    def output(self, name: str, bits: Bits | int) -> None:
        """Declare an output word (a single wire is a 1-bit word)."""
        self.outputs[name] = [bits] if isinstance(bits, int) else list(bits)

    @staticmethod
    def const(value: int, width: int) -> Bits:
        """A constant word (no neurons: constant lines are bias)."""
        return [ONE if (value >> i) & 1 else ZERO for i in range(width)]

    def is_const(self, w: int) -> bool:
        return w in (ZERO, ONE)

    # ------------------------------------------------------------------ gates
    def gate(self, kind: str, *ins: int) -> int:
        """Add one threshold neuron of ``kind`` (simplified when inputs are constant/repeated)."""
        k = BY_NAME[kind]
        if len(ins) != k.arity:
            raise ValueError(f"{kind} takes {k.arity} inputs, got {len(ins)}")
        variables: list[int] = []
        for w in ins:
            if w not in (ZERO, ONE) and w not in variables:
                variables.append(w)
        if len(variables) == k.arity:
            return self._emit(k.code, tuple(ins))
        tt, variables = self._truth_table(k, ins, variables)
        n = len(variables)
        full = (1 << (1 << n)) - 1
        if tt == 0:
            return ZERO
        if tt == full:
            return ONE
        if n == 1 and tt == 0b10:
            return variables[0]
        match = MATCHER.get((n, tt))
        if match is None:  # no smaller kind computes it: keep the gate as it is
            return self._emit(k.code, tuple(ins))
        kind2, perm = match
        return self._emit(kind2.code, tuple(variables[p] for p in perm))

    @staticmethod
    def _truth_table(k, ins: tuple[int, ...], variables: list[int]) -> tuple[int, list[int]]:
        """Truth table of gate ``k`` over the variables it really depends on (constants
        substituted, repeated wires merged, irrelevant wires dropped)."""
        while True:
            n = len(variables)
            tt = 0
            for i in range(1 << n):
                vals = [w if w in (ZERO, ONE) else (i >> variables.index(w)) & 1 for w in ins]
                if k.fire(*vals):
                    tt |= 1 << i
            irrelevant = [
                j for j in range(n)
                if all(((tt >> i) & 1) == ((tt >> (i ^ (1 << j))) & 1) for i in range(1 << n))
            ]
            if not irrelevant:
                return tt, variables
            # fix the irrelevant variable to 0: substitute it by the constant in the inputs
            drop = variables[irrelevant[0]]
            ins = tuple(ZERO if w == drop else w for w in ins)
            variables = [v for v in variables if v != drop]

    def _emit(self, code: int, ins: tuple[int, ...]) -> int:
        k = BY_CODE[code]
        if k.name == "NOT":  # NOT(NOT(x)) = x
            src = self.nodes[ins[0]]
            if src[0] == "gate" and BY_CODE[src[1]].name == "NOT":
                return src[2][0]
        key = (code, tuple(sorted(ins)) if k.symmetric else ins)
        w = self._shared.get(key)
        if w is None:
            self.nodes.append(("gate", code, ins))
            w = len(self.nodes) - 1
            self._shared[key] = w
        return w

    # ------------------------------------------------------------------ common cells
    def not_(self, a: int) -> int:
        return self.gate("NOT", a)

    def and_(self, a: int, b: int) -> int:
        return self.gate("AND", a, b)

    def or_(self, a: int, b: int) -> int:
        return self.gate("OR", a, b)

    def andn(self, a: int, b: int) -> int:
        """a AND NOT b (one neuron)."""
        return self.gate("ANDN", a, b)

    def xor(self, a: int, b: int) -> int:
        """Two neurons: h = AND(a, b); y = [a + b - 2h >= 0.5]."""
        return self.gate("XOR_H", a, b, self.and_(a, b))

    def xnor(self, a: int, b: int) -> int:
        """Two neurons: h = AND(a, b); y = [-a - b + 2h >= -0.5]."""
        return self.gate("XNOR_H", a, b, self.and_(a, b))

    def mux(self, s: int, a: int, b: int) -> int:
        """``s ? a : b`` in two neurons: h = AND(s, a); y = [2h + b - s >= 0.5]."""
        if a == b:
            return a
        return self.gate("MUX_H", self.and_(s, a), b, s)

    def maj(self, a: int, b: int, c: int) -> int:
        return self.gate("MAJ", a, b, c)

    def half_adder(self, a: int, b: int) -> tuple[int, int]:
        """(sum, carry) in two neurons: the XOR's hidden AND is the carry."""
        h = self.and_(a, b)
        return self.gate("XOR_H", a, b, h), h

    def full_adder(self, a: int, b: int, c: int) -> tuple[int, int]:
        """(sum, carry) in two neurons: m = MAJ(a, b, c); s = [a + b + c - 2m >= 0.5]."""
        m = self.maj(a, b, c)
        return self.gate("SUM_M", a, b, c, m), m

    def or_reduce(self, bits: Bits) -> int:
        """OR of all bits (a tree of 4-input OR neurons); ZERO for no bits."""
        return self._reduce(bits, "OR", "OR3", "OR4", ZERO)

    def and_reduce(self, bits: Bits) -> int:
        """AND of all bits (a tree of 4-input AND neurons); ONE for no bits."""
        return self._reduce(bits, "AND", "AND3", "AND4", ONE)

    def _reduce(self, bits: Bits, k2: str, k3: str, k4: str, empty: int) -> int:
        level = list(bits)
        if not level:
            return empty
        while len(level) > 1:
            nxt = []
            for i in range(0, len(level), 4):
                grp = level[i:i + 4]
                nxt.append(grp[0] if len(grp) == 1 else self.gate({2: k2, 3: k3, 4: k4}[len(grp)], *grp))
            level = nxt
        return level[0]

    # ------------------------------------------------------------------ freeze
    def build(self) -> Netlist:
        """Keep the gates that reach an output; number wires; freeze."""
        live = set()
        stack = [w for bits in self.outputs.values() for w in bits]
        while stack:
            w = stack.pop()
            if w in live:
                continue
            live.add(w)
            node = self.nodes[w]
            if node[0] == "gate":
                stack.extend(node[2])
        new_id = {ZERO: 0, ONE: 1}
        input_names = list(self.inputs)
        for name in input_names:
            for w in self.inputs[name]:
                new_id[w] = len(new_id)
        kinds, ins = [], []
        for w, node in enumerate(self.nodes):
            if node[0] == "gate" and w in live:
                new_id[w] = len(new_id)
                kinds.append(node[1])
                ins.append([new_id[i] for i in node[2]] + [-1] * (MAX_ARITY - len(node[2])))
        return Netlist(
            name=self.name,
            input_widths={n: len(self.inputs[n]) for n in input_names},
            outputs={n: [new_id[w] for w in bits] for n, bits in self.outputs.items()},
            kinds=np.array(kinds, dtype=np.int8),
            ins=np.array(ins, dtype=np.int32).reshape(len(kinds), MAX_ARITY),
        )


@dataclass(frozen=True)
class CircuitCost:
    """Static cost of a netlist.

    neurons: gates (one IF neuron each); synapses: input connections of all gates; depth: the
    longest input-to-output chain of neurons (time steps on hardware that evaluates one layer
    of gates per step); by_kind: neurons per gate kind."""

    neurons: int
    synapses: int
    depth: int
    by_kind: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)  # identity hashing: netlists are cached and shared
class Netlist:
    """A frozen gate circuit.

    Wires: 0 = constant 0, 1 = constant 1, then the input bits (inputs in declaration order,
    each little-endian), then one wire per gate in topological order. ``kinds[g]`` is the gate
    kind code of gate g (writing wire ``first_gate_wire + g``); ``ins[g]`` its input wires
    (-1 padded)."""

    name: str
    input_widths: dict[str, int]
    outputs: dict[str, list[int]]
    kinds: np.ndarray
    ins: np.ndarray

    @property
    def n_inputs(self) -> int:
        return sum(self.input_widths.values())

    @property
    def first_gate_wire(self) -> int:
        return 2 + self.n_inputs

    @property
    def n_gates(self) -> int:
        return len(self.kinds)

    @property
    def n_wires(self) -> int:
        return self.first_gate_wire + self.n_gates

    @cached_property
    def fanout(self) -> np.ndarray:
        """Number of gate inputs each wire drives (int64 [n_wires])."""
        f = np.zeros(self.n_wires, dtype=np.int64)
        used = self.ins[self.ins >= 0]
        np.add.at(f, used, 1)
        return f

    @cached_property
    def cost(self) -> CircuitCost:
        depth = np.zeros(self.n_wires, dtype=np.int64)
        base = self.first_gate_wire
        for g in range(self.n_gates):
            srcs = self.ins[g][self.ins[g] >= 0]
            depth[base + g] = 1 + int(depth[srcs].max()) if len(srcs) else 1
        out_wires = [w for bits in self.outputs.values() for w in bits]
        by_kind: dict[str, int] = {}
        for code in self.kinds.tolist():
            name = BY_CODE[code].name
            by_kind[name] = by_kind.get(name, 0) + 1
        return CircuitCost(
            neurons=self.n_gates,
            synapses=int((self.ins >= 0).sum()),
            depth=int(depth[out_wires].max()) if out_wires else 0,
            by_kind=dict(sorted(by_kind.items())),
        )

    def input_wires(self, name: str) -> list[int]:
        start = 2
        for n, w in self.input_widths.items():
            if n == name:
                return list(range(start, start + w))
            start += w
        raise KeyError(name)

    def evaluate_python(self, inputs: dict[str, list[int]], lanes: int) -> dict[str, list[int]]:
        """Reference evaluator: each wire is a Python int whose bit j is lane j. ``inputs[name]``
        lists one int per input bit. Returns one int per output bit. Slow; for tests."""
        mask = (1 << lanes) - 1
        w = [0] * self.n_wires
        w[1] = mask
        for name, width in self.input_widths.items():
            vals = inputs[name]
            if len(vals) != width:
                raise ValueError(f"input {name!r} needs {width} bits, got {len(vals)}")
            for i, wire in enumerate(self.input_wires(name)):
                w[wire] = vals[i] & mask
        base = self.first_gate_wire
        for g in range(self.n_gates):
            kind = BY_CODE[int(self.kinds[g])]
            args = [w[i] for i in self.ins[g][: kind.arity]]
            w[base + g] = kind.bitwise(*args) & mask
        return {name: [w[i] for i in bits] for name, bits in self.outputs.items()}
