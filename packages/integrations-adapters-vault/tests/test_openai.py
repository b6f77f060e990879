"""``vault.openai`` against a real OpenAI-compatible API served on 127.0.0.1.

Sessions are opened through the registry, as platform code opens them, so the manifest's
declarations (schemas, quorum policies, idempotency) are what the session enforces. The API
key comes from its secret reference (``env:PV_OPENAI_API_KEY`` by default). Failures are
real answers of the server: the API's error objects with 400, 401, 404, 429 and 5xx, answers
held back past the client's timeout, streams cut short.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpcore
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helper module next to this file
from integrations.adapters.vault_connectors.openai import (
    DEFAULT_API_KEY,
    DEFAULT_MODEL,
    DEFAULT_URL,
    OpenAIConfig,
    OpenAIConnector,
)
from integrations.adapters.vault_connectors.testing import OpenAIServer, openai_server
from integrations.base import (
    NO_RETRY,
    ActionChunk,
    AuthError,
    ConfigError,
    ConnectorError,
    Destination,
    EgressDenied,
    EgressPolicy,
    EgressRule,
    Governance,
    InvalidRequest,
    MemoryAuditSink,
    NotFound,
    PolicyError,
    RateLimited,
    Registry,
    RetryPolicy,
    SecretError,
    SecretReferenceDenied,
    TransientError,
    UntrustedConfig,
    UntrustedPolicy,
)
from openai_support import (
    APPROVED,
    CONNECTOR,
    KEY,
    KEY_VARIABLE,
    UNAPPROVED,
    chat,
    governance,
    tool_input,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with openai_server(api_key=KEY) as running:
        yield running


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The API key where the default reference finds it."""
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    return KEY


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def registry() -> Registry:
    return Registry()


def config(server: OpenAIServer, **more: Any) -> dict[str, Any]:
    return {"url": server.url, "timeout_seconds": 5, **more}


def finished(audit: MemoryAuditSink, operation: str) -> list[Any]:
    return [e for e in audit.events if e.operation == operation and e.phase != "started"]


# -- the config ------------------------------------------------------------------------------


def test_the_defaults_are_the_legacy_defaults() -> None:
    defaults = OpenAIConfig()
    assert defaults.url == DEFAULT_URL == "https://api.openai.com/v1"
    assert defaults.timeout_seconds == 30
    assert defaults.model == DEFAULT_MODEL == "gpt-4o-mini"
    assert defaults.api_key.reveal() == DEFAULT_API_KEY == "env:PV_OPENAI_API_KEY"
    assert RetryPolicy().max_attempts == 3  # the session's default attempts, as the legacy's


def test_the_default_reference_is_resolved_when_validated(registry: Registry) -> None:
    resolved = OpenAIConfig.from_mapping({}, secrets=Governance().secrets)
    assert resolved.api_key.reveal() == KEY
    assert KEY not in repr(resolved)
    assert KEY not in resolved.model_dump_json()


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/v1", "https://user:pw@example.com/v1", "https://x/v1?key=1", "nothing"],
)
def test_a_url_that_is_not_a_plain_http_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        OpenAIConfig.from_mapping({"url": url, "api_key": "literal:k"})


def test_a_missing_key_fails_the_session_before_any_request(
    server: OpenAIServer, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_VARIABLE)
    session = registry.open(
        CONNECTOR, config=config(server), context=APPROVED, governance=governance()
    )
    with pytest.raises(SecretError, match="env:PV_OPENAI_API_KEY"), session:
        pass
    assert server.http.count() == 0


# -- model_invoke and tool_call --------------------------------------------------------------


def test_model_invoke_answers_the_providers_body_and_its_usage(
    server: OpenAIServer, registry: Registry, audit: MemoryAuditSink
) -> None:
    with registry.open(
        CONNECTOR, config=config(server), context=APPROVED, governance=governance(audit)
    ) as session:
        result = session.invoke("model_invoke", chat("hello there", temperature=0.2))
    assert result.action == "model_invoke"
    assert result.output["object"] == "chat.completion"
    assert result.output["choices"][0]["message"]["content"] == "You said: hello there"
    assert result.usage == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
    (sent,) = server.chat_requests()
    assert sent == chat("hello there", temperature=0.2)
    (event,) = finished(audit, "model_invoke")
    assert event.outcome == "ok"
    assert event.detail == (
        "approved by bob,carol; usage completion_tokens=4,prompt_tokens=2,total_tokens=6"
    )


def test_max_tokens_reaches_the_provider(server: OpenAIServer, registry: Registry) -> None:
    with registry.open(
        CONNECTOR, config=config(server), context=APPROVED, governance=governance()
    ) as session:
        result = session.invoke("model_invoke", chat("one two three four", max_tokens=3))
    choice = result.output["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == "You said: one"


def test_tool_call_asks_for_the_tool_then_answers_its_result(
    server: OpenAIServer, registry: Registry
) -> None:
    with registry.open(
        CONNECTOR, config=config(server), context=APPROVED, governance=governance()
    ) as session:
        first = session.invoke("tool_call", tool_input("order 1042"))
        message = first.output["choices"][0]["message"]
        (call,) = message["tool_calls"]
        assert call["function"] == {"name": "lookup_order", "arguments": '{"input": "order 1042"}'}
        assert first.output["choices"][0]["finish_reason"] == "tool_calls"
        conversation = [
            {"role": "user", "content": "order 1042"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": "shipped on Monday", "tool_call_id": call["id"]},
        ]
        second = session.invoke("tool_call", tool_input("", messages=conversation))
    assert second.output["choices"][0]["message"]["content"] == "Tool said: shipped on Monday"


def test_a_sync_and_an_async_session_answer_alike(server: OpenAIServer, registry: Registry) -> None:
    async def run() -> dict[str, Any]:
        async with registry.open_async(
            CONNECTOR, config=config(server), context=APPROVED, governance=governance()
        ) as session:
            result = await session.invoke("model_invoke", chat("hello"))
            return result.output

    answer = asyncio.run(run())
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "You said: hello"}


def test_the_default_model_fills_an_input_that_names_none(server: OpenAIServer) -> None:
    # The schemas require a model; the default serves callers outside a session (the shim).
    from integrations.base import ActionRequest, AuthContext

    connector = OpenAIConnector()
    connector.auth(AuthContext(tenant="acme", actor="alice"))
    connector.connect(OpenAIConfig(url=server.url, api_key=KEY, model="gpt-4o"))
    try:
        request = ActionRequest(
            action="model_invoke", input={"messages": [{"role": "user", "content": "hi"}]}
        )
        assert connector.invoke(request).output["model"] == "gpt-4o"
    finally:
        connector.connect(OpenAIConfig(url=server.url, api_key=KEY))  # replaces and closes


def test_the_models_the_api_serves(server: OpenAIServer, registry: Registry) -> None:
    with registry.open(
        CONNECTOR, config=config(server), context=APPROVED, governance=governance()
    ) as session:
        connector = session.connector
        assert isinstance(connector, OpenAIConnector)
        assert connector.models() == ["gpt-4o-mini", "gpt-4o"]


def test_an_action_the_connector_does_not_offer(server: OpenAIServer, registry: Registry) -> None:
    from integrations.base import ActionRequest, AuthContext, NotSupported

    with (
        registry.open(
            CONNECTOR, config=config(server), context=APPROVED, governance=governance()
        ) as session,
        pytest.raises(NotSupported, match="image_generate"),
    ):
        session.invoke("image_generate", {})
    connector = OpenAIConnector()
    connector.auth(AuthContext(tenant="acme", actor="alice"))
    with pytest.raises(NotSupported, match="image_generate"):
        connector.invoke(ActionRequest(action="image_generate"))
    assert server.requests() == 0


# -- refused before any request ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "data", "pointer"),
    [
        ("model_invoke", {"messages": [{"role": "user", "content": "hi"}]}, "/model"),
        ("model_invoke", chat("hi", stream=True), "/stream"),
        ("model_invoke", {"model": "gpt-4o-mini", "messages": [{"role": "user"}]}, "/messages/0"),
        ("model_invoke", chat("hi", temperature="hot"), "/temperature"),
        ("model_invoke", chat("hi", max_tokens=2.5), "/max_tokens"),
        ("tool_call", chat("hi"), "/tools"),
    ],
)
def test_an_invalid_input_is_refused_before_any_request(
    server: OpenAIServer,
    registry: Registry,
    audit: MemoryAuditSink,
    action: str,
    data: dict[str, Any],
    pointer: str,
) -> None:
    with (
        registry.open(
            CONNECTOR, config=config(server), context=APPROVED, governance=governance(audit)
        ) as session,
        pytest.raises(InvalidRequest, match=pointer),
    ):
        session.invoke(action, data)
    assert server.requests() == 0
    (event,) = finished(audit, action)
    assert event.outcome == "denied"


def test_without_the_quorum_the_action_is_refused_before_any_request(
    server: OpenAIServer, registry: Registry, audit: MemoryAuditSink
) -> None:
    with (
        registry.open(
            CONNECTOR, config=config(server), context=UNAPPROVED, governance=governance(audit)
        ) as session,
        pytest.raises(PolicyError, match="2 approvers"),
    ):
        session.invoke("model_invoke", chat("hello"))
    assert server.requests() == 0
    (event,) = finished(audit, "model_invoke")
    assert event.outcome == "denied"


def test_an_undefined_quorum_policy_fails_closed(server: OpenAIServer, registry: Registry) -> None:
    plain = Governance(audit=MemoryAuditSink())  # defines no quorum policy
    with (
        registry.open(CONNECTOR, config=config(server), context=APPROVED, governance=plain) as s,
        pytest.raises(PolicyError, match="AI_SENSITIVE"),
    ):
        s.invoke("model_invoke", chat("hello"))
    assert server.requests() == 0


def test_a_tenants_config_cannot_reach_a_loopback_api(
    server: OpenAIServer, registry: Registry
) -> None:
    governed = Governance(
        audit=MemoryAuditSink(),
        untrusted=UntrustedPolicy(egress=EgressPolicy()),
    )
    untrusted = UntrustedConfig(config(server, api_key="literal:tenant-key"))
    session = registry.open(CONNECTOR, config=untrusted, context=APPROVED, governance=governed)
    with pytest.raises(EgressDenied), session:
        pass
    assert server.http.count() == 0
    assert OpenAIConfig(url=server.url).destinations() == (Destination.from_url(server.url),)


class ScriptedResolver:
    """The n-th lookup of a name gets its n-th answer (the last one repeats)."""

    def __init__(self, answers: dict[str, list[tuple[str, ...]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def resolve(self, host: str, port: int) -> tuple[str, ...]:
        script = self.answers[host]
        answer = script[min(self.asked.count(host), len(script) - 1)]
        self.asked.append(host)
        return answer


def port_open_governance(server: OpenAIServer, resolver: ScriptedResolver) -> Governance:
    """Tenants may reach the test server's port on public addresses only; no retries."""
    policy = UntrustedPolicy(
        egress=EgressPolicy(rules=(EgressRule(ports=(server.port,)),)), resolver=resolver
    )
    return dataclasses.replace(governance(retry=NO_RETRY), untrusted=policy)


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("localhost", "loopback"),
        ("[::1]", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.1.10", "private"),
    ],
)
def test_a_tenants_config_cannot_reach_internal_addresses(
    server: OpenAIServer, registry: Registry, host: str, kind: str
) -> None:
    governed = port_open_governance(server, ScriptedResolver({"localhost": [("127.0.0.1",)]}))
    url = f"http://{host}:{server.port}/v1"
    untrusted = UntrustedConfig({"url": url, "api_key": "literal:tenant-key"})
    session = registry.open(CONNECTOR, config=untrusted, context=APPROVED, governance=governed)
    with pytest.raises(EgressDenied, match=kind), session:
        pass
    assert server.http.count() == 0
    sink = governed.audit
    assert isinstance(sink, MemoryAuditSink)
    assert [e.operation for e in sink.events if e.outcome == "denied"] == ["connect"]


def test_a_name_that_rebinds_to_loopback_is_dialled_only_at_its_checked_address(
    server: OpenAIServer, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialled: list[str] = []
    real_connect = httpcore.SyncBackend.connect_tcp

    def connect_tcp(self: httpcore.SyncBackend, host: str, port: int, *args: Any) -> Any:
        dialled.append(host)
        if host not in ("127.0.0.1", "::1"):  # nothing leaves the machine
            raise httpcore.ConnectError(f"{host} is not reachable from the test")
        return real_connect(self, host, port, *args)

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", connect_tcp)
    resolver = ScriptedResolver({"ai.tenant.test": [("1.2.3.4",), ("127.0.0.1",)]})
    url = f"http://ai.tenant.test:{server.port}/v1"
    untrusted = UntrustedConfig({"url": url, "api_key": "literal:tenant-key"})
    governed = port_open_governance(server, resolver)
    with (
        registry.open(CONNECTOR, config=untrusted, context=APPROVED, governance=governed) as s,
        pytest.raises(TransientError, match="network error"),
    ):
        s.invoke("model_invoke", chat("hello"))
    assert resolver.asked == ["ai.tenant.test"]  # one lookup, pinned
    assert dialled
    assert set(dialled) == {"1.2.3.4"}
    assert server.http.count() == 0


def tenant_governance(server: OpenAIServer) -> Governance:
    """Configs from tenants may reach the test server's port on loopback, nothing else."""
    allowed = EgressRule(
        connectors=(CONNECTOR,), tenants=("acme",), networks=("127.0.0.0/8",), ports=(server.port,)
    )
    base = governance()
    return dataclasses.replace(
        base, untrusted=UntrustedPolicy(egress=EgressPolicy(rules=(allowed,)))
    )


def test_a_tenants_config_reaches_its_api_through_the_egress_rule(
    server: OpenAIServer, registry: Registry
) -> None:
    untrusted = UntrustedConfig(config(server, api_key=f"literal:{KEY}"), origin="tenant form")
    with registry.open(
        CONNECTOR, config=untrusted, context=APPROVED, governance=tenant_governance(server)
    ) as session:
        result = session.invoke("model_invoke", chat("from a tenant"))
    assert result.output["choices"][0]["message"]["content"] == "You said: from a tenant"


def test_a_tenants_config_cannot_use_the_platforms_key(
    server: OpenAIServer, registry: Registry
) -> None:
    # Without an api_key the default reference env:PV_OPENAI_API_KEY would apply: it is a
    # reference like any other, which the secret reference policy refuses to a tenant.
    untrusted = UntrustedConfig(config(server), origin="tenant form")
    session = registry.open(
        CONNECTOR, config=untrusted, context=APPROVED, governance=tenant_governance(server)
    )
    with pytest.raises(SecretReferenceDenied), session:
        pass
    assert server.http.count() == 0


# -- the provider's errors ---------------------------------------------------------------------


def test_a_refused_key_is_an_auth_error_that_does_not_quote_it(
    server: OpenAIServer, registry: Registry
) -> None:
    wrong = "sk-wrong-0123456789abcdef"
    with (
        registry.open(
            CONNECTOR,
            config=config(server, api_key=f"literal:{wrong}"),
            context=APPROVED,
            governance=governance(),
        ) as session,
        pytest.raises(AuthError) as raised,
    ):
        session.invoke("model_invoke", chat("hello"))
    assert "401" in str(raised.value)
    assert "invalid_api_key" in str(raised.value)
    assert wrong[-4:] not in str(raised.value)  # the provider's message quotes part of it
    assert server.requests() == 1  # never retried


def test_a_400_is_invalid_request_with_the_providers_message(
    server: OpenAIServer, registry: Registry
) -> None:
    with (
        registry.open(
            CONNECTOR, config=config(server), context=APPROVED, governance=governance()
        ) as session,
        pytest.raises(InvalidRequest, match=r"is not a valid temperature.*param temperature"),
    ):
        session.invoke("model_invoke", chat("hello", temperature=7))
    assert server.requests() == 1


def test_an_unknown_model_is_not_found(server: OpenAIServer, registry: Registry) -> None:
    with (
        registry.open(
            CONNECTOR, config=config(server), context=APPROVED, governance=governance()
        ) as session,
        pytest.raises(NotFound, match="model_not_found"),
    ):
        session.invoke("model_invoke", {**chat("hello"), "model": "gpt-0"})


def test_a_429_is_waited_out_as_retry_after_asks_then_retried(
    server: OpenAIServer, registry: Registry, audit: MemoryAuditSink
) -> None:
    server.fail_next(status=429, retry_after=0.3)
    with registry.open(
        CONNECTOR, config=config(server), context=APPROVED, governance=governance(audit)
    ) as session:
        result = session.invoke("model_invoke", chat("hello"))
    assert result.output["choices"][0]["message"]["content"] == "You said: hello"
    assert server.requests() == 2
    (gap,) = server.http.gaps("/v1/chat/completions")
    assert gap >= 0.3
    attempts = finished(audit, "model_invoke")
    assert [(e.attempt, e.outcome, e.error_type) for e in attempts] == [
        (1, "error", "RateLimited"),
        (2, "ok", None),
    ]


def test_rate_limited_carries_the_wait_when_retries_are_off(
    server: OpenAIServer, registry: Registry
) -> None:
    server.fail_next(status=429, retry_after=7)
    with (
        registry.open(
            CONNECTOR, config=config(server), context=APPROVED, governance=governance()
        ) as session,
        pytest.raises(RateLimited, match="rate_limit_exceeded") as raised,
    ):
        session.invoke("model_invoke", chat("hello"), retry=NO_RETRY)
    assert raised.value.retry_after == 7


def test_a_spent_quota_is_not_retried(server: OpenAIServer, registry: Registry) -> None:
    server.fail_next(status=429, code="insufficient_quota", message="You exceeded your quota.")
    with (
        registry.open(
            CONNECTOR, config=config(server), context=APPROVED, governance=governance()
        ) as session,
        pytest.raises(ConnectorError, match="quota") as raised,
    ):
        session.invoke("model_invoke", chat("hello"))
    assert not isinstance(raised.value, TransientError)
    assert server.requests() == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_transient_and_retried(
    server: OpenAIServer, registry: Registry, status: int
) -> None:
    server.fail_next(2, status=status)
    with registry.open(
        CONNECTOR, config=config(server), context=APPROVED, governance=governance()
    ) as session:
        result = session.invoke("model_invoke", chat("hello"))
    assert result.output["choices"][0]["finish_reason"] == "stop"
    assert server.requests() == 3


def test_three_attempts_then_the_transient_error(server: OpenAIServer, registry: Registry) -> None:
    server.fail_next(5, status=503)
    with (
        registry.open(
            CONNECTOR, config=config(server), context=APPROVED, governance=governance()
        ) as session,
        pytest.raises(TransientError, match=r"503.*overloaded"),
    ):
        session.invoke("model_invoke", chat("hello"))
    assert server.requests() == 3


def test_a_timeout_is_transient(server: OpenAIServer, registry: Registry) -> None:
    server.delay_next(3, seconds=5)
    with (
        registry.open(
            CONNECTOR,
            config=config(server, timeout_seconds=0.2),
            context=APPROVED,
            governance=governance(),
        ) as session,
        pytest.raises(TransientError, match="timed out"),
    ):
        session.invoke("model_invoke", chat("hello"))
    assert server.requests() == 3


# -- streaming ---------------------------------------------------------------------------------


def text_of(chunks: list[ActionChunk]) -> str:
    return "".join(str(chunk.delta.get("content") or "") for chunk in chunks)


def test_a_stream_arrives_before_the_server_has_sent_its_end(
    server: OpenAIServer, registry: Registry, audit: MemoryAuditSink
) -> None:
    server.hold_streams()
    with (
        registry.open(
            CONNECTOR, config=config(server), context=APPROVED, governance=governance(audit)
        ) as session,
        session.stream("model_invoke", chat("hello there")) as chunks,
    ):
        first = next(chunks)
        assert first.delta == {"role": "assistant", "content": ""}
        received = [first, next(chunks)]
        assert server.streams_started == 1
        assert server.streams_finished == 0
        server.release_streams()
        received.extend(chunks)
    assert text_of(received) == "You said: hello there"
    assert received[-2].delta == {"finish_reason": "stop"}
    assert received[-1].usage == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
    assert server.streams_finished == 1
    (sent,) = server.chat_requests()
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    (event,) = finished(audit, "model_invoke")
    assert event.outcome == "ok"
    assert event.detail is not None
    assert event.detail.endswith("usage completion_tokens=4,prompt_tokens=2,total_tokens=6")


def test_a_streamed_tool_call_comes_in_pieces(server: OpenAIServer, registry: Registry) -> None:
    with (
        registry.open(
            CONNECTOR, config=config(server), context=APPROVED, governance=governance()
        ) as session,
        session.stream("tool_call", tool_input("order 1042")) as chunks,
    ):
        received = list(chunks)
    calls = [c.delta["tool_calls"][0] for c in received if "tool_calls" in c.delta]
    assert calls[0]["function"]["name"] == "lookup_order"
    arguments = "".join(call["function"]["arguments"] for call in calls)
    assert arguments == '{"input": "order 1042"}'
    assert {"finish_reason": "tool_calls"} in [c.delta for c in received]


def test_a_stream_without_usage_when_the_server_refuses_the_option(
    server: OpenAIServer, registry: Registry
) -> None:
    with (
        registry.open(
            CONNECTOR,
            config=config(server, stream_usage=False),
            context=APPROVED,
            governance=governance(),
        ) as session,
        session.stream("model_invoke", chat("hello")) as chunks,
    ):
        received = list(chunks)
    assert all(not chunk.usage for chunk in received)
    assert "stream_options" not in server.chat_requests()[0]


def test_a_stream_closed_early_releases_the_response_and_is_audited(
    registry: Registry, audit: MemoryAuditSink
) -> None:
    long_text = " ".join(f"word{n}" for n in range(2000))
    with openai_server(api_key=KEY, stream_interval=0.002) as server:
        with registry.open(
            CONNECTOR, config=config(server), context=APPROVED, governance=governance(audit)
        ) as session:
            with session.stream("model_invoke", chat(long_text)) as chunks:
                next(chunks)
                next(chunks)
            result = session.invoke("model_invoke", chat("still usable"))
        assert result.output["choices"][0]["message"]["content"] == "You said: still usable"
        assert server.streams_finished == 0
    streamed = finished(audit, "model_invoke")[0]
    assert streamed.outcome == "ok"
    assert streamed.detail is not None
    assert "closed early after 2 chunks" in streamed.detail


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("server_error", TransientError, "sent an error in the stream"),
        ("invalid_request_error", ConnectorError, "sent an error in the stream"),
        (None, ConnectorError, r"ended the stream before data: \[DONE\]"),
    ],
)
def test_a_stream_broken_midway_raises_after_its_first_chunks(
    server: OpenAIServer,
    registry: Registry,
    audit: MemoryAuditSink,
    kind: str | None,
    error: type[Exception],
    message: str,
) -> None:
    server.break_next_stream(after=2, error=kind)
    received: list[ActionChunk] = []
    with registry.open(
        CONNECTOR, config=config(server), context=APPROVED, governance=governance(audit)
    ) as session:
        with (
            pytest.raises(error, match=message) as raised,
            session.stream("model_invoke", chat("hello there")) as chunks,
        ):
            received.extend(chunks)
        assert kind != "invalid_request_error" or not isinstance(raised.value, TransientError)
        assert len(received) == 2
        assert session.invoke("model_invoke", chat("again")).output["object"] == "chat.completion"
    (streamed, _) = finished(audit, "model_invoke")
    assert (streamed.outcome, streamed.error_type) == ("error", error.__name__)


def test_a_stream_refused_by_the_provider_raises_before_any_chunk(
    server: OpenAIServer, registry: Registry
) -> None:
    server.fail_next(status=400, message="messages are too long")
    with (
        registry.open(
            CONNECTOR, config=config(server), context=APPROVED, governance=governance()
        ) as session,
        pytest.raises(InvalidRequest, match="messages are too long"),
        session.stream("model_invoke", chat("hello")) as chunks,
    ):
        next(chunks)


def test_an_async_stream(server: OpenAIServer, registry: Registry) -> None:
    async def run() -> str:
        async with (
            registry.open_async(
                CONNECTOR, config=config(server), context=APPROVED, governance=governance()
            ) as session,
            session.stream("model_invoke", chat("hello async")) as chunks,
        ):
            return text_of([chunk async for chunk in chunks])

    assert asyncio.run(run()) == "You said: hello async"


# -- the event-stream format -------------------------------------------------------------------


def test_events_follow_the_event_stream_rules() -> None:
    from integrations.adapters.vault_connectors.openai._sse import event_data

    lines = [
        ": keep-alive",
        "event: message",
        'data: {"a":',
        "data:  1}",
        "id: 7",
        "",
        "",
        "data:[DONE]",
    ]
    assert list(event_data(lines)) == ['{"a":\n 1}', "[DONE]"]
