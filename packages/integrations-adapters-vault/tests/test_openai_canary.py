"""The API key of ``vault.openai`` shows nowhere: logs, audit events, reprs, errors, CLI output.

A canary key is resolved from its reference and used for real requests to a loopback API:
answered, streamed, refused (400, schema, quorum), throttled and retried, failing (503) and
refused as a wrong key (the API's 401 message quotes part of the key it got). Everything the
library writes or raises meanwhile is captured and scanned for the key, and for the part of it
the API quoted: every logger at DEBUG (httpx and httpcore included), the audit trail in
memory, as JSON lines and as log lines, the reprs of the config, connector, session and
results, every exception's full traceback, the legacy shim's audit hook, and the output of
``integrations show`` and ``integrations certify``.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))  # the helper module next to this file
from integrations.adapters.vault_connectors.openai import OpenAIConfig
from integrations.adapters.vault_connectors.testing import OpenAIServer, openai_server
from integrations.base import (
    NO_RETRY,
    FanOutAuditSink,
    IntegrationsError,
    JsonLinesAuditSink,
    LoggingAuditSink,
    MemoryAuditSink,
    Registry,
    RetryPolicy,
)
from integrations.base._cli import cli
from integrations.base.registry import default_registry
from openai_support import APPROVED, CONNECTOR, KEY, KEY_VARIABLE, UNAPPROVED, chat, governance
from vault_connectors.ai.openai import connector as legacy

pytestmark = pytest.mark.timeout(120)

QUOTED = f"{KEY[:3]}****{KEY[-4:]}"
"""How the API's 401 message quotes a key it refuses."""


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with openai_server(api_key=KEY) as running:
        yield running


def failure(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def test_the_key_appears_nowhere(
    server: OpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    memory = MemoryAuditSink()
    jsonl = JsonLinesAuditSink(tmp_path / "audit.jsonl")
    log_stream = io.StringIO()
    handler = logging.StreamHandler(log_stream)
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    texts: list[str] = []
    registry = Registry()
    config = {"url": server.url, "timeout_seconds": 5}
    try:
        with caplog.at_level(logging.DEBUG):
            governed = governance(FanOutAuditSink([memory, jsonl, LoggingAuditSink()]))
            with registry.open(
                CONNECTOR, config=config, context=APPROVED, governance=governed
            ) as session:
                texts.append(repr(session))
                texts.append(repr(session.connector))
                result = session.invoke("model_invoke", chat("hello"))
                texts.append(repr(result))
                with session.stream("model_invoke", chat("streamed")) as chunks:
                    texts.extend(repr(chunk) for chunk in chunks)
                server.fail_next(status=429, retry_after=0.05)
                texts.append(repr(session.invoke("model_invoke", chat("throttled"))))
                server.fail_next(3, status=503)
                server.fail_next(status=429, retry_after=30, endpoint=None)
                refused: list[tuple[dict[str, Any], RetryPolicy | None]] = [
                    (chat("failing"), None),  # 503 three times
                    (chat("throttled again"), NO_RETRY),  # 429
                    (chat("hot", temperature=9), None),  # the API's 400
                    ({"model": "gpt-4o-mini"}, None),  # the schema's refusal
                ]
                for data, retry in refused:
                    try:
                        session.invoke("model_invoke", data, retry=retry)
                    except IntegrationsError as error:
                        texts.append(failure(error))
            with registry.open(
                CONNECTOR, config=config, context=UNAPPROVED, governance=governed
            ) as session:
                try:
                    session.invoke("model_invoke", chat("unapproved"))
                except IntegrationsError as error:
                    texts.append(failure(error))
            served_elsewhere = OpenAIServer(api_key="sk-another-key-0000")
            with served_elsewhere:
                refusing = {**config, "url": served_elsewhere.url}
                with registry.open(
                    CONNECTOR, config=refusing, context=APPROVED, governance=governed
                ) as session:
                    try:
                        session.invoke("model_invoke", chat("refused"))  # sends the canary
                    except IntegrationsError as error:
                        texts.append(failure(error))
            resolved = OpenAIConfig.from_mapping(config, secrets=governed.secrets)
            texts.extend([repr(resolved), str(resolved), resolved.model_dump_json()])
            texts.append(json.dumps(OpenAIConfig.model_json_schema()))
            texts.extend(legacy_texts(server, monkeypatch))
    finally:
        logging.getLogger().removeHandler(handler)
        jsonl.close()
    texts.append(log_stream.getvalue())
    texts.append(caplog.text)
    texts.append((tmp_path / "audit.jsonl").read_text("utf-8"))
    texts.append(json.dumps([event.to_dict() for event in memory.events]))
    texts.append(repr(memory.events))
    texts.extend(cli_texts(server, tmp_path))

    assert len(texts) >= 25
    assert sum("invalid_api_key" in text for text in texts) >= 1  # the 401 path was scanned
    assert sum("RateLimited" in text for text in texts) >= 1
    assert sum("usage" in text for text in texts) >= 1
    leaks = [text for text in texts if KEY in text or QUOTED in text]
    assert leaks == []


def legacy_texts(server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the legacy shim shows: reprs, the audit hook's payloads, its errors."""
    texts: list[str] = []
    hooked: list[Any] = []
    monkeypatch.setattr(default_registry, "governance", governance())
    context = {"tenant_id": "acme", "actor_id": "alice", "quorum": ["bob", "carol"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # test_legacy_shim checks them
        config = legacy.ConnectorConfig(base_url=server.url, timeout_seconds=5)
        shim = legacy.OpenAIConnector(config, audit_hook=lambda *event: hooked.append(event))
        provider = legacy.VaultAuthProvider()
        texts.append(json.dumps(shim.execute(context, "model_invoke", chat("legacy"))))
        try:
            shim.execute(context, "model_invoke", {"messages": 3})
        except IntegrationsError as error:
            texts.append(failure(error))
    texts.extend([repr(shim), repr(config), repr(provider), json.dumps(shim.health())])
    texts.append(repr(hooked))
    return texts


def cli_texts(server: OpenAIServer, tmp_path: Path) -> list[str]:
    """The output of ``integrations show`` and ``integrations certify`` with the key configured."""
    path = tmp_path / "openai.json"
    path.write_text(json.dumps({"url": server.url, "api_key": f"env:{KEY_VARIABLE}"}), "utf-8")
    runner = CliRunner(env={"COLUMNS": "200", KEY_VARIABLE: KEY})
    shown = runner.invoke(cli, ["show", CONNECTOR], catch_exceptions=False)
    certified = runner.invoke(
        cli, ["certify", CONNECTOR, "--config", str(path)], catch_exceptions=False
    )
    assert certified.exit_code == 0, certified.output
    return [shown.output, certified.output, certified.stderr]
