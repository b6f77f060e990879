"""HTTP connectors: httpx exceptions and HTTP statuses mapped into the library's error tree.

Wrap requests in `map_http_errors()` and pass responses to `raise_for_status()`; sessions
then retry what is transient, honour ``Retry-After``, re-authenticate after an expired token
and count failures for the circuit breaker. Install httpx with the ``http`` extra
(``integrations-base[http]``); this module never imports it itself.

```python
import httpx
from integrations.base.http import map_http_errors, raise_for_status

with map_http_errors():
    response = raise_for_status(client.get("/items", params={"limit": 10}))
```

Connectors build their client with ``transport=egress_transport(config.egress)``: for a config
from a tenant, every request's destination is then checked by the egress policy and
connections go to the addresses checked (see the "Untrusted configuration" docs page).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from ._egress import EgressGuard
from ._http import error_from_response, map_http_errors, parse_retry_after, raise_for_status

if TYPE_CHECKING:
    import httpx

__all__ = [
    "async_egress_transport",
    "egress_transport",
    "error_from_response",
    "map_http_errors",
    "parse_retry_after",
    "raise_for_status",
]


def egress_transport(
    guard: EgressGuard, *, verify: ssl.SSLContext | str | bool = True, cert: Any = None
) -> httpx.BaseTransport | None:
    """The transport an httpx client of a connector uses: pass it as ``transport=``.

    For a restricted guard (a config from a tenant), a transport that checks every request's
    destination and connects only to checked addresses. For the unrestricted guard, None:
    the client keeps httpx's own transport, proxies from the environment included.
    """
    if not guard.restricted:
        return None
    from ._http_egress import EgressTransport

    return EgressTransport(guard, verify=verify, cert=cert)


def async_egress_transport(
    guard: EgressGuard, *, verify: ssl.SSLContext | str | bool = True, cert: Any = None
) -> httpx.AsyncBaseTransport | None:
    """The async twin of `egress_transport`, for ``httpx.AsyncClient(transport=...)``."""
    if not guard.restricted:
        return None
    from ._http_egress import AsyncEgressTransport

    return AsyncEgressTransport(guard, verify=verify, cert=cert)
