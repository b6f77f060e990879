"""Every name a public signature mentions can be imported from a public module.

A core module type-checked with ``mypy --strict`` must be able to write down the types it
receives: if `registry.get` returns a `ConnectorClass`, some public module must export
`ConnectorClass`. This test walks the public modules of integrations-base, reads the annotations
of every public function, method, property and class constructor as written (aliases
included, not expanded), and resolves each name the way the defining module does. A name that
resolves to an object defined in integrations-base must be exported (in ``__all__``) by a
public module.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import inspect
import pkgutil
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, TypeVar

import pytest

import integrations.base

BASE = "integrations.base"


def _public_modules() -> list[ModuleType]:
    """`integrations.base` and every submodule whose dotted path has no private part."""
    found = [integrations.base]
    for info in pkgutil.walk_packages(integrations.base.__path__, prefix=f"{BASE}."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        found.append(importlib.import_module(info.name))
    return found


PUBLIC_MODULES = _public_modules()


def _exported() -> dict[int, str]:
    """Every object a public module exports, by identity, with one place it is exported from."""
    exported: dict[int, str] = {}
    for module in PUBLIC_MODULES:
        for name in getattr(module, "__all__", ()):
            exported.setdefault(id(getattr(module, name)), f"{module.__name__}.{name}")
    return exported


EXPORTED = _exported()


def _callables(owner: str, value: Any) -> Iterator[tuple[str, Callable[..., Any]]]:
    """The public callables of an exported object: itself, or a class's public members."""
    if inspect.isfunction(value):
        yield owner, value
        return
    if not inspect.isclass(value) or not value.__module__.startswith(BASE):
        return
    for name, member in vars(value).items():
        if name.startswith("_") and name != "__init__":
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property) and member.fget is not None:
            member = member.fget
        if isinstance(member, functools.cached_property):
            member = member.func
        if inspect.isfunction(member):
            yield f"{owner}.{name}", member


def _surface() -> list[tuple[str, Callable[..., Any]]]:
    seen: set[int] = set()
    surface: list[tuple[str, Callable[..., Any]]] = []
    for module in PUBLIC_MODULES:
        for name in getattr(module, "__all__", ()):
            owner = f"{module.__name__}.{name}"
            for qualified, function in _callables(owner, getattr(module, name)):
                if id(function) not in seen:
                    seen.add(id(function))
                    surface.append((qualified, function))
    return surface


SURFACE = _surface()


def _names_in(annotation: str) -> Iterator[list[str]]:
    """The dotted names an annotation (a string, under postponed evaluation) mentions."""
    yield from _names_of(ast.parse(annotation, mode="eval").body)


def _names_of(node: ast.expr) -> Iterator[list[str]]:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):  # a quoted forward reference inside
            yield from _names_in(node.value)
        return
    if isinstance(node, ast.Subscript):
        yield from _names_of(node.value)
        if not (isinstance(node.value, ast.Name) and node.value.id == "Literal"):
            yield from _names_of(node.slice)  # Literal's arguments are values, not types
        return
    dotted = _dotted(node)
    if dotted is not None:
        yield dotted
        return
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.expr):
            yield from _names_of(child)


def _dotted(node: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    return [node.id, *parts] if isinstance(node, ast.Name) else None


def _namespace(module: ModuleType) -> dict[str, Any]:
    """The module's globals plus what it imports only for type checking (when importable)."""
    namespace = dict(vars(module))
    tree = ast.parse(inspect.getsource(module))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"):
            continue
        for statement in node.body:
            namespace.update(_imported(statement, module))
    return namespace


def _imported(statement: ast.stmt, module: ModuleType) -> dict[str, Any]:
    names: dict[str, Any] = {}
    try:
        if isinstance(statement, ast.ImportFrom):
            package = module.__package__ if statement.level else None
            source = "." * statement.level + (statement.module or "")
            target = importlib.import_module(source, package)
            for alias in statement.names:
                names[alias.asname or alias.name] = getattr(target, alias.name)
        elif isinstance(statement, ast.Import):
            for alias in statement.names:
                top = importlib.import_module(alias.name)
                names[alias.asname or alias.name.split(".")[0]] = (
                    top if alias.asname else sys.modules[alias.name.split(".")[0]]
                )
    except ImportError:  # an optional dependency that is not installed: not ours to export
        pass
    return names


def _resolve(parts: list[str], namespace: dict[str, Any]) -> Any:
    if parts[0] in namespace:
        value = namespace[parts[0]]
    elif hasattr(builtins, parts[0]):
        value = getattr(builtins, parts[0])
    else:
        raise LookupError(".".join(parts))
    for part in parts[1:]:
        value = getattr(value, part)
    return value


def _defined_in_base(value: Any) -> bool:
    """Whether `value` is an object integrations-base defines (a class, function or alias).

    Type variables are not: a signature's caller never writes them down.
    """
    if isinstance(value, (ModuleType, TypeVar)):
        return False
    module = getattr(value, "__module__", None)
    if isinstance(module, str) and (module == BASE or module.startswith(BASE + ".")):
        return True
    # A type alias (``X = A | B``) carries no module: look for it among the modules' globals.
    return any(
        value is candidate
        for name, module_object in sys.modules.items()
        if name.startswith(BASE + ".")
        for candidate in vars(module_object).values()
        if not isinstance(candidate, (type, ModuleType)) and not callable(candidate)
    )


def _unexported(function: Callable[..., Any]) -> list[str]:
    namespace = _namespace(sys.modules[function.__module__])
    missing: list[str] = []
    for annotation in function.__annotations__.values():
        text = annotation if isinstance(annotation, str) else None
        if text is None:
            continue
        for parts in _names_in(text):
            dotted = ".".join(parts)
            try:
                value = _resolve(parts, namespace)
            except (LookupError, AttributeError):
                missing.append(f"{dotted} (does not resolve in {function.__module__})")
                continue
            if _defined_in_base(value) and id(value) not in EXPORTED:
                missing.append(dotted)
    return missing


def test_the_walk_covers_the_public_modules_and_their_signatures() -> None:
    names = {module.__name__ for module in PUBLIC_MODULES}
    expected = {BASE, *(f"{BASE}.{name}" for name in ("registry", "lifecycle", "testing", "http"))}
    assert expected <= names
    from integrations.base import lifecycle, registry, testing

    walked = {id(function) for _, function in SURFACE}
    assert id(registry.get) in walked
    assert id(registry.Registry.get) in walked
    assert id(lifecycle.run_lifecycle) in walked
    assert id(testing.ConnectorCertification.write_records) in walked


def test_the_check_catches_a_name_no_public_module_exports() -> None:
    from integrations.base import _registry

    def sample(name: str) -> _registry._Slot:  # a private class: no public module exports it
        raise NotImplementedError

    sample.__module__ = _registry.__name__
    sample.__annotations__ = {"name": "str", "return": "_Slot"}

    assert _unexported(sample) == ["_Slot"]


@pytest.mark.parametrize(("qualified", "function"), SURFACE, ids=[q for q, _ in SURFACE])
def test_every_name_in_a_public_signature_is_exported(
    qualified: str, function: Callable[..., Any]
) -> None:
    assert _unexported(function) == [], f"{qualified} names types no public module exports"
