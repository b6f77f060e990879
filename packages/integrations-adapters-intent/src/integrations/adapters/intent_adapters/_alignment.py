"""Verification and the alignment check, typed, through any intent connector or session.

An action on a topic is allowed only when the topic's intent is strong enough. Both intent
connectors answer a ``verify`` fetch with one `Verification`; these functions build that
fetch and read its answer, so the check runs through a governed session (audited, under the
policies) and reads the same whichever connector is behind it.
"""

from __future__ import annotations

from typing import Protocol

from integrations.base import ConnectorError, FetchQuery, FetchResult

from ._intent import Verification, verification_of, verification_query

__all__ = ["intent_aligned", "intent_aligned_async", "verify_intent", "verify_intent_async"]


class _Fetches(Protocol):
    def fetch(self, query: FetchQuery) -> FetchResult: ...


class _FetchesAsync(Protocol):
    async def fetch(self, query: FetchQuery) -> FetchResult: ...


def verify_intent(through: _Fetches, topic: str, threshold: float | None = None) -> Verification:
    """Whether an action on `topic` is allowed, asked through a session or connector."""
    return _read(through.fetch(verification_query(topic, threshold)))


async def verify_intent_async(
    through: _FetchesAsync, topic: str, threshold: float | None = None
) -> Verification:
    """The async twin of `verify_intent` (an `AsyncSession` or async connector)."""
    return _read(await through.fetch(verification_query(topic, threshold)))


def intent_aligned(through: _Fetches, topic: str, threshold: float | None = None) -> bool:
    """Whether `topic`'s best score reaches `threshold` (default `DEFAULT_THRESHOLD`)."""
    return verify_intent(through, topic, threshold).allowed


async def intent_aligned_async(
    through: _FetchesAsync, topic: str, threshold: float | None = None
) -> bool:
    """The async twin of `intent_aligned`."""
    return (await verify_intent_async(through, topic, threshold)).allowed


def _read(result: FetchResult) -> Verification:
    if len(result.records) != 1:
        raise ConnectorError(f"a verify fetch answered {len(result.records)} records, not one")
    return verification_of(result.records[0].data)
