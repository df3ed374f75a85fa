"""A pickle's cost, measured before it is unpickled: opcodes, nesting depth and the size it unfolds to.

Unpickling itself is linear in the opcodes, but memo references (`h`/`BINGET`) let a few hundred
bytes describe a tuple of 2^60 leaves: hashing it (as a dict key), comparing it or printing it
then never ends. `check_budget` walks the opcodes once (`pickletools`' descriptions, no object is
built), records which object holds which (memo references are shared edges, not copies), and
counts every object as often as it is reachable — the size any traversal of the result costs.
Lengths are checked against the bytes present, so no declared length makes the unpickler allocate.
"""
from __future__ import annotations

import pickletools
from dataclasses import dataclass

from models.checkpoints.errors import CheckpointError


@dataclass(frozen=True)
class PickleBudget:
    max_opcodes: int = 4_000_000  # ~1 µs each to scan; real checkpoints have < 100 000
    max_depth: int = 100  # nesting of containers/objects (NVIDIA's networks: ≈ 25)
    max_units: int = 20_000_000  # unfolded size; an object costs 1 + its payload bytes / 64
    units_per_file_byte: float = 1 / 16  # big files may unfold to more (their tensor bytes)


DEFAULT_BUDGET = PickleBudget()
_MARK = -1
_OPS = {op.code.encode("latin1")[0]: op for op in pickletools.opcodes}
_MUTATORS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}  # fill the object below
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_LENGTH_PREFIX = {-2: (1, False), -3: (4, True), -4: (4, False), -5: (8, False)}  # arg.n → (bytes, signed)
_MAX_LINE = 1 << 16


class _Refused(Exception):
    """Internal: the reason a pickle is over budget or malformed (turned into CheckpointError)."""


def check_budget(data: bytes | memoryview, start: int, file_name: str,
                 budget: PickleBudget = DEFAULT_BUDGET) -> int:
    """Scan the pickle at data[start:] and return where it ends (after STOP); CheckpointError if it
    is malformed, truncated, or would cost more than `budget`."""
    with memoryview(data) as view:
        try:
            return _Scan(view, budget, file_name).run(start)
        except _Refused as exc:
            reason = str(exc)  # raised below, outside this block: nothing may keep `view` alive
    raise CheckpointError(f"{file_name} {reason}")


class _Scan:
    def __init__(self, buf: memoryview, budget: PickleBudget, file_name: str) -> None:
        self.buf = buf
        self.budget = budget
        self.max_units = budget.max_units + int(len(buf) * budget.units_per_file_byte)
        self.weight: list[int] = []  # per object: its own cost
        self.children: list[list[int]] = []  # per object: what it holds
        self.stack: list[int] = []
        self.memo: dict[int, int] = {}

    def new(self, weight: int, children: list[int] | None = None) -> int:
        self.weight.append(weight)
        self.children.append(children or [])
        return len(self.weight) - 1

    def run(self, pos: int) -> int:
        buf, end, count = self.buf, len(self.buf), 0
        while True:
            if pos >= end:
                raise _Refused("is truncated or corrupt (the pickle ends without STOP)")
            op = _OPS.get(buf[pos])
            if op is None:
                raise _Refused(f"is truncated or corrupt (invalid pickle opcode 0x{buf[pos]:02x} at byte {pos})")
            count += 1
            if count > self.budget.max_opcodes:
                raise _Refused(f"is refused: its pickle has more than {self.budget.max_opcodes:,} opcodes")
            pos, value, payload = self.argument(op, pos + 1)
            if op.name == "STOP":
                self.pop()
                self.measure()
                return pos
            self.step(op, value, payload)

    def argument(self, op: pickletools.OpcodeInfo, pos: int) -> tuple[int, int | None, int]:
        """(position after the argument, its integer value for memo opcodes, payload length)."""
        arg = op.arg
        if arg is None:
            return pos, None, 0
        if arg.n > 0:
            if pos + arg.n > len(self.buf):
                raise _Refused("is truncated or corrupt (a pickle argument runs past the end)")
            value = int.from_bytes(self.buf[pos:pos + arg.n], "little") if op.name in _MEMO_GET | _MEMO_PUT else None
            return pos + arg.n, value, arg.n
        if arg.n == pickletools.UP_TO_NEWLINE:
            lines = 2 if arg.name == "stringnl_noescape_pair" else 1
            start = pos
            for _ in range(lines):
                pos = self.line_end(pos)
            text = bytes(self.buf[start:pos - 1])
            value = None
            if op.name in _MEMO_GET | _MEMO_PUT:
                if not text.isdigit():
                    raise _Refused("is truncated or corrupt (a bad memo index)")
                value = int(text)
            return pos, value, pos - start
        size, signed = _LENGTH_PREFIX[arg.n]
        if pos + size > len(self.buf):
            raise _Refused("is truncated or corrupt (a pickle argument runs past the end)")
        length = int.from_bytes(self.buf[pos:pos + size], "little", signed=signed)
        pos += size
        if length < 0 or pos + length > len(self.buf):
            raise _Refused(f"is truncated or corrupt (a pickle value declares {length:,} bytes; "
                           f"{len(self.buf) - pos:,} are left)")
        return pos + length, None, length

    def line_end(self, pos: int) -> int:
        newline = bytes(self.buf[pos:pos + _MAX_LINE]).find(b"\n")
        if newline < 0:
            raise _Refused("is truncated or corrupt (an unterminated pickle text argument)")
        return pos + newline + 1

    def pop(self) -> int:
        if not self.stack or self.stack[-1] == _MARK:
            raise _Refused("is truncated or corrupt (pickle stack underflow)")
        return self.stack.pop()

    def pop_mark(self) -> list[int]:
        try:
            mark = len(self.stack) - 1 - self.stack[::-1].index(_MARK)
        except ValueError:
            raise _Refused("is truncated or corrupt (pickle MARK missing)") from None
        items = self.stack[mark + 1:]
        del self.stack[mark:]
        return items

    def step(self, op: pickletools.OpcodeInfo, value: int | None, payload: int) -> None:
        name = op.name
        if name == "MARK":
            self.stack.append(_MARK)
        elif name in _MEMO_PUT:
            if not self.stack or self.stack[-1] == _MARK:
                raise _Refused("is truncated or corrupt (memo store of nothing)")
            self.memo[len(self.memo) if value is None else value] = self.stack[-1]
        elif name in _MEMO_GET:
            if value not in self.memo:
                raise _Refused("is truncated or corrupt (memo reference to nothing)")
            self.stack.append(self.memo[value])
        elif name == "DUP":
            self.stack.append(self.stack[-1] if self.stack else self.pop())
        elif name in ("POP", "POP_MARK"):
            self.pop_mark() if name == "POP_MARK" or self.stack[-1:] == [_MARK] else self.pop()
        elif name in ("PROTO", "FRAME", "READONLY_BUFFER"):
            pass
        else:
            self.combine(op, payload)

    def combine(self, op: pickletools.OpcodeInfo, payload: int) -> None:
        """Pop what `op` consumes; push the object it makes (or fills) with the popped ones as children."""
        before = [s.name for s in op.stack_before]
        popped: list[int] = []
        if "mark" in before:
            popped = self.pop_mark()
            before = before[:before.index("mark")]
        popped = [self.pop() for _ in before][::-1] + popped
        if op.name in _MUTATORS:
            target, items = popped[0], popped[1:]
            self.children[target].extend(items)
            self.stack.append(target)
        elif op.stack_after:
            self.stack.append(self.new(1 + payload // 64, popped))

    def measure(self) -> None:
        """Unfolded size and depth of every object (shared ones counted per reference); a cycle's
        back edge counts 1 (Python's own traversals stop at cycles)."""
        size = [0] * len(self.weight)
        depth = [0] * len(self.weight)
        state = bytearray(len(self.weight))  # 0 new, 1 on the path, 2 measured
        for root in range(len(self.weight)):
            if state[root]:
                continue
            path = [(root, iter(self.children[root]))]
            state[root] = 1
            while path:
                node, pending = path[-1]
                child = next(pending, None)
                if child is None:
                    path.pop()
                    total = self.weight[node]
                    deepest = 0
                    for c in self.children[node]:
                        total += size[c] if state[c] == 2 else 1
                        deepest = max(deepest, depth[c] if state[c] == 2 else 0)
                    size[node], depth[node], state[node] = total, deepest + 1, 2
                    if total > self.max_units:
                        raise _Refused("is refused: its pickle references its own objects so often that it would "
                                       f"unfold to more than {self.max_units:,} objects (a memo bomb)")
                    if depth[node] > self.budget.max_depth:
                        raise _Refused(f"is refused: its pickle nests objects more than {self.budget.max_depth} "
                                       "levels deep")
                elif state[child] == 0:
                    state[child] = 1
                    path.append((child, iter(self.children[child])))
