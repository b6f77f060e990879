"""An OpenAI-compatible chat completions API on 127.0.0.1, answered from rules, for tests.

The server speaks the part of the OpenAI API that chat clients use, in the API's own shapes:

- ``POST /v1/chat/completions`` answers a ``chat.completion`` object: one choice whose message
  repeats the last message's content (``"You said: <content>"``), ``finish_reason`` ``stop``,
  and ``usage`` (``prompt_tokens`` counts the words of every message, ``completion_tokens``
  those of the answer). A ``max_tokens`` smaller than the answer cuts it to that many words
  with ``finish_reason`` ``length``. When the request offers ``tools`` and its last message
  is not a tool's result (role ``tool``), the answer calls the first tool instead:
  ``tool_calls`` with one ``function`` call whose ``arguments`` are the JSON text
  ``{"input": <last content>}``, ``content`` null and ``finish_reason`` ``tool_calls``. After
  a tool's result, the answer is ``"Tool said: <content>"``.
- With ``"stream": true`` the same answer comes as server-sent events
  (``text/event-stream``): ``data: <chat.completion.chunk>`` lines, the role first, then one
  chunk per word (or the tool call's name, then its arguments in two pieces), then the chunk
  with the ``finish_reason``, then, when ``stream_options.include_usage`` is true, a chunk
  with no choices and the ``usage``; the stream ends with ``data: [DONE]``. Chunks are sent
  as they are produced, `stream_interval` seconds apart.
- ``GET /v1/models`` lists `models` as ``{"object": "list", "data": [...]}``.

Errors have the API's shape, ``{"error": {"message", "type", "param", "code"}}``: 401
(``invalid_api_key``) when `api_key` is set and the request's bearer token is another, 400
(``invalid_request_error``, naming the ``param``) for a body the API would refuse, 404
(``model_not_found``) for a model not in `models`. `fail_next` answers the next requests with
any status in that shape (429 with ``Retry-After``, 500, 503 ...), `delay_next` holds them
back, and `latency` delays every request: the controls of the underlying
`integrations.base.testing.LoopbackHTTPServer` (`http`). `hold_streams` keeps every stream
from sending its final chunk until `release_streams`, so a test can see the first chunks
arrive before the last one is sent; `break_next_stream` makes the next stream send an error
event after some chunks (as the API does when it fails mid-answer), or stop there without
``data: [DONE]``. `chat_requests` lists the bodies received.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Final

from integrations.base.testing import HTTPReply, HTTPRequest, HTTPStream, LoopbackHTTPServer

__all__ = ["DEFAULT_MODELS", "OpenAIServer", "openai_error", "openai_server"]

DEFAULT_MODELS: Final = ("gpt-4o-mini", "gpt-4o")
"""The models a server knows unless told others."""

CHAT: Final = "/v1/chat/completions"
MODELS: Final = "/v1/models"
ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool"})
HOLD_LIMIT: Final = 30.0
"""Seconds a held stream waits for `OpenAIServer.release_streams` before it goes on anyway."""

_ERROR_KINDS: Final = {
    400: ("invalid_request_error", None, "The request is invalid."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def openai_error(
    status: int,
    message: str | None = None,
    *,
    type: str | None = None,
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """An error body in the API's shape, with the usual type, code and message of `status`."""
    kind, usual_code, usual_message = _ERROR_KINDS.get(status, ("server_error", None, "Error."))
    return {
        "error": {
            "message": usual_message if message is None else message,
            "type": kind if type is None else type,
            "param": param,
            "code": usual_code if code is None else code,
        }
    }


class _Refusal(Exception):
    """A request the API refuses: its status and error body."""

    def __init__(self, status: int, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.reply = HTTPReply(status, openai_error(status, message, param=param))


class OpenAIServer:
    """The chat completions and models endpoints of an OpenAI-compatible API; see the module.

    Use it with ``with`` (or `openai_server`); `url` is the base URL a client is given
    (``http://127.0.0.1:<port>/v1``).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        latency: float = 0.0,
        stream_interval: float = 0.0,
    ) -> None:
        """A stopped server; with `api_key`, requests must present it as their bearer token."""
        self._api_key = api_key
        self.models: Final = tuple(models)
        self.stream_interval = stream_interval
        self._lock = threading.Lock()
        self._bodies: list[dict[str, Any]] = []
        self._released = threading.Event()
        self._released.set()
        self._numbers = itertools.count(1)
        self._streams_started = 0
        self._streams_finished = 0
        self._breaks: list[tuple[int, str | None]] = []
        self.http: Final = LoopbackHTTPServer(latency=latency, name="openai-server")
        self.http.route("POST", CHAT, self._chat)
        self.http.route("GET", MODELS, self._models)

    @property
    def url(self) -> str:
        """The API's base URL, ``http://127.0.0.1:<port>/v1``."""
        return f"{self.http.url}/v1"

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self.http.port

    # -- lifetime ------------------------------------------------------------------------

    def start(self) -> OpenAIServer:
        """Serve in a background thread."""
        self.http.start()
        return self

    def stop(self) -> None:
        """Release held streams, stop serving, and release every thread and socket."""
        self._released.set()
        self.http.stop()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- test controls -------------------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds every request waits before it is answered."""
        return self.http.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.http.latency = seconds

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        retry_after: str | float | None = None,
        message: str | None = None,
        code: str | None = None,
        endpoint: str | None = CHAT,
    ) -> None:
        """Answer the next `count` requests to `endpoint` (None: any) with `status`.

        The body is the API's error object for `status` (`message` and `code` replace the
        usual ones); `retry_after` is sent as the ``Retry-After`` header.
        """
        body = openai_error(status, message, code=code)
        self.http.fail_next(count, status=status, path=endpoint, retry_after=retry_after, body=body)

    def delay_next(self, count: int = 1, *, seconds: float, endpoint: str | None = CHAT) -> None:
        """Hold the next `count` requests to `endpoint` (None: any) for `seconds`."""
        self.http.delay_next(seconds, count, path=endpoint)

    def hold_streams(self) -> None:
        """Keep streams from sending their final chunk until `release_streams` (or stop)."""
        self._released.clear()

    def break_next_stream(self, *, after: int = 2, error: str | None = "server_error") -> None:
        """End the next stream after `after` chunks: with an error event of type `error`
        (``{"error": {...}}``, as the API sends one), or, when `error` is None, without one
        and without ``data: [DONE]``."""
        with self._lock:
            self._breaks.append((after, error))

    def release_streams(self) -> None:
        """Let held streams finish."""
        self._released.set()

    def chat_requests(self) -> list[dict[str, Any]]:
        """The bodies of the chat completion requests received, oldest first (valid JSON only)."""
        with self._lock:
            return list(self._bodies)

    def requests(self, endpoint: str = CHAT) -> int:
        """How many requests `endpoint` received, failed ones included."""
        return self.http.count(endpoint)

    @property
    def streams_started(self) -> int:
        """Streamed answers begun."""
        with self._lock:
            return self._streams_started

    @property
    def streams_finished(self) -> int:
        """Streamed answers sent to their ``data: [DONE]``."""
        with self._lock:
            return self._streams_finished

    # -- serving (called by the connection threads) ----------------------------------------

    def _authorized(self, request: HTTPRequest) -> HTTPReply | None:
        if self._api_key is None:
            return None
        if request.headers.get("Authorization", "") == f"Bearer {self._api_key}":
            return None
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        shown = f"{given[:3]}****{given[-4:]}" if len(given) > 8 else "****"
        return HTTPReply(
            401,
            openai_error(401, f"Incorrect API key provided: {shown}."),
            {"WWW-Authenticate": 'Bearer realm="OpenAI API"'},
        )

    def _models(self, request: HTTPRequest) -> HTTPReply:
        refused = self._authorized(request)
        if refused is not None:
            return refused
        data = [
            {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "openai-server"}
            for model in self.models
        ]
        return HTTPReply(body={"object": "list", "data": data})

    def _chat(self, request: HTTPRequest) -> HTTPReply | HTTPStream:
        refused = self._authorized(request)
        if refused is not None:
            return refused
        try:
            body = _body(request)
            with self._lock:
                self._bodies.append(body)
            _check(body, self.models)
        except _Refusal as refusal:
            return refusal.reply
        answer = _Answer.of(body, f"chatcmpl-{next(self._numbers):06d}")
        if body.get("stream") is True:
            options = body.get("stream_options") or {}
            usage = isinstance(options, dict) and options.get("include_usage") is True
            return HTTPStream(
                self._events(answer, usage),
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
                interval=self.stream_interval,
            )
        return HTTPReply(body=answer.completion())

    def _events(self, answer: _Answer, usage: bool) -> Iterator[bytes]:
        with self._lock:
            self._streams_started += 1
            broken = self._breaks.pop(0) if self._breaks else None
        for number, chunk in enumerate(answer.chunks()):
            if broken is not None and number == broken[0]:
                if broken[1] is not None:
                    message = "The server had an error while processing your request."
                    yield _event(openai_error(500, message, type=broken[1]))
                return
            yield _event(chunk)
        self._released.wait(HOLD_LIMIT)
        yield _event(answer.chunk({}, finish_reason=answer.finish_reason))
        if usage:
            yield _event({**answer.chunk_head(), "choices": [], "usage": answer.usage()})
        yield b"data: [DONE]\n\n"
        with self._lock:
            self._streams_finished += 1


@contextmanager
def openai_server(
    *,
    api_key: str | None = None,
    models: Sequence[str] = DEFAULT_MODELS,
    latency: float = 0.0,
    stream_interval: float = 0.0,
) -> Iterator[OpenAIServer]:
    """A started `OpenAIServer`, stopped when the block ends."""
    with OpenAIServer(
        api_key=api_key, models=models, latency=latency, stream_interval=stream_interval
    ) as server:
        yield server


# -- requests -------------------------------------------------------------------------------


def _body(request: HTTPRequest) -> dict[str, Any]:
    try:
        value = json.loads(request.body)
    except ValueError:
        raise _Refusal(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(value, dict):
        raise _Refusal(400, "The body of your request must be a JSON object.")
    return value


def _check(body: dict[str, Any], models: Sequence[str]) -> None:
    """Refuse what the API refuses, naming the parameter."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _Refusal(400, "you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Refusal(400, "'messages' must be a non-empty array", param="messages")
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise _Refusal(
                400, f"Invalid value for 'role' in messages[{index}]", param=f"messages.[{index}]"
            )
    temperature = body.get("temperature", 1)
    if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        raise _Refusal(400, f"{temperature!r} is not a valid temperature", param="temperature")
    max_tokens = body.get("max_tokens", 1)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _Refusal(400, "max_tokens must be a positive integer", param="max_tokens")
    tools = body.get("tools", [])
    if not isinstance(tools, list) or not all(_tool_name(tool) for tool in tools):
        raise _Refusal(400, "each tool needs a function with a name", param="tools")
    if model not in models:
        raise _Refusal(404, f"The model `{model}` does not exist or you do not have access to it.")


def _tool_name(tool: object) -> str | None:
    function = tool.get("function") if isinstance(tool, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) and name else None


def _words(text: object) -> list[str]:
    return text.split() if isinstance(text, str) else []


def _event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


class _Answer:
    """What the server answers one request: text or a tool call, and the tokens counted."""

    def __init__(
        self,
        completion_id: str,
        model: str,
        prompt_tokens: int,
        words: list[str],
        finish_reason: str,
        tool_call: dict[str, Any] | None,
    ) -> None:
        self.id = completion_id
        self.model = model
        self.created = int(time.time())
        self.prompt_tokens = prompt_tokens
        self.words = words
        self.finish_reason = finish_reason
        self.tool_call = tool_call

    @classmethod
    def of(cls, body: dict[str, Any], completion_id: str) -> _Answer:
        messages = body["messages"]
        last = messages[-1]
        content = last.get("content")
        prompt = sum(len(_words(message.get("content"))) for message in messages)
        tools = body.get("tools") or []
        if tools and last.get("role") != "tool" and body.get("tool_choice") != "none":
            arguments = json.dumps({"input": content if isinstance(content, str) else ""})
            call = {
                "id": f"call_{completion_id[-6:]}",
                "type": "function",
                "function": {"name": _tool_name(tools[0]), "arguments": arguments},
            }
            return cls(completion_id, body["model"], prompt, [], "tool_calls", call)
        prefix = "Tool said:" if last.get("role") == "tool" else "You said:"
        words = [*prefix.split(), *_words(content)]
        limit = body.get("max_tokens")
        finish = "stop"
        if isinstance(limit, int) and limit < len(words):
            words, finish = words[:limit], "length"
        return cls(completion_id, body["model"], prompt, words, finish, None)

    def completion_tokens(self) -> int:
        if self.tool_call is not None:
            return len(self.tool_call["function"]["arguments"].split())
        return len(self.words)

    def usage(self) -> dict[str, int]:
        completion = self.completion_tokens()
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def message(self) -> dict[str, Any]:
        if self.tool_call is not None:
            return {"role": "assistant", "content": None, "tool_calls": [self.tool_call]}
        return {"role": "assistant", "content": " ".join(self.words)}

    def completion(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": self.message(),
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage(),
            "system_fingerprint": "fp_loopback",
        }

    def chunk_head(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_loopback",
        }

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**self.chunk_head(), "choices": [choice]}

    def chunks(self) -> Iterator[dict[str, Any]]:
        """Every chunk before the final one: the role, then the content or the tool call."""
        if self.tool_call is None:
            yield self.chunk({"role": "assistant", "content": ""})
            for index, word in enumerate(self.words):
                yield self.chunk({"content": word if index == 0 else f" {word}"})
            return
        yield self.chunk({"role": "assistant", "content": None})
        call = self.tool_call
        head = {"index": 0, "id": call["id"], "type": "function"}
        name = call["function"]["name"]
        yield self.chunk({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]})
        arguments = call["function"]["arguments"]
        middle = len(arguments) // 2
        for piece in (arguments[:middle], arguments[middle:]):
            yield self.chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
