"""The manifest format: one pydantic schema, parsed with per-entry isolation.

A manifest is a JSON document listing connectors by name, module and class, with optional
metadata. The minimal document is ``{"connectors": [{"name": ..., "module": ..., "class":
...}]}``. Validation happens entry by entry, so one bad entry never hides its siblings.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from ._connector import ACTION_NAME_PATTERN, Capability, action_name_problem
from ._exceptions import ManifestError

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

__all__ = [
    "DEFAULT_CONTRACT_RANGE",
    "MANIFEST_FILENAME",
    "QUORUM_POLICY_PATTERN",
    "SCHEMA_VERSION",
    "ActionSpec",
    "AuditSpec",
    "AuthSpec",
    "CapabilitySpec",
    "ConnectorEntry",
    "EntryProblem",
    "ManifestDocument",
    "ParsedManifest",
    "contract_admits",
    "contract_specifier",
    "manifest_json_schema",
    "parse_manifest",
]

MANIFEST_FILENAME = "manifest.json"
SCHEMA_VERSION = 1
DEFAULT_CONTRACT_RANGE = ">=1,<2"
"""Contract versions assumed when an entry declares none: every 1.x release."""

_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,127}$"
_MODULE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
_CLASS_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_EXTRA_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._\-]*[A-Za-z0-9])?$"
_CERTIFICATION_PATTERN = (
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
)


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class CapabilitySpec(_Spec):
    """One data operation a connector offers, with the flags governance needs."""

    action: Capability = Field(description="The operation: fetch, push or sync.")
    idempotent: bool = Field(
        default=False,
        validation_alias=AliasChoices("idempotent", "idempotency"),
        description="Repeating the operation has no further effect, so it may be retried.",
    )
    quorum: int = Field(
        default=0,
        ge=0,
        validation_alias=AliasChoices("quorum", "quorum_policy"),
        description="Approvers the caller's context must carry; 0 means no quorum.",
    )
    schema_ref: str | None = Field(
        default=None,
        validation_alias=AliasChoices("schema_ref", "schema"),
        description="Reference to the JSON Schema of the operation's records.",
    )


QUORUM_POLICY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$"
"""What a quorum policy may be called (``AI_SENSITIVE``): resolved from governance settings."""

_OPERATION_NAMES = frozenset(capability.value for capability in Capability)


class ActionSpec(_Spec):
    """One named action a connector offers (``model_invoke``): its input schema and flags."""

    name: str = Field(alias="action", pattern=ACTION_NAME_PATTERN, description="The action's name.")
    schema_ref: str | dict[str, Any] = Field(
        validation_alias=AliasChoices("schema_ref", "schema"),
        description=(
            "The draft 7 JSON Schema of the action's input: a path relative to the manifest "
            "file (shipped beside it), or the schema itself as an object."
        ),
    )
    quorum: int | str = Field(
        default=0,
        validation_alias=AliasChoices("quorum", "quorum_policy"),
        description=(
            "Approvers the caller's context must carry: a count, or the name of a quorum "
            "policy defined in governance settings (`quorum_policies`); 0 means no quorum."
        ),
    )
    idempotent: bool = Field(
        default=False,
        validation_alias=AliasChoices("idempotent", "idempotency"),
        description="Repeating the action has no further effect, so it may be retried.",
    )
    streaming: bool = Field(default=False, description="The action may be streamed.")

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        problem = action_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("quorum", mode="before")
    @classmethod
    def _quorum(cls, value: Any) -> Any:
        if isinstance(value, dict):  # the legacy {"min_approvers": N}
            value = value.get("min_approvers", 0)
        if isinstance(value, bool):
            raise ValueError("a quorum is a count or a policy name")
        if isinstance(value, int) and value < 0:
            raise ValueError("a quorum count must be greater than or equal to 0")
        if isinstance(value, str) and not re.match(QUORUM_POLICY_PATTERN, value):
            raise ValueError(f"{value!r} is not a quorum policy name")
        return value

    @field_validator("schema_ref")
    @classmethod
    def _schema(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        if isinstance(value, str) and not value.strip():
            raise ValueError("a schema path may not be empty")
        return value


def _is_named_action(item: Any) -> bool:
    """Whether a `capabilities` item names an action rather than fetch, push or sync."""
    return (
        isinstance(item, dict)
        and isinstance(item.get("action"), str)
        and (item["action"] not in _OPERATION_NAMES)
    )


def _normal_capability(item: Any) -> Any:
    if isinstance(item, str):
        return {"action": item}
    if isinstance(item, dict) and isinstance(item.get("quorum_policy"), dict):
        return {**item, "quorum_policy": item["quorum_policy"].get("min_approvers", 0)}
    return item


class AuthSpec(_Spec):
    """How the connector authenticates against its system."""

    type: str = Field(default="none", description="Kind of credential, e.g. api_key, oauth2.")
    scopes: tuple[str, ...] = Field(default=(), description="Scopes the connector asks for.")


class AuditSpec(_Spec):
    """Audit requirements: when required, an operation that cannot be audited does not run."""

    required: bool = Field(default=False, description="Fail closed when audit is unavailable.")
    events: tuple[str, ...] = Field(default=(), description="Event kinds the connector emits.")


class SigningSpec(_Spec):
    """Whether the entry must be signed (manifest and module file), and by which key."""

    required: bool = Field(
        default=False,
        description=(
            "The manifest must carry a valid signature (manifest.sig) by a key the "
            "application trusts; otherwise the entry is refused before import."
        ),
    )
    publisher_key_id: str | None = Field(
        default=None,
        description="Id of the key the publisher signs with; another key is refused.",
    )


_NO_AUTH, _NO_AUDIT, _NO_SIGNING = AuthSpec(), AuditSpec(), SigningSpec()


class ConnectorEntry(_Spec):
    """One connector declared by a manifest."""

    name: str = Field(pattern=_NAME_PATTERN, description="Registry name, e.g. memory.sqlite.")
    module: str = Field(pattern=_MODULE_PATTERN, description="Module that defines the class.")
    class_name: str = Field(
        alias="class", pattern=_CLASS_PATTERN, description="Connector class in `module`."
    )
    description: str = Field(default="", description="One line for listings.")
    version: str | None = Field(default=None, description="Version of the connector itself.")
    capabilities: tuple[CapabilitySpec, ...] = Field(
        default=(),
        description="Operations offered; empty means: take them from the class when loaded.",
    )
    contract: str = Field(
        default=DEFAULT_CONTRACT_RANGE,
        description="Contract versions supported, as a version specifier (PEP 440).",
    )
    tags: tuple[str, ...] = Field(default=(), description="Free-form labels for filtering.")
    config_schema: str | None = Field(
        default=None, description="Reference to the JSON Schema of the config model."
    )
    # The defaults are shared frozen instances: building three models per entry was most of
    # the cost of validating a manifest.
    auth: AuthSpec = Field(
        default_factory=lambda: _NO_AUTH, description="How the connector authenticates."
    )
    audit: AuditSpec = Field(
        default_factory=lambda: _NO_AUDIT, description="Audit requirements of the connector."
    )
    signing: SigningSpec = Field(
        default_factory=lambda: _NO_SIGNING, description="Signature requirements of the entry."
    )
    override: bool = Field(
        default=False,
        description="Application manifests only: replace a connector of the same name.",
    )
    extra: str | None = Field(
        default=None,
        pattern=_EXTRA_PATTERN,
        description=(
            "The optional extra of the shipping distribution the connector needs (its driver). "
            "When that extra's requirements are not installed the connector is listed as "
            "unavailable, with the pip command that installs them."
        ),
    )
    actions: tuple[ActionSpec, ...] = Field(
        default=(),
        description=(
            "Named actions offered (``model_invoke`` ...). A `capabilities` item whose action "
            "is not fetch, push or sync is moved here, as legacy descriptors list them."
        ),
    )
    certification: str | None = Field(
        default=None,
        pattern=_CERTIFICATION_PATTERN,
        description=(
            "The certification kit subclass that fits the connector, as module:Class; "
            "`integrations certify` runs it. The module must belong to the shipping "
            "distribution (or, in an application manifest, to an allowed prefix)."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _named_actions(cls, data: Any) -> Any:
        """Move named actions listed among `capabilities` to `actions` (one pass, no copy
        when there are none), and reject a name listed twice across both."""
        if not isinstance(data, dict):
            return data
        capabilities = data.get("capabilities")
        if not isinstance(capabilities, list) or not any(map(_is_named_action, capabilities)):
            if "actions" in data:
                _unique_actions(data["actions"])
            return data
        listed = data.get("actions", [])
        if not isinstance(listed, list):
            return data
        named = [item for item in capabilities if _is_named_action(item)]
        actions = [*listed, *named]
        _unique_actions(actions)
        rest = [item for item in capabilities if not _is_named_action(item)]
        return {**data, "capabilities": rest, "actions": actions}

    @field_validator("contract")
    @classmethod
    def _valid_specifier(cls, value: str) -> str:
        if _simple_clauses(value) is None:
            contract_specifier(value)
        return value

    @field_validator("capabilities", mode="before")
    @classmethod
    def _normal_capabilities(cls, value: Any) -> Any:
        """Accept the short form ``"fetch"`` and the legacy ``{"min_approvers": N}`` quorum.

        One pass per entry, before pydantic validates the items, and it also rejects an
        action listed twice.
        """
        if not isinstance(value, (list, tuple)):
            return value
        items = [_normal_capability(item) for item in value]
        actions = [item.get("action") for item in items if isinstance(item, dict)]
        if len(set(map(str, actions))) != len(actions):
            raise ValueError("each action may be listed once")
        return items

    @property
    def capability_names(self) -> tuple[str, ...]:
        """The declared actions' names, sorted (what listings show)."""
        return tuple(sorted(spec.action.value for spec in self.capabilities))

    @property
    def declared_capabilities(self) -> frozenset[Capability]:
        """The capabilities named by the manifest (empty when it names none)."""
        return frozenset(spec.action for spec in self.capabilities)

    @property
    def certification_target(self) -> tuple[str, str] | None:
        """The certification class's module and name, when the entry names one."""
        if self.certification is None:
            return None
        module, _, name = self.certification.partition(":")
        return module, name

    def capability(self, action: Capability) -> CapabilitySpec | None:
        """The manifest's flags for `action`, if it lists that action."""
        return next((spec for spec in self.capabilities if spec.action is action), None)

    @property
    def action_names(self) -> frozenset[str]:
        """The names of the named actions the manifest declares."""
        return frozenset(spec.name for spec in self.actions)

    def action(self, name: str) -> ActionSpec | None:
        """The manifest's declaration of named action `name`, if it lists it."""
        return next((spec for spec in self.actions if spec.name == name), None)


def _unique_actions(actions: Any) -> None:
    if not isinstance(actions, list):
        return
    names = [item.get("action") for item in actions if isinstance(item, dict)]
    if len(set(map(str, names))) != len(names):
        raise ValueError("each action may be listed once")


class ManifestDocument(_Spec):
    """A manifest file: schema version and connector entries."""

    schema_uri: str | None = Field(
        default=None, alias="$schema", description="Where editors find this JSON Schema."
    )
    schema_version: Literal[1] = Field(default=1, description="Version of the manifest format.")
    connectors: tuple[ConnectorEntry, ...] = Field(
        default=(), description="The connectors this manifest declares."
    )


_SIMPLE_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)\s*$")
_RELEASE = re.compile(r"^\d+(?:\.\d+)*$")
_COMPARE: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}


def _release(text: str, length: int) -> tuple[int, ...]:
    parts = tuple(int(part) for part in text.split("."))
    return parts + (0,) * (length - len(parts))


@lru_cache(maxsize=256)
def _simple_clauses(text: str) -> tuple[tuple[str, str], ...] | None:
    """(operator, release) pairs when every clause is a plain comparison, else None."""
    clauses = [_SIMPLE_CLAUSE.match(clause) for clause in text.split(",")]
    if not all(clauses):
        return None
    return tuple((match[1], match[2]) for match in clauses if match is not None)


@lru_cache(maxsize=256)
def contract_admits(text: str, version: str) -> bool:
    """Whether contract range `text` admits `version` (a PEP 440 specifier).

    Plain comparisons of release numbers, which is what manifests use, are decided here;
    anything else (wildcards, ``~=``, pre-releases) goes to `packaging`, imported then.
    """
    clauses = _simple_clauses(text)
    if clauses is None or not _RELEASE.match(version):
        return contract_specifier(text).contains(version, prereleases=True)
    width = max([len(version.split("."))] + [len(release.split(".")) for _, release in clauses])
    installed = _release(version, width)
    return all(_COMPARE[op](installed, _release(release, width)) for op, release in clauses)


@lru_cache(maxsize=256)
def contract_specifier(text: str) -> SpecifierSet:
    """Parse a contract version range once; many entries share the same few ranges."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise ValueError(f"not a version specifier: {text!r}") from None


@dataclass(frozen=True, slots=True)
class EntryProblem:
    """An entry the manifest declares but that does not follow the schema."""

    index: int
    name: str | None
    pointer: str
    reason: str


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    """The valid entries of a manifest (with their index) and the invalid ones."""

    source: str
    entries: tuple[tuple[int, ConnectorEntry], ...]
    problems: tuple[EntryProblem, ...]


_DOCUMENT = TypeAdapter(ManifestDocument)
_ENTRY = TypeAdapter(ConnectorEntry)


def _pointer(location: tuple[int | str, ...]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in location)


def _first_error(error: ValidationError, prefix: tuple[int | str, ...] = ()) -> tuple[str, str]:
    """The JSON pointer and message of the first problem pydantic found."""
    first = error.errors(include_url=False, include_input=False)[0]
    return _pointer(prefix + tuple(first["loc"])), first["msg"]


def _decode(data: bytes | str, source: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an integer too long
        raise ManifestError(f"{source}: not valid JSON: {error}", source) from None
    except RecursionError:
        raise ManifestError(f"{source}: JSON nested too deeply", source) from None


def parse_manifest(data: bytes | str, source: str) -> ParsedManifest:
    """Parse and validate a manifest document.

    Raises `ManifestError` when the document as a whole is unusable (not JSON, not an
    object, unknown schema version, `connectors` not a list). Invalid entries are reported in
    `ParsedManifest.problems` while valid siblings are kept.
    """
    try:  # the common case, a valid document, in one pass of pydantic's JSON parser
        parsed = _DOCUMENT.validate_json(data)
    except (ValidationError, ValueError, RecursionError):
        return _parse_entry_by_entry(_decode(data, source), source)
    return ParsedManifest(source, tuple(enumerate(parsed.connectors)), ())


def _parse_entry_by_entry(document: Any, source: str) -> ParsedManifest:
    """The slow path, taken only when the document has a problem: find which entries are bad."""
    if not isinstance(document, dict):
        raise ManifestError(f"{source}: a manifest is a JSON object", source, "")
    raw_entries = document.get("connectors", [])
    header = {key: value for key, value in document.items() if key != "connectors"}
    try:
        _DOCUMENT.validate_python(header)
    except ValidationError as error:
        pointer, message = _first_error(error)
        raise ManifestError(f"{source}#{pointer}: {message}", source, pointer) from None
    if not isinstance(raw_entries, list):
        raise ManifestError(f"{source}#/connectors: must be a list", source, "/connectors")
    entries: list[tuple[int, ConnectorEntry]] = []
    problems: list[EntryProblem] = []
    for index, raw in enumerate(raw_entries):
        try:
            entries.append((index, _ENTRY.validate_python(raw)))
        except ValidationError as error:
            pointer, message = _first_error(error, ("connectors", index))
            name = raw.get("name") if isinstance(raw, dict) else None
            problems.append(
                EntryProblem(index, name if isinstance(name, str) else None, pointer, message)
            )
    return ParsedManifest(source, tuple(entries), tuple(problems))


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of manifest documents, as shipped in `manifest.schema.json`."""
    schema = _DOCUMENT.json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "integrations connector manifest"
    # Entries may name a capability by its action alone ("fetch"), as the validator accepts.
    capabilities = schema["$defs"]["ConnectorEntry"]["properties"]["capabilities"]
    # ... and list named actions there too, as legacy descriptors do.
    capabilities["items"] = {
        "anyOf": [
            {"$ref": "#/$defs/Capability"},
            {"$ref": "#/$defs/CapabilitySpec"},
            {"$ref": "#/$defs/ActionSpec"},
        ]
    }
    schema["$defs"]["CapabilitySpec"]["properties"].update(_LEGACY_CAPABILITY_FIELDS)
    action = schema["$defs"]["ActionSpec"]
    action["properties"].update(
        {
            "schema": {**action["properties"]["schema_ref"], "description": "Same as schema_ref."},
            "quorum_policy": {**action["properties"]["quorum"], "description": "Same as quorum."},
            "idempotency": {"type": "boolean", "description": "Same as idempotent."},
        }
    )
    action["required"] = ["action"]
    return schema


_LEGACY_CAPABILITY_FIELDS: dict[str, Any] = {
    "idempotency": {
        "type": "boolean",
        "deprecated": True,
        "description": "Legacy name of `idempotent`.",
    },
    "quorum_policy": {
        "anyOf": [
            {"type": "integer", "minimum": 0},
            {
                "type": "object",
                "properties": {"min_approvers": {"type": "integer", "minimum": 0}},
            },
        ],
        "deprecated": True,
        "description": 'Legacy form of `quorum`: a count or {"min_approvers": N}.',
    },
    "schema": {"type": "string", "deprecated": True, "description": "Legacy name of `schema_ref`."},
}
"""Legacy descriptor fields the loader accepts, listed so that editors accept them too."""
