"""A pickle's cost, measured before it is unpickled: opcodes, nesting depth and the size it unfolds to.

Unpickling itself is linear in the opcodes, but memo references (`h`/`BINGET`) let a few hundred
bytes describe a tuple of 2^60 leaves: hashing it (as a dict key), comparing it or printing it
then never ends. `check_budget` walks the opcodes once (`pickletools`' descriptions, no object is
built), records which object holds which (memo references are shared edges, not copies), and
counts every object as often as it is reachable — the size any traversal of the result costs.
Lengths are checked against the bytes present, so no declared length makes the unpickler allocate.

A call can allocate too: `numpy.ndarray((2**31,), uint8)` is 60 bytes of REDUCE. Every call (REDUCE,
NEWOBJ, NEWOBJ_EX) of a known allocating constructor (NumPy's ndarray/empty/zeros/ones/full/_reconstruct,
torch's empty/zeros/ones/full/rand/randn) has its shape × itemsize worked out from the arguments the pickle
spells (literals, tuples and lists, memo references, numpy.dtype calls) and charged against
`max_allocation_bytes`; an allocation that cannot be worked out is refused too.
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
    max_allocation_bytes: int = 64 << 20  # what constructors called by the pickle may allocate in all …
    allocation_per_file_byte: int = 4  # … plus this much per byte of the file


DEFAULT_BUDGET = PickleBudget()
_MARK = -1
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_MUTATORS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}  # fill the object below
_SPECIAL = _MEMO_PUT | _MEMO_GET | {"MARK", "DUP", "POP", "POP_MARK", "PROTO", "FRAME", "READONLY_BUFFER", "STOP"}
_LENGTH_PREFIX = {-2: (1, False), -3: (4, True), -4: (4, False), -5: (8, False)}  # arg.n → (bytes, signed)
_MAX_LINE = 1 << 16
_LITERALS = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "SHORT_BINUNICODE", "BINUNICODE",
             "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING", "SHORT_BINBYTES", "BINBYTES",
             "BINBYTES8", "GLOBAL", "STACK_GLOBAL", "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
             "EMPTY_LIST", "LIST", "NONE", "NEWTRUE", "NEWFALSE"}
_CALLS = {"REDUCE", "NEWOBJ", "NEWOBJ_EX"}
_REVERSED = {"TUPLE2", "TUPLE3", "STACK_GLOBAL"}  # their items were popped top first


@dataclass(frozen=True)
class _Allocator:
    """Where an allocating constructor's shape and dtype are among its positional arguments."""

    shape: int | None  # index of the shape argument; None: every positional argument is a dimension (torch)
    dtype: int | None  # index of the dtype argument; None: not positional
    default_itemsize: int  # without a dtype argument


_NUMPY_MODULES = ("numpy", "numpy.core.multiarray", "numpy.core.numeric", "numpy._core.multiarray",
                  "numpy._core.numeric")
_ALLOCATORS: dict[tuple[str, str], _Allocator] = {
    **{(m, "ndarray"): _Allocator(0, 1, 8) for m in _NUMPY_MODULES},
    **{(m, name): _Allocator(0, 1, 8) for m in _NUMPY_MODULES for name in ("empty", "zeros", "ones")},
    **{(m, "full"): _Allocator(0, 2, 8) for m in _NUMPY_MODULES},
    **{(m, "_reconstruct"): _Allocator(1, 2, 8) for m in _NUMPY_MODULES},
    **{(f"{m}.ndarray", "__new__"): _Allocator(1, 2, 8) for m in _NUMPY_MODULES},  # getattr(ndarray, "__new__")
    **{("torch", name): _Allocator(None, None, 16) for name in ("empty", "zeros", "ones", "rand", "randn")},
    ("torch", "full"): _Allocator(0, None, 16),  # full(size, fill_value)
    ("torch", "empty_strided"): _Allocator(0, None, 16),  # empty_strided(size, stride): at most size's elements
}
_PASS_THROUGH = {("torch", "Size"), ("builtins", "tuple"), ("builtins", "list"),
                 ("_codecs", "encode"), ("numpy", "array")}  # f(x) is x, for the shapes and dtypes they spell
_DTYPES = {("numpy", "dtype"), ("numpy.core.multiarray", "dtype"), ("numpy._core.multiarray", "dtype")}
_TORCH_ITEMSIZE = {"bool": 1, "uint8": 1, "int8": 1, "half": 2, "float16": 2, "bfloat16": 2, "int16": 2, "short": 2,
                   "float": 4, "float32": 4, "int": 4, "int32": 4, "cfloat": 8, "complex64": 8, "double": 8,
                   "float64": 8, "long": 8, "int64": 8, "cdouble": 16, "complex128": 16}
_MAX_ITEMS = 64  # a shape or an argument tuple longer than this is not measured (and refused if it matters)
_MAX_EVAL_DEPTH = 8


@dataclass(frozen=True)
class _Global:
    module: str
    name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "module", {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(self.module,
                                                                                                 self.module))


@dataclass(frozen=True)
class _Dtype:
    itemsize: int


_UNKNOWN = object()  # a value the scan cannot work out


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
        self.spelled: dict[int, tuple[str, int, int]] = {}  # object → (opcode, its argument's bytes) for literals
        self.calls: dict[int, tuple[str, int, int]] = {}  # object → (call opcode, callee, arguments)
        self.max_allocation = budget.max_allocation_bytes + len(buf) * budget.allocation_per_file_byte
        self.allocated = 0

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
            value, payload, arg_start = None, 0, pos
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
                if op.name in _LITERALS:
                    self.spelled[len(weight)] = (op.name, arg_start, pos)
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
                if op.name in _REVERSED:
                    popped.reverse()
                if op.name in _LITERALS:
                    self.spelled[len(weight)] = (op.name, arg_start, pos)
                elif op.name in _CALLS:
                    self.calls[len(weight)] = (op.name, popped[-1], popped[-2])
                    self.charge(op.name, popped)
                stack.append(len(weight))
                weight.append(1 + payload // 64)
                children.append(popped)
        raise _Refused(f"is refused: its pickle has more than {self.budget.max_opcodes:,} opcodes")

    # -- what calls allocate

    def charge(self, call: str, popped: list[int]) -> None:
        """Refuse a call of an allocating constructor whose shape × itemsize (added to the earlier ones) is over
        the budget, or cannot be worked out. popped: [args, callable] (NEWOBJ_EX: [kwargs, args, cls])."""
        self.evaluated: dict[int, object] = {}  # per call: memo references make a tree of shared objects
        callee = self.evaluate(popped[-1])
        if not isinstance(callee, _Global):
            return  # the result of another call: only our own allow-listed callables return callables
        allocator = _ALLOCATORS.get((callee.module, callee.name))
        if allocator is None:
            return
        what = f"{callee.module}.{callee.name}"
        args = self.evaluate(popped[-2])
        if call == "NEWOBJ_EX" or not isinstance(args, tuple):
            raise _Refused(f"is refused: its pickle calls {what} with arguments whose size cannot be measured")
        shape = args if allocator.shape is None else args[allocator.shape] if allocator.shape < len(args) else ()
        count = _count(shape)
        itemsize: object = allocator.default_itemsize
        if allocator.dtype is not None and allocator.dtype < len(args) and args[allocator.dtype] is not None:
            itemsize = self.itemsize(args[allocator.dtype])
        if count is None or itemsize is None and count > 1:
            raise _Refused(f"is refused: its pickle calls {what} with a shape or dtype that cannot be measured")
        self.allocated += count * (itemsize or 16)
        if self.allocated > self.max_allocation:
            raise _Refused(f"is refused: its pickle would allocate {_gib(self.allocated)} (here {what} of {count:,} "
                           f"values × {itemsize or 16} bytes); at most {_gib(self.max_allocation)} may be")

    def evaluate(self, obj: int, depth: int = 0) -> object:
        """The value the pickle spells for object `obj` as far as the scan can tell: ints, strings, tuples
        (lists as tuples), globals, dtypes; `_UNKNOWN` for anything else."""
        if depth > _MAX_EVAL_DEPTH:
            return _UNKNOWN
        if obj not in self.evaluated:
            self.evaluated[obj] = self._evaluate(obj, depth)
        return self.evaluated[obj]

    def _evaluate(self, obj: int, depth: int) -> object:
        if obj in self.calls:
            return self.call_value(obj, depth)
        spelled = self.spelled.get(obj)
        if spelled is None:
            return _UNKNOWN
        name, start, end = spelled
        items = self.children[obj]
        if name in ("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_TUPLE", "EMPTY_LIST", "LIST"):
            if len(items) > _MAX_ITEMS:
                return _UNKNOWN
            return tuple(self.evaluate(i, depth + 1) for i in items)
        if name == "STACK_GLOBAL":
            module, qualified = (self.evaluate(i, depth + 1) for i in items)
            return _Global(module, qualified) if isinstance(module, str) and isinstance(qualified, str) else _UNKNOWN
        if name in ("NONE", "NEWTRUE", "NEWFALSE"):
            return {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name]
        return _literal(name, bytes(self.buf[start:end]))

    def call_value(self, obj: int, depth: int) -> object:
        """What a call made, where it matters for sizes: a pass-through of its argument, a dtype, or an
        attribute of a global (`getattr(torch._C._VariableFunctionsClass, "empty")`)."""
        call, callee_id, args_id = self.calls[obj]
        callee = self.evaluate(callee_id, depth + 1)
        args = self.evaluate(args_id, depth + 1)
        if call == "NEWOBJ_EX" or not isinstance(callee, _Global) or not isinstance(args, tuple) or not args:
            return _UNKNOWN
        key = (callee.module, callee.name)
        if key in _PASS_THROUGH:
            return args[0]
        if key == ("builtins", "getattr") and len(args) == 2 and isinstance(args[0], _Global) \
                and isinstance(args[1], str):
            owner = args[0]
            module = "torch" if owner.module.startswith("torch") else f"{owner.module}.{owner.name}"
            return _Global(module, args[1])
        if key in _DTYPES:
            size = _numpy_itemsize(args[0])
            for state_id in self.children[obj][2:]:  # BUILD(dtype, state): state[5] is the item size it sets
                state = self.evaluate(state_id, depth + 1)
                if not (isinstance(state, tuple) and len(state) > 5 and isinstance(state[5], int)):
                    return _UNKNOWN
                size = max(size, state[5]) if size is not None else None
            return _Dtype(size) if size is not None else _UNKNOWN
        return _UNKNOWN

    def itemsize(self, dtype: object) -> int | None:
        if isinstance(dtype, _Dtype):
            return dtype.itemsize
        if isinstance(dtype, _Global):
            if dtype.module == "torch":
                return _TORCH_ITEMSIZE.get(dtype.name)
            if dtype.module in _NUMPY_MODULES or dtype.module == "builtins":
                return _numpy_itemsize(dtype.name)
            return None
        return _numpy_itemsize(dtype)

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


def _count(shape: object) -> int | None:
    """Values in an array of `shape` (an int or a nested tuple of ints); None when it is not one."""
    if isinstance(shape, bool):
        return None
    if isinstance(shape, int):
        return max(shape, 0)
    if isinstance(shape, tuple):
        count = 1
        for dim in shape:
            inner = _count(dim)
            if inner is None:
                return None
            count *= inner
        return count
    return None


def _numpy_itemsize(spec: object) -> int | None:
    """The item size of a dtype spelled as text ("<f4", "uint8", "V2000"), without parsing Python."""
    if isinstance(spec, bytes):
        spec = spec.decode("latin1")
    if not isinstance(spec, str) or not 0 < len(spec) <= 40:
        return None
    import numpy as np  # only a pickle that calls a constructor gets here

    try:
        dtype = np.dtype(spec)
    except (TypeError, ValueError, SyntaxError):
        return None
    return None if dtype.hasobject else dtype.itemsize


def _literal(name: str, arg: bytes) -> object:
    """The value of a literal opcode from its argument bytes (with its length prefix or newline)."""
    try:
        if name in ("BININT", "BININT1", "BININT2"):
            return int.from_bytes(arg, "little", signed=name == "BININT")
        if name in ("LONG1", "LONG4"):
            prefix = 1 if name == "LONG1" else 4
            return int.from_bytes(arg[prefix:], "little", signed=True) if len(arg) <= prefix + 64 else _UNKNOWN
        if name in ("INT", "LONG"):
            text = arg.rstrip(b"\n").rstrip(b"L")
            return int(text) if len(text) <= 100 else _UNKNOWN
        if name == "GLOBAL":
            module, qualified = arg.decode("utf-8").rstrip("\n").split("\n")
            return _Global(module, qualified)
        if name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING",
                    "SHORT_BINBYTES", "BINBYTES", "BINBYTES8"):
            prefix = {"SHORT_BINUNICODE": 1, "SHORT_BINSTRING": 1, "SHORT_BINBYTES": 1, "BINUNICODE8": 8,
                      "BINBYTES8": 8}.get(name, 4)
            data = arg[prefix:]
            if len(data) > 256:
                return _UNKNOWN
            return data if "BYTES" in name else data.decode("utf-8" if "UNICODE" in name else "latin1")
        if name in ("UNICODE", "STRING"):
            text = arg.rstrip(b"\n")
            if len(text) > 256:
                return _UNKNOWN
            if name == "STRING":
                return text[1:-1].decode("latin1") if len(text) >= 2 and text[:1] in (b"'", b'"') else _UNKNOWN
            return text.decode("raw_unicode_escape")
    except (ValueError, UnicodeDecodeError):
        return _UNKNOWN
    return _UNKNOWN


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"
