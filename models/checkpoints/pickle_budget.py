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
    max_opcodes: int = 1_000_000  # ~2 µs each to scan; a checkpoint has ~25 per tensor
    max_depth: int = 100  # nesting of containers/objects (NVIDIA's networks: ≈ 25)
    max_units: int = 20_000_000  # unfolded size; an object costs 1 + its payload bytes / 64
    units_per_file_byte: float = 1 / 16  # big files may unfold to more (their tensor bytes)


DEFAULT_BUDGET = PickleBudget()
_MARK = -1
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_MUTATORS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}  # fill the object below
_SPECIAL = _MEMO_PUT | _MEMO_GET | {"MARK", "DUP", "POP", "POP_MARK", "PROTO", "FRAME", "READONLY_BUFFER", "STOP"}
_LENGTH_PREFIX = {-2: (1, False), -3: (4, True), -4: (4, False), -5: (8, False)}  # arg.n → (bytes, signed)
_MAX_LINE = 1 << 16


@dataclass(frozen=True)
class _Op:
    """What the scan needs of one opcode, precomputed from pickletools' description."""

    name: str
    arg_bytes: int  # fixed-size argument; 0 = none; < 0: pickletools' variable-length codes
    arg_lines: int  # text arguments: lines to read
    before: int  # stack items consumed below the mark (or in all, without one)
    mark: bool  # consumes everything down to a MARK
    mutates: bool  # fills the object below instead of making a new one
    pushes: bool
    special: bool


def _describe(op: pickletools.OpcodeInfo) -> _Op:
    before = [s.name for s in op.stack_before]
    mark = "mark" in before
    n = op.arg.n if op.arg is not None else 0
    return _Op(op.name, n if n != pickletools.UP_TO_NEWLINE else 0,
               (2 if op.arg.name == "stringnl_noescape_pair" else 1) if n == pickletools.UP_TO_NEWLINE else 0,
               before.index("mark") if mark else len(before), mark, op.name in _MUTATORS, bool(op.stack_after),
               op.name in _SPECIAL)


_OPS: list[_Op | None] = [None] * 256
for _info in pickletools.opcodes:
    _OPS[_info.code.encode("latin1")[0]] = _describe(_info)


class _Refused(Exception):
    """Internal: the reason a pickle is over budget or malformed (turned into CheckpointError)."""


def check_budget(data: bytes | memoryview, start: int, file_name: str,
                 budget: PickleBudget = DEFAULT_BUDGET) -> int:
    """Scan the pickle at data[start:] and return where it ends (after STOP); CheckpointError if it
    is malformed, truncated, or would cost more than `budget`."""
    with memoryview(data) as view:
        try:
            return _Scan(view, budget).run(start)
        except _Refused as exc:
            reason = str(exc)  # raised below, outside this block: nothing may keep `view` alive
    raise CheckpointError(f"{file_name} {reason}")


class _Scan:
    def __init__(self, buf: memoryview, budget: PickleBudget) -> None:
        self.buf = buf
        self.budget = budget
        self.max_units = budget.max_units + int(len(buf) * budget.units_per_file_byte)
        self.weight: list[int] = []  # per object: its own cost
        self.children: list[list[int]] = []  # per object: what it holds
        self.stack: list[int] = []
        self.memo: dict[int, int] = {}

    def run(self, pos: int) -> int:
        buf, end, ops, stack = self.buf, len(self.buf), _OPS, self.stack
        weight, children = self.weight, self.children
        for _ in range(self.budget.max_opcodes):
            if pos >= end:
                raise _Refused("is truncated or corrupt (the pickle ends without STOP)")
            op = ops[buf[pos]]
            if op is None:
                raise _Refused(f"is truncated or corrupt (invalid pickle opcode 0x{buf[pos]:02x} at byte {pos})")
            pos += 1
            value, payload = None, 0
            if op.arg_bytes > 0:
                if pos + op.arg_bytes > end:
                    raise _Refused("is truncated or corrupt (a pickle argument runs past the end)")
                if op.special:
                    value = int.from_bytes(buf[pos:pos + op.arg_bytes], "little")
                pos += op.arg_bytes
                payload = op.arg_bytes
            elif op.arg_bytes < 0:
                pos, payload = self.counted(op.arg_bytes, pos)
            elif op.arg_lines:
                pos, value, payload = self.lines(op, pos)
            if op.special:
                if op.name == "STOP":
                    self.pop()
                    self.measure()
                    return pos
                self.step(op.name, value)
                continue
            if not op.before and not op.mark:  # a constant, a global by name, an empty container
                stack.append(len(weight))
                weight.append(1 + payload // 64)
                children.append([])
                continue
            popped = self.pop_mark() if op.mark else []
            for _ in range(op.before):
                if not stack or stack[-1] == _MARK:
                    raise _Refused("is truncated or corrupt (pickle stack underflow)")
                popped.append(stack.pop())
            if op.mutates:  # popped: [items…, target] (mark slice first, then the ones below it, reversed)
                target = popped.pop()
                children[target].extend(popped)
                stack.append(target)
            elif op.pushes:
                stack.append(len(weight))
                weight.append(1 + payload // 64)
                children.append(popped)
        raise _Refused(f"is refused: its pickle has more than {self.budget.max_opcodes:,} opcodes")

    def counted(self, code: int, pos: int) -> tuple[int, int]:
        size, signed = _LENGTH_PREFIX[code]
        if pos + size > len(self.buf):
            raise _Refused("is truncated or corrupt (a pickle argument runs past the end)")
        length = int.from_bytes(self.buf[pos:pos + size], "little", signed=signed)
        pos += size
        if length < 0 or pos + length > len(self.buf):
            raise _Refused(f"is truncated or corrupt (a pickle value declares {length:,} bytes; "
                           f"{len(self.buf) - pos:,} are left)")
        return pos + length, length

    def lines(self, op: _Op, pos: int) -> tuple[int, int | None, int]:
        start = pos
        for _ in range(op.arg_lines):
            newline = bytes(self.buf[pos:pos + _MAX_LINE]).find(b"\n")
            if newline < 0:
                raise _Refused("is truncated or corrupt (an unterminated pickle text argument)")
            pos += newline + 1
        value = None
        if op.special:
            text = bytes(self.buf[start:pos - 1])
            if not text.isdigit():
                raise _Refused("is truncated or corrupt (a bad memo index)")
            value = int(text)
        return pos, value, pos - start

    def pop(self) -> int:
        if not self.stack or self.stack[-1] == _MARK:
            raise _Refused("is truncated or corrupt (pickle stack underflow)")
        return self.stack.pop()

    def pop_mark(self) -> list[int]:
        stack = self.stack
        for mark in range(len(stack) - 1, -1, -1):
            if stack[mark] == _MARK:
                items = stack[mark + 1:]
                del stack[mark:]
                return items
        raise _Refused("is truncated or corrupt (pickle MARK missing)")

    def step(self, name: str, value: int | None) -> None:
        stack = self.stack
        if name == "MARK":
            stack.append(_MARK)
        elif name in _MEMO_PUT:
            if not stack or stack[-1] == _MARK:
                raise _Refused("is truncated or corrupt (memo store of nothing)")
            index = len(self.memo) if value is None else value
            if index > 2 * len(self.weight) + 256:  # pickle's memo is an array: index 2^32 would allocate 32 GB
                raise _Refused(f"is truncated or corrupt (memo index {index:,} far beyond the objects made)")
            self.memo[index] = stack[-1]
        elif name in _MEMO_GET:
            if value not in self.memo:
                raise _Refused("is truncated or corrupt (memo reference to nothing)")
            stack.append(self.memo[value])
        elif name == "DUP":
            stack.append(self.pop())
            stack.append(stack[-1])
        elif name == "POP":
            stack.pop() if stack else self.pop()
        elif name == "POP_MARK":
            self.pop_mark()

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
