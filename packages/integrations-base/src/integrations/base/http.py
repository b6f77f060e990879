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
"""

from ._http import error_from_response, map_http_errors, parse_retry_after, raise_for_status

__all__ = ["error_from_response", "map_http_errors", "parse_retry_after", "raise_for_status"]
