"""The names the base tests use for `integrations.base.testing.LoopbackHTTPServer`.

Resilience is tested against real sockets, not a patched client: the server can delay an
answer, drop the connection without answering, answer 429 with ``Retry-After``, 500 or 503,
and then succeed. Each path has a script of steps (`LoopbackServer.script`), used one per
request; when a script runs out its last step repeats. Every request is recorded with its
arrival time (`seen`, `gaps`), so a test can measure the delays a client chose between attempts
from the server's side. A path without a script answers 404.

The server itself is the one connector families test against; this module only keeps the
short names these tests were written with.
"""

from __future__ import annotations

from integrations.base.testing import HTTPDrop as Drop
from integrations.base.testing import HTTPReply as Reply
from integrations.base.testing import HTTPRequest as Seen
from integrations.base.testing import LoopbackHTTPServer as LoopbackServer

__all__ = ["Drop", "LoopbackServer", "Reply", "Seen", "Step"]

Step = Reply | Drop
"""One scripted answer."""
