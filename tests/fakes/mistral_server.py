"""A scriptable fake of Mistral's HTTP API on loopback.

It speaks the real wire format of ``POST /v1/chat/completions`` and
``POST /v1/embeddings``, so the real ``mistralai`` SDK and its HTTP stack run
unchanged against it. Each path has a queue of scripted replies, consumed one
per request, and a default once the queue is empty::

    with FakeMistralServer() as fake:
        fake.script(error(429, retry_after=0.2), chat('{"ok": true}'))
        ...  # call fake.url; then assert on fake.requests

Defaults: chat replies through ``translator()`` (an echo translator), and
embeddings are deterministic vectors of 1024 floats. Replies may be delayed
or hang; both end when the server stops, so stopping never waits on them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import random
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import pytest

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
EMBEDDING_DIM = 1024  # mistral-embed's size


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any  # the parsed body, None when it is not JSON

    @property
    def fields(self) -> dict[str, Any]:
        """The JSON body when it is an object, else {}."""
        return self.json if isinstance(self.json, dict) else {}

    @property
    def user_text(self) -> str:
        """The content of the last user message, "" when there is none."""
        messages = self.fields.get("messages", [])
        users = [m.get("content") for m in messages if m.get("role") == "user"]
        return users[-1] if users and isinstance(users[-1], str) else ""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    hang: bool = False  # never answer; the connection drops when the server stops


Handler = Callable[[RecordedRequest], Reply]
ContentSource = str | Callable[[RecordedRequest], str]


def _json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return Reply(status, body, {"content-type": "application/json", **(headers or {})})


def _count_tokens(text: str) -> int:
    return len(text.split())


def chat(content: ContentSource, *, finish_reason: str = "stop") -> Handler:
    """A chat completion whose message is ``content``, or what it computes from the request."""

    def handle(request: RecordedRequest) -> Reply:
        text = content(request) if callable(content) else content
        messages = request.fields.get("messages", [])
        prompt_tokens = sum(_count_tokens(str(m.get("content", ""))) for m in messages)
        completion_tokens = _count_tokens(text)
        return _json_reply(
            200,
            {
                "id": f"cmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.fields.get("model", "mistral-fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "tool_calls": None},
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    return handle


# How a server names a token's id in its logprobs: Mistral's ``token_id``,
# llama.cpp's ``id``, or nothing at all as OpenAI and vLLM send them.
LOGPROB_SHAPES = ("mistral", "llama.cpp", "openai")


def yes_no(
    probability_of_yes: Callable[[RecordedRequest], float], *, shape: str = "mistral"
) -> Handler:
    """A one-token "yes"/"no" reply with ``logprobs``, as a server of ``shape``
    sends them when asked for ``top_logprobs``: what a pointwise judge reads."""

    def entry(token_id: int, token: str, p: float) -> dict[str, object]:
        fields: dict[str, object] = {"token": token, "logprob": math.log(p)}
        if shape == "mistral":
            return fields | {"bytes": list(token.encode()), "token_id": token_id}
        if shape == "llama.cpp":
            return fields | {"bytes": list(token.encode()), "id": token_id}
        return fields | {"bytes": None}

    def handle(request: RecordedRequest) -> Reply:
        p_yes = min(max(probability_of_yes(request), 1e-6), 1 - 1e-6)
        alternatives = [("yes", p_yes), ("no", 1 - p_yes)]
        token, _ = max(alternatives, key=lambda item: item[1])
        entries = [entry(i, t, p) for i, (t, p) in enumerate(alternatives)]
        reply = json.loads(chat(token)(request).body)
        reply["choices"][0]["logprobs"] = {
            "content": [{**next(e for e in entries if e["token"] == token),
                         "top_logprobs": entries}]
        }  # fmt: skip
        return _json_reply(200, reply)

    return handle


def translator(transform: Callable[[str], str] = str) -> Callable[[RecordedRequest], str]:
    """Chat content that "translates" the pipeline's segments with ``transform``.

    The user message ``{"segments": [{"id", "text"}, ...]}`` is answered with
    ``{"translations": [{"id", "text": transform(text)}, ...]}``, ids and order
    kept. A user message of another shape is echoed verbatim.
    """

    def content(request: RecordedRequest) -> str:
        try:
            segments = json.loads(request.user_text)["segments"]
            translations = [{"id": s["id"], "text": transform(s["text"])} for s in segments]
        except (ValueError, KeyError, TypeError):
            return request.user_text
        return json.dumps({"translations": translations}, ensure_ascii=False)

    return content


def _every_passage_scores_5(ids: list[str]) -> list[dict[str, Any]]:
    return [{"id": i, "score": 5} for i in ids]


def _answer_citing_all(question: str, ids: list[str]) -> dict[str, Any]:
    return {"answer": "Réponse.", "citations": ids}


def search_model(
    *,
    translate: Callable[[str], str] = str,
    scores: Callable[[list[str]], list[dict[str, Any]]] = _every_passage_scores_5,
    answer: Callable[[str, list[str]], dict[str, Any]] = _answer_citing_all,
) -> Callable[[RecordedRequest], str]:
    """Chat content for every call a search makes, told apart by its JSON data:
    segments are translated with ``translator(translate)``, a listwise rerank
    (``query`` and ``passages``) gets ``{"scores": scores(ids)}``, a summary
    (``question`` and ``passages``) gets ``answer(question, ids)``. A user
    message that is not JSON is echoed verbatim."""

    def content(request: RecordedRequest) -> str:
        try:
            data = json.loads(request.user_text)
        except ValueError:
            return request.user_text
        if "segments" in data:
            return translator(translate)(request)
        ids = [p["id"] for p in data["passages"]]
        if "query" in data:
            return json.dumps({"scores": scores(ids)})
        return json.dumps(answer(data["question"], ids), ensure_ascii=False)

    return content


def error(status: int, *, retry_after: float | str | None = None, message: str = "") -> Handler:
    """Mistral's JSON error body with ``status``, and a ``Retry-After`` header when given."""
    headers = {} if retry_after is None else {"retry-after": str(retry_after)}
    payload = {
        "object": "error",
        "message": message or f"fake error {status}",
        "type": "rate_limited" if status == 429 else "api_error",
        "param": None,
        "code": str(status),
    }
    return lambda request: _json_reply(status, payload, headers)


def raw(body: str | bytes, *, status: int = 200, content_type: str = "application/json") -> Handler:
    """Exactly ``body``, such as malformed JSON or a body of the wrong shape."""
    data = body.encode() if isinstance(body, str) else body
    return lambda request: Reply(status, data, {"content-type": content_type})


def slow(delay_s: float, then: Handler) -> Handler:
    """``then``'s reply, sent after ``delay_s`` seconds."""

    def handle(request: RecordedRequest) -> Reply:
        reply = then(request)
        return Reply(reply.status, reply.body, reply.headers, delay_s=delay_s)

    return handle


def hang() -> Handler:
    """Never answers; the request is recorded and the connection held until the server stops."""
    return lambda request: Reply(hang=True)


def embedding_vector(text: str, dim: int = EMBEDDING_DIM) -> list[float]:
    """A unit vector derived from ``text`` alone, so equal texts embed equally."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def embeddings(dim: int = EMBEDDING_DIM) -> Handler:
    """An embeddings response with one ``embedding_vector`` per input, in order."""

    def handle(request: RecordedRequest) -> Reply:
        inputs = request.fields.get("input", [])
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        tokens = sum(_count_tokens(t) for t in texts)
        return _json_reply(
            200,
            {
                "id": f"embd-{uuid.uuid4().hex}",
                "object": "list",
                "model": request.fields.get("model", "mistral-embed"),
                "data": [
                    {"object": "embedding", "embedding": embedding_vector(t, dim), "index": i}
                    for i, t in enumerate(texts)
                ],
                "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
            },
        )

    return handle


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # joined by FakeMistralServer.stop, with a bound
    fake: FakeMistralServer


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's client expects
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes; without this, Nagle's algorithm
        # and the client's delayed ACK hold the body back about 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._opened(self.connection)

    def finish(self) -> None:
        self.server.fake._closed(self.connection)
        super().finish()

    def do_POST(self) -> None:
        self.server.fake._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on ``requests`` instead."""


class FakeMistralServer:
    """The fake on ``127.0.0.1`` at a free port; ``url`` is its base URL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._queues: dict[str, deque[Handler]] = {}
        self._defaults: dict[str, Handler] = {}
        self._requests: list[RecordedRequest] = []
        self.reset()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._http = _HTTPServer(("127.0.0.1", 0), _RequestHandler)
        self._http.fake = self
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() waits for the accept loop
            name="fake-mistral",
            daemon=True,
        )
        self.port: int = self._http.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    # Scripting

    def script(self, *handlers: Handler, path: str = CHAT_PATH) -> None:
        """Queues replies for ``path``, one per request, before the default applies."""
        with self._lock:
            self._queues.setdefault(path, deque()).extend(handlers)

    def set_default(self, handler: Handler, path: str = CHAT_PATH) -> None:
        """The reply for ``path`` once its queue is empty, such as ``error(503)`` forever."""
        with self._lock:
            self._defaults[path] = handler

    def reset(self) -> None:
        """Back to the defaults: no scripted replies, no recorded requests."""
        with self._lock:
            self._queues = {CHAT_PATH: deque(), EMBEDDINGS_PATH: deque()}
            self._defaults = {CHAT_PATH: chat(translator()), EMBEDDINGS_PATH: embeddings()}
            self._requests = []

    def pending(self, path: str = CHAT_PATH) -> int:
        """Scripted replies for ``path`` not yet consumed."""
        with self._lock:
            return len(self._queues.get(path, ()))

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str = CHAT_PATH) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # Lifecycle

    def start(self) -> FakeMistralServer:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stops at once: wakes delayed and hung replies and drops open connections."""
        self._stopping.set()
        if self._thread.is_alive():
            self._http.shutdown()
        self._http.server_close()
        with self._lock:
            connections = dict(self._connections)
        for connection in connections:
            # Wakes handler threads blocked reading the next keep-alive request.
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
        end = time.monotonic() + timeout_s
        for thread in connections.values():
            thread.join(max(0.0, end - time.monotonic()))

    def __enter__(self) -> FakeMistralServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Serving, on the handler threads

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections[connection] = threading.current_thread()

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.pop(connection, None)

    def _serve(self, handler: _RequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        request = RecordedRequest(
            method=handler.command,
            path=handler.path.split("?", 1)[0],
            headers={name.lower(): value for name, value in handler.headers.items()},
            body=body,
            json=parsed,
        )
        with self._lock:
            self._requests.append(request)
            queue = self._queues.get(request.path)
            respond = queue.popleft() if queue else self._defaults.get(request.path)
        if respond is None:
            reply = _json_reply(404, {"object": "error", "message": "Not Found", "code": "404"})
        else:
            reply = respond(request)
        if reply.hang:
            self._stopping.wait()
        elif reply.delay_s:
            self._stopping.wait(reply.delay_s)
        if self._stopping.is_set():
            handler.close_connection = True  # drop without a reply, like a server going away
            return
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("content-length", str(len(reply.body)))
        handler.end_headers()
        handler.wfile.write(reply.body)


@pytest.fixture
def mistral_server() -> Iterator[FakeMistralServer]:
    """A started ``FakeMistralServer``, stopped after the test."""
    with FakeMistralServer() as server:
        yield server
