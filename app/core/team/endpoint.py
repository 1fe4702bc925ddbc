"""The model behind an OpenAI-compatible endpoint (llama.cpp's llama-server, vLLM, TGI,
llama-cpp-python's server), with the surface ChatSession uses of a local engine.

The server applies the model's chat template, so render() does not: it hands the messages on
as they are (a `ChatPrompt`) and generate() sends them to /v1/chat/completions with stream=true,
reading the server-sent events as they come. Stop closes the stream (the server then stops
generating for it). Tokens are counted by the server's tokenizer where it offers one (llama-server
and vLLM: /tokenize, llama-cpp-python: /extras/tokenize), else estimated on the high side so the
prompt still fits.

Thread-safe: the httpx client is, and a generation keeps its state to itself (the bench runs
several at once through one engine).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from app.core.cancel import Cancelled, CancelToken
from app.core.llm import Generated, LoadReport, PromptTooLong
from app.core.team.http import (
    Secret,
    ServerUnavailable,
    auth_headers,
    check_url,
    safe_url,
    why_unreachable,
)

log = logging.getLogger(__name__)

# Text that spells a control token of the common chat formats is broken by a zero-width space
# (as the local engine does with its own model's list): the server parses special tokens.
_CONTROL = re.compile(
    r"<\|[A-Za-z0-9_]{1,40}\|>|\[/?INST\]|<</?SYS>>|</?s>|<start_of_turn>|<end_of_turn>"
)


class EndpointError(RuntimeError):
    """The model server answered with an error; the message is a plain sentence."""


@dataclass(frozen=True)
class ChatPrompt:
    """What render() returns: the messages, for the server's own chat template."""

    messages: tuple[dict, ...]


@dataclass(frozen=True)
class EndpointReport(LoadReport):
    """A LoadReport for a model on a server: `where` names the server, not a device."""

    @property
    def where(self) -> str:
        return f"server {urlsplit(self.path).netloc}"


class EndpointEngine:
    """A model served at `base_url` (ending in /v1). Create, load(), then generate()."""

    loaded = False

    def __init__(
        self,
        base_url: str,
        api_key: str = "",
        model: str = "",
        *,
        n_ctx: int = 4096,
        allow_insecure_http: bool = False,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
        extra_body: dict | None = None,
    ) -> None:
        """`extra_body`: more fields for every chat request (a server's own sampling options,
        e.g. llama-server's ignore_eos for a benchmark)."""
        self.base_url = check_url(base_url, allow_insecure_http, "model server")
        root = self.base_url
        self.root_url = root[: -len("/v1")] if root.endswith("/v1") else root
        self._key = Secret(api_key)
        self.model = model
        self.extra_body = dict(extra_body or {})
        self.n_ctx = n_ctx
        self.report: EndpointReport | None = None
        self.last_timings: dict | None = None  # the server's own figures for its last answer
        self._tokenizer: str | None = None  # which /tokenize dialect the server speaks
        self._counts: dict[str, int] = {}
        self._counts_lock = threading.Lock()
        self._http = httpx.Client(
            headers=auth_headers(self._key),
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"EndpointEngine({safe_url(self.base_url)!r}, model={self.model!r})"

    # ------------------------------------------------------------------ loading
    def load(self) -> EndpointReport:
        """Reach the server and learn the model's name, context size and tokenizer."""
        if self.report is not None:
            return self.report
        started = time.perf_counter()
        models = self._json("GET", f"{self.base_url}/models").get("data") or []
        ids = [m.get("id", "") for m in models if isinstance(m, dict)]
        if not self.model:
            if not ids:
                raise EndpointError(f"The model server at {self._where()} serves no model.")
            self.model = ids[0]
        elif ids and self.model not in ids:
            raise EndpointError(
                f"The model server at {self._where()} does not serve '{self.model}' "
                f"(it serves: {', '.join(ids[:5])}). Check llm_model in the settings."
            )
        self.n_ctx = self._context_size(models) or self.n_ctx
        self._tokenizer = self._find_tokenizer()
        self.loaded = True
        self.report = EndpointReport(
            model=_display_name(self.model),
            path=self.base_url,
            load_s=time.perf_counter() - started,
            gpu_layers=0,
            total_layers=0,
            device="server",
            n_ctx=self.n_ctx,
            attempts=(),
        )
        return self.report

    def _context_size(self, models: list) -> int | None:
        """llama-server: /props (per-slot n_ctx); vLLM: max_model_len in /v1/models."""
        for m in models:
            if isinstance(m, dict) and isinstance(m.get("max_model_len"), int):
                return m["max_model_len"]
        try:
            props = self._json("GET", f"{self.root_url}/props", quiet=True)
        except (EndpointError, ServerUnavailable):
            return None
        n = (props.get("default_generation_settings") or {}).get("n_ctx")
        return n if isinstance(n, int) and n > 0 else None

    def _find_tokenizer(self) -> str | None:
        for dialect in ("llama-server", "vllm", "llama-cpp-python"):
            try:
                if self._tokenize_with(dialect, "ok") is not None:
                    return dialect
            except (EndpointError, ServerUnavailable):
                continue
        log.info("the model server has no tokenizer endpoint: token counts are estimated")
        return None

    def _tokenize_with(self, dialect: str, text: str) -> int | None:
        if dialect == "llama-server":
            url, body = f"{self.root_url}/tokenize", {"content": text}
        elif dialect == "vllm":
            url, body = f"{self.root_url}/tokenize", {"model": self.model, "prompt": text}
        else:
            url, body = f"{self.root_url}/extras/tokenize", {"input": text}
        data = self._json("POST", url, body, quiet=True)
        if isinstance(data.get("count"), int):
            return data["count"]
        tokens = data.get("tokens")
        return len(tokens) if isinstance(tokens, list) else None

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ text
    def count_tokens(self, text: str) -> int:
        if self._tokenizer is None:
            return estimate_tokens(text)
        with self._counts_lock:
            cached = self._counts.get(text)
        if cached is not None:
            return cached
        try:
            n = self._tokenize_with(self._tokenizer, text)
        except (EndpointError, ServerUnavailable):
            n = None
        n = estimate_tokens(text) if n is None else n
        with self._counts_lock:
            if len(self._counts) > 4096:
                self._counts.clear()
            self._counts[text] = n
        return n

    def neutralize(self, text: str) -> str:
        return _CONTROL.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)

    def render(self, messages: list[dict[str, str]], cancel: CancelToken | None = None):
        return ChatPrompt(tuple(dict(m) for m in messages))

    # ------------------------------------------------------------------ generating
    def generate(
        self,
        prompt: ChatPrompt,
        cancel: CancelToken,
        max_tokens: int = 512,
        temperature: float = 0.2,
    ) -> Iterator[str | Generated]:
        """Text pieces as the server streams them, then a Generated."""
        cancel.raise_if_cancelled()
        body = {
            "model": self.model,
            "messages": list(prompt.messages),
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream_options": {"include_usage": True},
            **self.extra_body,
        }
        started = time.perf_counter()
        first = None
        pieces = 0
        stop_reason = "stop"
        usage: dict = {}
        done = threading.Event()
        try:
            with self._http.stream("POST", f"{self.base_url}/chat/completions", json=body) as r:
                if r.status_code != 200:
                    r.read()
                    raise self._status_error(r)
                watcher = threading.Thread(
                    target=_close_on_cancel, args=(r, cancel, done), daemon=True
                )
                watcher.start()
                finished = False
                for event in _sse_events(r.iter_lines()):
                    if event is None:  # [DONE]
                        finished = True
                        break
                    if "error" in event:
                        raise EndpointError(_error_text(event["error"], self._where()))
                    if event.get("usage"):
                        usage = event["usage"]
                    if event.get("timings"):
                        self.last_timings = event["timings"]
                    for choice in event.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content") or ""
                        if text:
                            if first is None:
                                first = time.perf_counter()
                            pieces += 1
                            yield text
                        if choice.get("finish_reason"):
                            stop_reason = choice["finish_reason"]
                            finished = True
                    if cancel.cancelled:
                        raise Cancelled()
                if not finished:  # the stream ended with neither a finish reason nor [DONE]
                    raise httpx.RemoteProtocolError("the answer's stream ended early")
        except (httpx.TransportError, httpx.StreamError) as exc:
            if cancel.cancelled:
                raise Cancelled() from None
            raise ServerUnavailable(
                f"The model server at {self._where()} stopped answering "
                f"({type(exc).__name__}). Ask again; if it keeps failing, check that the "
                "server is running."
            ) from None
        finally:
            done.set()
        end = time.perf_counter()
        completion = int(usage.get("completion_tokens") or pieces)
        decode_s = end - (first or end)
        yield Generated(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=completion,
            prefill_ms=((first or end) - started) * 1000,
            ttft_ms=((first or end) - started) * 1000,
            tokens_per_s=(completion - 1) / decode_s if decode_s > 0 and completion > 1 else 0.0,
            stop_reason={"length": "max_tokens"}.get(stop_reason, stop_reason),
        )

    # ------------------------------------------------------------------ plumbing
    def _where(self) -> str:
        return safe_url(self.base_url)

    def _json(self, method: str, url: str, body: dict | None = None, quiet: bool = False):
        try:
            r = self._http.request(method, url, json=body)
        except httpx.TransportError as exc:
            raise ServerUnavailable(
                f"The model server at {self._where()} cannot be reached: {why_unreachable(exc)}. "
                "Check that it is running and that llm_server in the settings is right."
            ) from None
        if r.status_code != 200:
            raise self._status_error(r)
        try:
            data = r.json()
        except ValueError:
            raise EndpointError(
                f"The model server at {self._where()} did not answer in JSON: is llm_server "
                "the address of an OpenAI-compatible API (ending in /v1)?"
            ) from None
        return data if isinstance(data, dict) else {}

    def _status_error(self, r: httpx.Response) -> Exception:
        try:
            body = r.json()
            detail = _error_text(body.get("error") or body.get("detail") or body, "")
        except (ValueError, AttributeError):
            detail = r.text[:200]
        if r.status_code in (401, 403):
            return EndpointError(
                f"The model server at {self._where()} refused the request (HTTP "
                f"{r.status_code}): check llm_api_key in the settings."
            )
        low = detail.lower()
        if (
            r.status_code == 400
            and "context" in low
            and any(w in low for w in ("exceed", "too long", "maximum context"))
        ):
            return PromptTooLong("The question and its sources are too long for the model.")
        return EndpointError(
            f"The model server at {self._where()} answered HTTP {r.status_code}: {detail}"
        )


def estimate_tokens(text: str) -> int:
    """A high estimate of a text's tokens when the server cannot count them: about one token
    per three bytes of UTF-8 (English runs near four per token)."""
    return math.ceil(len(text.encode("utf-8")) / 3)


def _sse_events(lines: Iterator[str]) -> Iterator[dict | None]:
    """The JSON objects of server-sent `data:` events; None for `[DONE]`. An `error:` event
    (llama-server's) comes back as {"error": ...}."""
    for line in lines:
        if line.startswith("data:"):
            data = line[5:].strip()
            if data == "[DONE]":
                yield None
                return
            if not data:
                continue
            try:
                event = json.loads(data)
            except ValueError:
                raise EndpointError("The model server sent an event that is not JSON.") from None
            if isinstance(event, dict):
                yield event
        elif line.startswith("error:"):
            try:
                yield {"error": json.loads(line[6:].strip())}
            except ValueError:
                yield {"error": line[6:].strip()}


def _error_text(error, where: str) -> str:
    if isinstance(error, dict):
        error = error.get("message") or error.get("type") or json.dumps(error)[:200]
    text = str(error or "unknown error")[:300]
    return f"The model server at {where} failed: {text}" if where else text


def _close_on_cancel(response: httpx.Response, cancel: CancelToken, done: threading.Event):
    """Stop pressed while the server is still evaluating the prompt: close the stream, so the
    read waiting for the first token ends now (the server drops the request)."""
    while not done.wait(0.05):
        if cancel.cancelled:
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:  # unblocks the reading thread's recv at once
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return


def engine_for(settings) -> EndpointEngine:
    """The engine the settings name (llm_server, llm_api_key, llm_model)."""
    return EndpointEngine(
        settings.llm_server,
        settings.llm_api_key,
        settings.llm_model,
        n_ctx=settings.context_size,
        allow_insecure_http=settings.allow_insecure_http,
    )


def _display_name(model: str) -> str:
    """A served model's name as the window shows it: a file path's last part, no .gguf."""
    name = model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or model
    return name[: -len(".gguf")] if name.lower().endswith(".gguf") else name
