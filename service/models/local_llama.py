"""The local chat backend: a GGUF model run in-process by llama.cpp (xllamacpp).

``xllamacpp.Server`` embeds llama.cpp's server: a C++ loop that owns the model
and its KV cache and serves ``handle_chat_completions`` calls, which release
the GIL and are safe from any thread. It always opens an HTTP listener too;
here that is a Unix socket in a private temporary folder, behind a random API
key, so nothing else can reach the model.

Parallel decoding: the server has ``parallel`` slots, and its loop decodes
the sequences of all busy slots in one batch (continuous batching), so
concurrent calls share each pass over the weights instead of queueing.
Each slot keeps the whole ``n_ctx`` window. A call waits here for a free slot
and then for its reply in a thread of the model's own, which only waits on
C++: the server's workers stay free for the CPU work around the calls.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xllamacpp

from xling.service.errors import (
    ConfigurationError,
    DeadlineExceeded,
    InvalidArgument,
    Unavailable,
    XlingError,
)
from xling.service.executor import BlockingExecutor
from xling.service.models.base import ChatMessage, ChatResult

log = logging.getLogger(__name__)

# llama.cpp log levels: 0 silent, 1 errors, 3 info. Errors stay on because
# they are the only explanation of a load failure (the exception just says
# "Failed to init server").
_LLAMA_VERBOSITY_ERRORS = 1
_LLAMA_VERBOSITY_INFO = 3


# JSON replies on one line: with free whitespace the model pretty-prints about
# two replies in three, and the indentation is a third of a one-segment
# translation's tokens. The separators are the ones it writes on one line.
# llguidance (llama.cpp's grammar engine here) reads these options; llama.cpp's
# response_format does not pass them on, hence a grammar of our own.
_COMPACT_JSON = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class ContextLengthExceeded(InvalidArgument):
    """The prompt does not fit the model's context window (``XLING_LOCAL_N_CTX``)."""

    def __init__(self, message: str, *, prompt_tokens: int, n_ctx: int) -> None:
        super().__init__([("messages", message)])
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx


@dataclass
class _Stream:
    """What the streaming callback collects; it must never raise (xllamacpp
    swallows callback exceptions), so it records and returns."""

    deadline: float | None
    cancelled: threading.Event
    pieces: list[str] = field(default_factory=list)
    top_logprobs: list[dict[str, float]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    finish_reason: str | None = None
    timed_out: bool = False

    def on_chunk(self, chunk: dict[str, Any]) -> bool:
        """Returns True to stop generating."""
        if "error" in chunk:
            self.error = chunk["error"]
            return True
        for choice in chunk.get("choices", ()):
            content = choice.get("delta", {}).get("content")
            if content:
                self.pieces.append(content)
            for token in (choice.get("logprobs") or {}).get("content") or ():
                self.top_logprobs.append(
                    {alt["token"]: alt["logprob"] for alt in token.get("top_logprobs", ())}
                )
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        finished = self.finish_reason is not None
        if not finished and self.deadline is not None and time.monotonic() > self.deadline:
            self.timed_out = True
        return self.timed_out or self.cancelled.is_set()


class LocalChatModel:
    """``ChatModel`` over a GGUF file. Constructing it loads the model (seconds,
    blocking): call it from a worker thread."""

    def __init__(
        self,
        gguf_path: Path,
        *,
        n_ctx: int,
        threads: int,
        executor: BlockingExecutor,
        parallel: int = 1,
        prompt_cache_mib: int = 0,
    ) -> None:
        self.name = f"local:{gguf_path.stem}"
        self.n_ctx = n_ctx
        self.parallel = parallel
        self._executor = executor
        # As many generations as slots: llama.cpp would queue the others inside
        # C++, where neither a deadline nor a cancellation can reach them, each
        # one holding a thread while it waits. Waiting here costs nothing.
        self._slots = asyncio.Semaphore(parallel)
        self._waiters = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="xling-llama")
        self._socket_dir = Path(tempfile.mkdtemp(prefix="xling-llama-"))
        started = time.perf_counter()
        try:
            self._server: xllamacpp.Server | None = xllamacpp.Server(
                server_params(
                    gguf_path,
                    self._socket_dir / "llama.sock",
                    n_ctx=n_ctx,
                    threads=threads,
                    parallel=parallel,
                    prompt_cache_mib=prompt_cache_mib,
                )
            )
        except RuntimeError as exc:
            self._waiters.shutdown()
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            raise ConfigurationError(
                "local_model",
                f"llama.cpp could not load {gguf_path} with n_ctx={n_ctx} ({exc}); "
                "its error lines on stderr say why",
            ) from exc
        log.info(
            "loaded %s (n_ctx=%d, threads=%d, parallel=%d) in %.1f s",
            gguf_path,
            n_ctx,
            threads,
            parallel,
            time.perf_counter() - started,
        )

    async def complete(
        self,
        messages: list[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        temperature: float = 0.2,
        max_tokens: int = 1024,
        timeout_s: float | None = None,
        top_logprobs: int = 0,
        frequency_penalty: float = 0.0,
    ) -> ChatResult:
        request: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": temperature,
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if frequency_penalty:
            request["frequency_penalty"] = frequency_penalty
        if top_logprobs:
            request["logprobs"] = True
            request["top_logprobs"] = top_logprobs
        if json_schema is not None:
            request["grammar"] = one_line_grammar(json_schema)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            raise DeadlineExceeded(
                f"{self.name} stayed busy past the {timeout_s:g} s deadline"
            ) from None
        cancelled = threading.Event()
        stream = _Stream(deadline, cancelled)
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._waiters, self._generate, request, stream
            )
        except asyncio.CancelledError:
            # The waiting thread stops at the next token instead of running on.
            cancelled.set()
            raise
        finally:
            self._slots.release()
        return self._result(stream, max_tokens=max_tokens, timeout_s=timeout_s)

    def _generate(self, request: dict[str, Any], stream: _Stream) -> None:
        server = self._server
        if server is None:
            raise Unavailable(f"{self.name} is closed")
        try:
            # Streaming is what makes the call interruptible: the callback
            # runs after every token and can stop the generation. The prompt
            # is evaluated before the first token and cannot be interrupted
            # (21 to 50 tokens/s on 2 cores), so a deadline may be overrun by
            # that much.
            server.handle_chat_completions(request, stream.on_chunk)
        except ValueError as exc:
            # llama.cpp refused the request itself (a schema it cannot compile,
            # an unknown option): a bug on our side, not the caller's input.
            raise XlingError(f"{self.name} rejected the request: {exc}") from exc

    def _result(self, stream: _Stream, *, max_tokens: int, timeout_s: float | None) -> ChatResult:
        if stream.error is not None:
            raise self._error(stream.error)
        if stream.timed_out:
            raise DeadlineExceeded(
                f"{self.name} ran past the {timeout_s:g} s deadline "
                f"after {len(stream.pieces)} tokens"
            )
        # A one-token reply (a scored yes/no) is cut on purpose.
        if stream.finish_reason == "length" and max_tokens > 1:
            log.warning("%s stopped at max_tokens=%d; the reply is cut", self.name, max_tokens)
        return ChatResult(
            content="".join(stream.pieces),
            model=self.name,
            prompt_tokens=stream.usage.get("prompt_tokens", 0),
            completion_tokens=stream.usage.get("completion_tokens", 0),
            cached_prompt_tokens=(stream.usage.get("prompt_tokens_details") or {}).get(
                "cached_tokens", 0
            ),
            top_logprobs=tuple(stream.top_logprobs),
        )

    def _error(self, error: dict[str, Any]) -> XlingError:
        message = str(error.get("message", error))
        if error.get("type") == "exceed_context_size_error":
            return ContextLengthExceeded(
                f"{message} (XLING_LOCAL_N_CTX)",
                prompt_tokens=int(error.get("n_prompt_tokens", 0)),
                n_ctx=int(error.get("n_ctx", self.n_ctx)),
            )
        if error.get("code") == 503:
            return Unavailable(f"{self.name} is unavailable: {message}", retry_after_s=1.0)
        return XlingError(f"{self.name} failed: {message}")

    async def aclose(self) -> None:
        for _ in range(self.parallel):  # every slot: no call is running any more
            await self._slots.acquire()
        try:
            if self._server is not None:
                await self._executor.run(self._unload)
            self._waiters.shutdown()
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        finally:
            for _ in range(self.parallel):
                self._slots.release()

    def _unload(self) -> None:
        # Dropping the only reference joins llama.cpp's threads and frees the
        # model: blocking, hence a worker thread. A call still running holds
        # its own reference until it returns.
        self._server = None


def one_line_grammar(json_schema: dict[str, Any]) -> str:
    """An llguidance grammar for ``json_schema`` that writes the JSON on one line."""
    return xllamacpp.json_schema_to_grammar({**json_schema, "x-guidance": _COMPACT_JSON})


def server_params(
    gguf_path: Path,
    socket_path: Path,
    *,
    n_ctx: int,
    threads: int,
    parallel: int = 1,
    prompt_cache_mib: int = 0,
) -> xllamacpp.CommonParams:
    """llama.cpp's settings for ``LocalChatModel``: ``n_ctx`` a slot, its HTTP
    listener on the Unix socket ``socket_path`` behind a random key."""
    params = xllamacpp.CommonParams()
    params.model.path = str(gguf_path)
    # 0 would mean the model's full 32k window and a KV cache of ~900 MB.
    # The KV cache is split evenly among the slots: each gets n_ctx.
    params.n_ctx = n_ctx * parallel
    params.n_parallel = parallel
    params.cont_batching = True
    params.kv_unified = False
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    # Without extra buffer types the weights stay in the mmapped file
    # instead of a repacked anonymous copy: ~1.2 GiB RSS instead of ~1.9.
    params.no_extra_bufts = True
    # A slot reuses only the prefix its last prompt shares with the next.
    # The system prompts differ by task and by language, and evaluating one
    # again takes seconds on a small CPU (about 12 s for 250 tokens on 2
    # cores), so evaluated prompts are set aside in host memory and resumed.
    # At about 28 KB a token for the 1.5B, 128 MiB keeps some 4,500 tokens.
    params.cache_ram_mib = prompt_cache_mib
    params.verbosity = (
        _LLAMA_VERBOSITY_INFO if log.isEnabledFor(logging.DEBUG) else _LLAMA_VERBOSITY_ERRORS
    )
    params.hostnames = [str(socket_path)]
    params.api_keys = [secrets.token_urlsafe(32)]
    params.n_threads_http = 1
    params.ui = False
    params.endpoint_slots = False
    return params
