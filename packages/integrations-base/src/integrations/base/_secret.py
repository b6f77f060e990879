"""The `Secret` value type: a string that never shows itself by accident."""

from __future__ import annotations

from typing import Any, Final

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

__all__ = ["MASK", "Secret"]

MASK: Final = "**********"
RESOLVER_CONTEXT_KEY: Final = "integrations.secret_resolver"
"""Validation-context key under which a `SecretResolver` resolves references in `Secret` fields."""


class Secret:
    """A secret value whose `repr`, `str`, JSON and log renderings are masked.

    Connectors read the raw value through the single explicit accessor `reveal()`, so every
    place that handles the raw value is easy to find in review.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        """Return the raw secret value."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, format_spec: str) -> str:
        return format(MASK, format_spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling must not leak the value through a generic __dict__ dump; keep the type.
        return (Secret, (self._value,))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda _secret: MASK, when_used="json"
            ),
        )

    @classmethod
    def _validate(cls, value: object, info: core_schema.ValidationInfo) -> Secret:
        """A `Secret` from a str or a `Secret`, resolving a reference when a resolver is given.

        JSON renders a secret as the mask; Python-mode dumps keep the `Secret` itself, so a
        dumped config validates again without losing its secrets.
        """
        if isinstance(value, Secret):
            value = value._value
        if not isinstance(value, str):
            raise ValueError("a secret must be a string")
        context = info.context
        resolver = context.get(RESOLVER_CONTEXT_KEY) if isinstance(context, dict) else None
        return cls(resolver.resolve(value, info.field_name) if resolver is not None else value)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, _core_schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "password", "writeOnly": True, "x-secret": True}
