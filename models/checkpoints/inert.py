"""Inert stand-ins for pickled objects whose classes are never imported: whole `torch.nn` modules and
NVIDIA's `torch_utils.persistence` objects (pickles of StyleGAN2-ADA / StyleGAN3 networks).

NVIDIA's pickles rebuild each network object by executing the Python source stored next to it
(`_reconstruct_persistent_obj(meta)`, meta = {type, version, module_src, class_name, state}).
Here that call builds an `InertModule` that only keeps `state` (`_parameters`, `_buffers`,
`_modules`, `_init_kwargs`, plain attributes); the source is never compiled or run. It is parsed
(`ast.parse` runs nothing) and a file whose source would do anything at import time besides
imports and definitions is refused, as is a class that is not one of NVIDIA's network classes.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterator
from typing import Any, ClassVar

import torch

from models.checkpoints.errors import UnsafePickleError
from models.checkpoints.safe_pickle import AttrDict

# Classes that NVIDIA's pickles hold (stylegan2-ada-pytorch and stylegan3: networks, augment pipe).
NVIDIA_CLASSES = frozenset({
    "Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer", "SynthesisInput",
    "ToRGBLayer", "FullyConnectedLayer", "Conv2dLayer", "Discriminator", "DiscriminatorBlock",
    "DiscriminatorEpilogue", "MinibatchStdLayer", "AugmentPipe",
})
# Decorators NVIDIA's network sources use (a decorator runs at import time, so only these are accepted).
_DECORATORS = frozenset({"persistence.persistent_class", "misc.profiled_function", "staticmethod", "classmethod",
                         "property"})
# Expression nodes that only read names and literals.
_INERT_EXPR = (ast.Constant, ast.Name, ast.Attribute, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.UnaryOp, ast.BinOp,
               ast.BoolOp, ast.Compare, ast.Subscript, ast.Slice, ast.Starred, ast.expr_context, ast.operator,
               ast.unaryop, ast.boolop, ast.cmpop)


class InertModule:
    """A pickled object kept as data: the path of its class and its state dict. No code of it runs."""

    INERT: ClassVar[bool] = True  # may be rebuilt by copyreg._reconstructor
    class_path: ClassVar[str] = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}  # (dict state, slot state)
        self.state = dict(state) if isinstance(state, dict) else {"_state": state}

    @property
    def class_name(self) -> str:
        return self.class_path.rsplit(".", 1)[-1]

    def get(self, name: str, default: Any = None) -> Any:
        return self.state.get(name, default)

    @property
    def children(self) -> dict[str, Any]:
        modules = self.state.get("_modules")
        return {k: v for k, v in modules.items() if isinstance(k, str)} if isinstance(modules, dict) else {}

    def tensors(self, prefix: str = "", seen: set[int] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
        """Parameters and persistent buffers, recursively, named like `nn.Module.state_dict()` (each module
        once: a pickle may make a module its own child)."""
        seen = set() if seen is None else seen
        if id(self) in seen:
            return
        seen.add(id(self))
        skip = self.state.get("_non_persistent_buffers_set")
        skip = {s for s in skip if isinstance(s, str)} if isinstance(skip, (set, frozenset, list, tuple)) else set()
        for group in ("_parameters", "_buffers"):
            values = self.state.get(group)
            for name, value in (values.items() if isinstance(values, dict) else ()):
                if isinstance(name, str) and isinstance(value, torch.Tensor) and name not in skip:
                    yield prefix + name, value
        for name, child in self.children.items():
            if isinstance(child, InertModule):
                yield from child.tensors(f"{prefix}{name}.", seen)

    def __repr__(self) -> str:
        return f"<inert {self.class_path}>"


class PersistentModule(InertModule):
    """An object of NVIDIA's `torch_utils.persistence`, kept as data (its pickled source is not run)."""

    def __init__(self, class_name: str, state: dict[str, Any], source_sha256: str) -> None:
        super().__init__()
        self.persistent_class = class_name
        self.source_sha256 = source_sha256
        self.__setstate__(state)

    @property
    def class_name(self) -> str:
        return self.persistent_class

    def __repr__(self) -> str:
        return f"<inert persistent {self.persistent_class}>"


@functools.cache
def inert_class(module: str, name: str) -> type[InertModule]:
    """One `InertModule` subclass per pickled class path (pickle's NEWOBJ needs a real class)."""
    return type(name, (InertModule,), {"class_path": f"{module}.{name}", "__module__": __name__})


def resolver(file_name: str):
    """find_class fallback for checkpoint pickles: `torch.nn.modules.*` classes and NVIDIA's
    persistence/EasyDict → inert stand-ins; anything else → None (refused by the unpickler)."""

    def reconstruct_persistent(meta: Any) -> PersistentModule:
        if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("module_src"), str):
            raise UnsafePickleError(f"refusing to load {file_name}: malformed torch_utils.persistence record")
        class_name = meta.get("class_name")
        if class_name not in NVIDIA_CLASSES:
            raise UnsafePickleError(f"refusing to load {file_name}: it carries pickled source code for class "
                                    f"{class_name!r}, which is not one of NVIDIA's StyleGAN network classes")
        source = meta["module_src"]
        problem = audit_source(source)
        if problem is not None:
            raise UnsafePickleError(f"refusing to load {file_name}: the source code pickled with {class_name} would "
                                    f"run {problem} on import (it is never run here)")
        state = meta.get("state")
        return PersistentModule(class_name, state if isinstance(state, dict) else {}, _sha256(source))

    def resolve(module: str, name: str) -> Any | None:
        if module == "torch_utils.persistence" and name == "_reconstruct_persistent_obj":
            return reconstruct_persistent
        if module == "dnnlib.util" and name == "EasyDict" or module == "dnnlib" and name == "EasyDict":
            return AttrDict
        if module.startswith("torch.nn.modules.") and name.isidentifier() and name[:1].isupper():
            return inert_class(module, name)
        return None

    return resolve


@functools.lru_cache(maxsize=32)
def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=32)
def audit_source(source: str) -> str | None:
    """What of `source` would run at import time besides imports and definitions ("line 3: os.system(...)"),
    or None. Only parses the source (`ast.parse` executes nothing)."""
    try:
        tree = ast.parse(source.removeprefix("\ufeff"))
    except (SyntaxError, ValueError) as exc:
        return f"unparsable code ({type(exc).__name__})"
    return _audit_body(tree.body)


def _audit_body(body: list[ast.stmt]) -> str | None:
    for stmt in body:
        problem = _audit_statement(stmt)
        if problem is not None:
            return problem
    return None


def _audit_statement(stmt: ast.stmt) -> str | None:
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Pass)):
        return None
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return None  # docstring
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = stmt.args
        evaluated = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
        every_arg = (*args.posonlyargs, *args.args, *args.kwonlyargs, *(a for a in (args.vararg, args.kwarg) if a))
        evaluated += [a.annotation for a in every_arg if a.annotation is not None]
        evaluated += [stmt.returns] if stmt.returns is not None else []  # annotations run at definition time
        return _audit_decorators(stmt) or _audit_exprs(evaluated + _type_param_exprs(stmt), stmt)
    if isinstance(stmt, ast.ClassDef):
        bases = [*stmt.bases, *(k.value for k in stmt.keywords), *_type_param_exprs(stmt)]
        return _audit_decorators(stmt) or _audit_exprs(bases, stmt) or _audit_body(stmt.body)
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        values = [stmt.value] if stmt.value is not None else []
        values += [stmt.annotation] if isinstance(stmt, ast.AnnAssign) else []  # `x: <expr> = 1` runs <expr>
        if all(isinstance(t, ast.Name) for t in targets) and all(_inert(v) for v in values):
            return None
    if isinstance(stmt, ast.If) and _inert(stmt.test):
        return _audit_body(stmt.body) or _audit_body(stmt.orelse)
    return _where(stmt)


def _type_param_exprs(stmt: ast.stmt) -> list[ast.expr]:
    """Bounds and defaults of PEP 695 type parameters (`def f[T: <expr>]()`)."""
    exprs = []
    for param in getattr(stmt, "type_params", ()):
        exprs += [e for e in (getattr(param, "bound", None), getattr(param, "default_value", None)) if e is not None]
    return exprs


def _audit_decorators(stmt: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str | None:
    for decorator in stmt.decorator_list:
        if ast.unparse(decorator) not in _DECORATORS:
            return _where(decorator)
    return None


def _audit_exprs(exprs: list[ast.expr], stmt: ast.stmt) -> str | None:
    for expr in exprs:
        if not _inert(expr):
            return _where(expr)
    return None


def _inert(expr: ast.expr) -> bool:
    return all(isinstance(node, _INERT_EXPR) for node in ast.walk(expr))


def _where(node: ast.AST) -> str:
    text = ast.unparse(node).splitlines()[0]
    return f"line {getattr(node, 'lineno', '?')}: {text[:60]}"
