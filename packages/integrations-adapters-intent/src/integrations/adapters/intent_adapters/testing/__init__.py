"""Testing support for intent connectors: certification with signals, and real test servers.

`IntentCertification` needs the certification kit (``integrations-base[testing]``);
`EngineCertification`, `LocalCertification` and `SignalsCertification` are what
`integrations certify` runs for each connector (the manifest names them). `IntentEngineServer`
serves the Intent Engine's HTTP API on 127.0.0.1, quirks included, with latency and fault
controls; `SignalSourceServer` serves signals over HTTP, as a source the collector runs.
"""

from ._certification import IntentCertification
from ._engine_certification import EngineCertification
from ._engine_server import IntentEngineServer
from ._local_certification import LocalCertification
from ._signal_sources import (
    BlockingHttpSignalSource,
    HttpSignalSource,
    JsonFileSignalSource,
    SignalSourceServer,
    StaticSignalSource,
)
from ._signals_certification import SignalsCertification

__all__ = [
    "BlockingHttpSignalSource",
    "EngineCertification",
    "HttpSignalSource",
    "IntentCertification",
    "IntentEngineServer",
    "JsonFileSignalSource",
    "LocalCertification",
    "SignalSourceServer",
    "SignalsCertification",
    "StaticSignalSource",
]
