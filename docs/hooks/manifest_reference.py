"""MkDocs hook: render the manifest reference from the manifest JSON Schema.

A page that contains the placeholder ``<!-- manifest-schema -->`` gets, in its place, one table
per object of ``integrations.base.registry.manifest_json_schema()`` (field, type, default,
description), the enumerations it uses, and the raw JSON Schema in a collapsible block. The
reference is therefore always the schema the installed code validates against.

The packages are imported from the environment when installed (the tox ``docs`` environment
installs them editable) and otherwise from the source trees under ``packages/*/src``.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any

PLACEHOLDER = "<!-- manifest-schema -->"

log = logging.getLogger("mkdocs.hooks.manifest_reference")


@functools.cache
def _load_schema(repo_root: Path) -> dict[str, Any]:
    try:
        from integrations.base.registry import manifest_json_schema
    except ImportError:
        for src in sorted((repo_root / "packages").glob("*/src")):
            if str(src) not in sys.path:
                sys.path.append(str(src))
        # Forget a partial import, so the namespace is searched again on the new path.
        stale = [m for m in sys.modules if m == "integrations" or m.startswith("integrations.")]
        for name in stale:
            del sys.modules[name]
        from integrations.base.registry import manifest_json_schema
    return manifest_json_schema()


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _anchor(name: str) -> str:
    return "schema-" + name.lower()


def _code(value: str) -> str:
    """A Markdown code span that survives a table cell (pipes are escaped as entities)."""
    if "|" in value:
        return (
            "<code>"
            + value.replace("&", "&amp;").replace("<", "&lt;").replace("|", "&#124;")
            + "</code>"
        )
    ticks = "``" if "`" in value else "`"
    pad = " " if ticks == "``" else ""
    return f"{ticks}{pad}{value}{pad}{ticks}"


def _type(prop: dict[str, Any]) -> str:
    """A short human form of a property's JSON Schema type."""
    if "$ref" in prop:
        name = _ref_name(prop["$ref"])
        return f"[{name}](#{_anchor(name)})"
    if "anyOf" in prop:
        variants = [_type(variant) for variant in prop["anyOf"]]
        return " or ".join(variants)
    if "const" in prop:
        return f"{_code(json.dumps(prop['const']))} (constant)"
    if "enum" in prop:
        return " or ".join(_code(json.dumps(value)) for value in prop["enum"])
    kind = prop.get("type", "any")
    if kind == "array":
        items = prop.get("items", {})
        text = f"array of {_type(items)}" if items else "array"
    elif kind == "null":
        text = "null"
    else:
        text = str(kind)
    constraints = []
    if "minimum" in prop:
        constraints.append(f"≥ {prop['minimum']}")
    if "exclusiveMinimum" in prop:
        constraints.append(f"> {prop['exclusiveMinimum']}")
    if "maximum" in prop:
        constraints.append(f"≤ {prop['maximum']}")
    if "minLength" in prop:
        constraints.append(f"at least {prop['minLength']} characters")
    if "maxLength" in prop:
        constraints.append(f"at most {prop['maxLength']} characters")
    if "pattern" in prop:
        constraints.append(f"matching {_code(prop['pattern'])}")
    if constraints:
        text += " (" + ", ".join(constraints) + ")"
    return text


def _default(name: str, prop: dict[str, Any], required: set[str], defs: dict[str, Any]) -> str:
    if name in required:
        return "**required**"
    if "default" in prop:
        return _code(json.dumps(prop["default"]))
    if "$ref" in prop and defs.get(_ref_name(prop["$ref"]), {}).get("type") == "object":
        # A nested object built from its own defaults (pydantic's default_factory).
        return f"{_code('{}')} (every field at its default)"
    return "—"


def _description(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    text = prop.get("description")
    if not text and "$ref" in prop:
        text = defs.get(_ref_name(prop["$ref"]), {}).get("description")
    return " ".join(str(text).split()) if text else "—"


def _object_table(schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", ()))
    lines = ["| Field | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for name, prop in schema.get("properties", {}).items():
        cells = [
            _code(name),
            _type(prop),
            _default(name, prop, required, defs),
            _description(prop, defs),
        ]
        lines.append("| " + " | ".join(cell.replace("\n", " ") for cell in cells) + " |")
    if schema.get("additionalProperties") is False:
        lines += ["", "No other keys are allowed."]
    return lines


def _enum_section(name: str, schema: dict[str, Any]) -> list[str]:
    values = ", ".join(_code(json.dumps(value)) for value in schema.get("enum", ()))
    lines = [f"### `{name}` {{#{_anchor(name)}}}", ""]
    if schema.get("description"):
        lines += [schema["description"], ""]
    lines += [f"One of: {values}.", ""]
    return lines


def _order(schema: dict[str, Any]) -> list[str]:
    """Definitions in the order a reader meets them, walking references from the root."""
    defs = schema.get("$defs", {})
    seen: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = _ref_name(ref)
                if name not in seen and name in defs:
                    seen.append(name)
                    walk(defs[name])
            for key, value in node.items():
                if key != "$defs":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return seen + [name for name in defs if name not in seen]


def render(schema: dict[str, Any]) -> str:
    """The Markdown of the generated reference."""
    defs = schema.get("$defs", {})
    lines = [f"### Manifest document {{#{_anchor('document')}}}", ""]
    if schema.get("description"):
        lines += [schema["description"], ""]
    lines += _object_table(schema, defs)
    lines.append("")
    for name in _order(schema):
        definition = defs[name]
        if "enum" in definition:
            lines += _enum_section(name, definition)
            continue
        lines += [f"### `{name}` {{#{_anchor(name)}}}", ""]
        if definition.get("description"):
            lines += [" ".join(definition["description"].split()), ""]
        lines += _object_table(definition, defs)
        lines.append("")
    raw = json.dumps(schema, indent=2)
    lines += ['??? abstract "The raw JSON Schema"', "", "    ```json"]
    lines += ["    " + line for line in raw.splitlines()]
    lines += ["    ```", ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the placeholder with the reference generated from the schema."""
    if PLACEHOLDER not in markdown:
        return markdown
    repo_root = Path(config["config_file_path"]).resolve().parent
    schema = _load_schema(repo_root)
    log.debug("rendering the manifest reference into %s", page.file.src_uri)
    return markdown.replace(PLACEHOLDER, render(schema))
