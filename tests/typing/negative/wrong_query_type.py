# expect-error: arg-type
"""A deliberate type error: platform code passing free text where the contract wants a query.

`tools/check_typing_bites.py` requires mypy to reject this file with `arg-type`; if it ever
type-checks clean, the type check no longer protects callers of the contract.
"""

from typing import Any

from integrations.base import Connector, FetchResult


def search(connector: Connector[Any], text: str) -> FetchResult:
    return connector.fetch(text)
