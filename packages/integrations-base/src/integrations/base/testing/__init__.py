"""Test support for distributions: the shared-shape check and the certification kit.

`distribution_layout_problems` and `read_package_manifest` check that an installed
distribution has the shape every distribution shares (a leaf package under a PEP 420
namespace, its manifest announced by an entry point, a ``py.typed`` marker)::

    assert distribution_layout_problems("acme-integrations", "acme_integrations") == []

`ConnectorCertification` is the certification kit: a connector's test module subclasses it in
a few lines and inherits every standard check (see "Certifying your connector")::

    class TestTicketsCertification(ConnectorCertification):
        connector_class = TicketsConnector
        registry_name = "acme.tickets"

`LoopbackHTTPServer` is the test server HTTP connectors are tested against: a threaded server
on a loopback address with latency and fault controls, to which a connector family's test
server only adds its routes (see "Test servers for HTTP connectors")::

    with LoopbackHTTPServer() as server:
        server.route("GET", "/health", lambda request: HTTPReply(body={"status": "ok"}))
        server.fail_next(status=503, retry_after=1)

The kit needs pytest and pytest-timeout (the ``testing`` extra); they are imported only when a
kit name is first used, so the shape check works without them. The test server needs only the
standard library; it too is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._layout import distribution_layout_problems, read_package_manifest
from ._spec import BOOLEAN_FLAGS, KIT_VERSION

if TYPE_CHECKING:
    from ._harness import GovernedSession
    from ._http_server import (
        HTTPDrop,
        HTTPReply,
        HTTPRequest,
        HTTPStream,
        InvalidBody,
        LoopbackHTTPServer,
        RouteHandler,
    )
    from ._kit import ConnectorCertification, override_problems, standard_checks
    from ._runner import (
        CertificationReport,
        CheckResult,
        NotConfigured,
        certification_class,
        certify,
    )

__all__ = [
    "BOOLEAN_FLAGS",
    "KIT_VERSION",
    "CertificationReport",
    "CheckResult",
    "ConnectorCertification",
    "GovernedSession",
    "HTTPDrop",
    "HTTPReply",
    "HTTPRequest",
    "HTTPStream",
    "InvalidBody",
    "LoopbackHTTPServer",
    "NotConfigured",
    "RouteHandler",
    "certification_class",
    "certify",
    "distribution_layout_problems",
    "override_problems",
    "read_package_manifest",
    "standard_checks",
]

_LAZY = {
    "GovernedSession": "._harness",
    "HTTPDrop": "._http_server",
    "HTTPReply": "._http_server",
    "HTTPRequest": "._http_server",
    "HTTPStream": "._http_server",
    "InvalidBody": "._http_server",
    "LoopbackHTTPServer": "._http_server",
    "RouteHandler": "._http_server",
    "ConnectorCertification": "._kit",
    "override_problems": "._kit",
    "standard_checks": "._kit",
    "CertificationReport": "._runner",
    "CheckResult": "._runner",
    "NotConfigured": "._runner",
    "certification_class": "._runner",
    "certify": "._runner",
}

_MISSING_EXTRA = (
    "the certification kit needs pytest and pytest-timeout; "
    "install them with: pip install 'integrations-base[testing]'"
)


def __getattr__(name: str) -> Any:
    """Import the kit and the test server on first use, so that the shape check needs no pytest."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    try:
        value = getattr(importlib.import_module(module, __name__), name)
    except ModuleNotFoundError as error:
        if error.name in ("pytest", "_pytest"):
            raise ModuleNotFoundError(_MISSING_EXTRA, name=error.name) from error
        raise
    globals()[name] = value
    return value
