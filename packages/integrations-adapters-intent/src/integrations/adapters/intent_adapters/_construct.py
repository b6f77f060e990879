"""Models built from values already known to be valid, without pydantic's per-call overhead.

The intent connectors build a few small models on every call (the record of a page or of a
verification, the page itself, the query an alignment check sends, the verification it
reads back) from values they made or checked themselves. For models this small pydantic's
validation, and even more ``model_construct`` (a generic loop over the fields in Python),
cost more than the rest of the call. A builder made here sets the instance's state the way
``model_construct`` does in its last step (the field values, the set of fields given, no
extra and no private values) directly.

Whether that still builds exactly what ``model_construct`` builds is checked once per model,
on a sample, against the installed pydantic: if a release builds models differently, the
builder falls back to ``model_construct`` itself and is only slower. Nothing here validates:
callers pass complete, valid values (every field, defaults included).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

from pydantic import BaseModel

__all__ = ["Builder", "builder"]

M = TypeVar("M", bound=BaseModel)

Builder = Callable[[dict[str, Any]], M]
"""Builds a model from a dict holding every one of its fields (the dict becomes its state)."""

_new: Final = object.__new__
_set: Final = object.__setattr__


def _slot_setters() -> tuple[Callable[[object, object], None], ...] | None:
    """The setters of the four slots every pydantic model instance holds, or None when this
    pydantic has other slots (the builders then set them by name, a little slower)."""
    slots = vars(BaseModel)
    names = ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
    try:
        return tuple(slots[name].__set__ for name in names)
    except (KeyError, AttributeError):
        return None


_SETTERS: Final = _slot_setters()


def builder(model: type[M], given: Iterable[str], sample: Mapping[str, Any]) -> Builder[M]:
    """A function building `model` from a dict of all its fields, as if only `given` were
    passed to the constructor (they are the model's ``model_fields_set``).

    `sample` (every field) is built both ways once, now: the direct way is used only when
    it matches ``model_construct`` in every part of the instance.
    """
    fields = set(given)
    copy = fields.copy

    def by_name(values: dict[str, Any]) -> M:
        built = _new(model)
        _set(built, "__dict__", values)
        _set(built, "__pydantic_fields_set__", copy())
        _set(built, "__pydantic_extra__", None)
        _set(built, "__pydantic_private__", None)
        return built

    direct = by_name
    if _SETTERS is not None:
        set_dict, set_fields, set_extra, set_private = _SETTERS

        def by_slot(values: dict[str, Any]) -> M:
            built = _new(model)
            set_dict(built, values)
            set_fields(built, copy())
            set_extra(built, None)
            set_private(built, None)
            return built

        direct = by_slot

    def constructed(values: dict[str, Any]) -> M:
        return model.model_construct(copy(), **values)

    if set(sample) != set(model.model_fields) or not fields <= set(sample):
        raise ValueError(f"a sample of {model.__name__} names every field, and only those")
    if model.__private_attributes__:
        return constructed
    try:
        same = _state(direct(dict(sample))) == _state(constructed(dict(sample)))
    except Exception:  # any difference in how models are built means: no shortcut
        return constructed
    return direct if same else constructed


def _state(model: BaseModel) -> tuple[Any, ...]:
    return (
        type(model),
        vars(model),
        model.model_fields_set,
        model.model_extra,
        getattr(model, "__pydantic_private__", "absent"),
        model.model_dump(mode="json"),
        model.model_dump(mode="json", exclude_unset=True),
    )
