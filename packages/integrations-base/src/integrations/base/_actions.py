"""Named actions' input schemas: found at discovery, compiled once, checked before any I/O.

A manifest names each action's draft 7 JSON Schema by a path relative to the manifest file.
Discovery checks that the file is there and looks like a draft 7 schema of a JSON object —
reading JSON only, so that neither the connector nor a validator is imported — and hands
sessions the entry with the path made absolute. A session compiles a schema the first time
an action is validated (with `jsonschema`, the base's ``actions`` extra, imported then) and
keeps the compiled validator for every later call and session.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from ._exceptions import ConnectorUnavailable, ContractError, InvalidRequest
from ._manifest import ActionSpec, ConnectorEntry

__all__ = ["ActionSchema", "action_schema", "resolve_action_schemas"]

DRAFT7_URIS: Final = frozenset(
    {"http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-07/schema"}
)
INSTALL_HINT: Final = "pip install 'integrations-base[actions]'"


def _shape_problem(schema: object) -> str | None:
    """Why `schema` cannot be an action's input schema, judged without a validator."""
    if not isinstance(schema, dict):
        return "is not a JSON object"
    declared = schema.get("$schema")
    if declared is not None and declared not in DRAFT7_URIS:
        return f"declares $schema {declared!r}, not draft 7"
    kind = schema.get("type", "object")
    if kind != "object" and not (isinstance(kind, list) and "object" in kind):
        return "does not describe a JSON object (an action's input is one)"
    return None


@lru_cache(maxsize=256)
def _read_schema(path: str, _stamp: tuple[int, int]) -> tuple[dict[str, Any] | None, str | None]:
    """The schema in file `path` (keyed by its mtime and size too), or why it is unusable."""
    try:
        with open(path, "rb") as handle:
            document = json.loads(handle.read())
    except OSError as error:
        return None, f"cannot be read ({error.strerror or error})"
    except (ValueError, RecursionError) as error:
        return None, f"is not valid JSON ({error})"
    problem = _shape_problem(document)
    return (None, problem) if problem else (document, None)


def _schema_file(manifest: Path, ref: str) -> tuple[Path | None, str | None]:
    """The absolute path of schema `ref` beside `manifest`, or why it is refused."""
    if os.path.isabs(ref) or ref.startswith(("/", "\\")):
        return None, "must be a path relative to the manifest"
    base = manifest.resolve().parent
    path = (base / ref).resolve()
    if not path.is_relative_to(base):
        return None, "leaves the manifest's directory"
    try:
        stat = path.stat()
    except OSError:
        return None, "does not exist"
    _, problem = _read_schema(str(path), (stat.st_mtime_ns, stat.st_size))
    return (None, problem) if problem else (path, None)


def resolve_action_schemas(
    entry: ConnectorEntry, manifest: Path
) -> tuple[ConnectorEntry, str | None]:
    """`entry` with its actions' schema paths made absolute, or the first problem found.

    An entry whose schema is missing or not a draft 7 object schema is refused at discovery
    with the reason; nothing is imported to find out.
    """
    resolved: list[ActionSpec] = []
    for spec in entry.actions:
        if isinstance(spec.schema_ref, dict):
            problem = _shape_problem(spec.schema_ref)
            if problem:
                return entry, f"action {spec.name}: inline schema {problem}"
            resolved.append(spec)
            continue
        path, problem = _schema_file(manifest, spec.schema_ref)
        if path is None:
            return entry, f"action {spec.name}: schema {spec.schema_ref} {problem}"
        resolved.append(spec.model_copy(update={"schema_ref": str(path)}))
    return entry.model_copy(update={"actions": tuple(resolved)}), None


def _pointer(parts: Iterable[object]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


class ActionSchema:
    """A compiled draft 7 schema: `check` raises `InvalidRequest` naming the JSON pointer.

    Messages name the pointer, the rule and property names, never input values (an input may
    carry prompts or personal data).
    """

    __slots__ = ("_best_match", "_validator")

    def __init__(self, schema: dict[str, Any], label: str) -> None:
        """Compile `schema` (`label` names it in errors)."""
        try:
            jsonschema = importlib.import_module("jsonschema")
        except ImportError:
            raise ConnectorUnavailable(
                f"validating action input needs jsonschema: {INSTALL_HINT}"
            ) from None
        validator_class: Any = jsonschema.Draft7Validator
        try:
            validator_class.check_schema(schema)
        except jsonschema.SchemaError as error:
            where = _pointer(error.absolute_path) or "/"
            raise ContractError(f"{label} is not a valid draft 7 schema at {where}") from None
        self._validator: Any = validator_class(schema)
        self._best_match: Callable[[Any], Any] = jsonschema.exceptions.best_match

    def check(self, action: str, data: object) -> None:
        """Raise `InvalidRequest` when `data` does not follow the schema."""
        if self._validator.is_valid(data):
            return
        error = self._best_match(self._validator.iter_errors(data))
        pointer, reason = _explain(error)
        raise InvalidRequest(f"invalid input for action {action} at {pointer}: {reason}")


def _explain(error: Any) -> tuple[str, str]:
    """The pointer and a value-free reason for one `jsonschema` error."""
    pointer = _pointer(error.absolute_path)
    rule = error.validator
    instance = error.instance
    if rule == "required" and isinstance(instance, dict):
        missing = next((name for name in error.validator_value if name not in instance), None)
        if isinstance(missing, str):
            return f"{pointer}/{missing}", "is required"
    if rule == "additionalProperties" and isinstance(instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(str(name) for name in instance if name not in allowed)
        if extra:
            return f"{pointer}/{extra[0]}", "is not an allowed property"
    if rule == "type":
        return pointer or "/", f"must be of type {error.validator_value}"
    return pointer or "/", f"fails {rule} {json.dumps(error.validator_value)[:80]}"


@lru_cache(maxsize=256)
def _compiled_file(path: str) -> ActionSchema:
    with open(path, "rb") as handle:
        return ActionSchema(json.loads(handle.read()), f"schema {path}")


@lru_cache(maxsize=256)
def _compiled_inline(text: str) -> ActionSchema:
    return ActionSchema(json.loads(text), "inline schema")


def action_schema(spec: ActionSpec) -> ActionSchema:
    """The compiled schema of `spec`, built once per schema file (or inline schema).

    A relative path is taken from the working directory: discovery has already made the
    paths of manifest entries absolute.
    """
    if isinstance(spec.schema_ref, dict):
        return _compiled_inline(json.dumps(spec.schema_ref, sort_keys=True))
    path = os.path.abspath(spec.schema_ref)
    try:
        return _compiled_file(path)
    except OSError as error:
        raise ContractError(
            f"action {spec.name}: schema {spec.schema_ref} cannot be read "
            f"({error.strerror or error})"
        ) from None
    except ValueError:
        raise ContractError(f"action {spec.name}: schema {spec.schema_ref} is not JSON") from None
