"""The GGUF engine in a process of its own, behind the same methods as LlamaEngine.

Why a process: a CUDA build of llama.cpp and a CUDA build of torch cannot share one process
(measured on an H100, both on CUDA 13 with the same libcublas: importing torch first makes the
model load die with SIGSEGV, loading llama.cpp first makes `import torch` abort). The embedder
needs torch, so the model runs in a spawned child that never imports it. The same wall keeps a
llama.cpp abort on a damaged model from taking the window down with it: the user gets a message
and the rest of the app goes on.

The child owns one LlamaEngine; the parent sends one request at a time over a pipe and reads
replies. generate() streams pieces as the child makes them; Stop sets a shared flag that the
child's engine polls between prompt slices, inside them (llama.cpp's abort callback) and between
tokens, exactly as it polls an in-process CancelToken. Like LlamaEngine, not thread-safe: one
lane owns it.

The GGUF's chat template does not run in the model's child: this process runs it through a
ChatTemplate (its own small process, bounded, see app/core/chat_template.py), from what the child
reports about the model at load.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

from app.core.cancel import Cancelled, CancelToken
from app.core.chat_template import ChatTemplate
from app.core.children import portable, reap
from app.core.gguf_check import GGUFInfo, inspect_gguf
from app.core.llm import Generated, LoadReport, ModelLoadError, Prefill, check_memory, with_note

log = logging.getLogger(__name__)

_POLL_S = 0.02  # how often a waiting parent looks at its cancel token
_FLUSH_S = 0.01  # the child sends the first piece at once, then at most one message per 10 ms


class _FlagToken:
    """A CancelToken over a byte of shared memory. The engine polls it for every graph node of
    a prompt slice, so it must cost a memory read (a multiprocessing.Event costs two system
    calls per poll, which slowed the prompt measurably on a GPU: bench/NOTES.md)."""

    def __init__(self, flag) -> None:
        self._flag = flag

    @property
    def cancelled(self) -> bool:
        return bool(self._flag.value)

    def raise_if_cancelled(self) -> None:
        if self._flag.value:
            raise Cancelled()


def _serve(conn, stop_flag, kwargs: dict) -> None:  # pragma: no cover - runs in the child
    """The child: one engine, one request at a time until 'close' or the pipe ends."""
    from app.core.llm import LlamaEngine

    engine = LlamaEngine(**kwargs, check_template=False)  # the parent runs the template
    token = _FlagToken(stop_flag)
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            break
        if op == "close":
            break
        try:
            if op == "load":
                report = engine.load()
                conn.send(("ok", (report, engine.info, engine.n_ctx, engine.template_facts())))
            elif op == "generate":
                _stream(conn, engine.generate(args[0], token, *args[1:]))  # pieces, Prefills
            else:
                conn.send(("ok", getattr(engine, op)(*args)))
        except BaseException as exc:  # every failure goes back to the parent as a reply
            conn.send(("error", portable(exc)))
    engine.close()
    conn.close()


def _stream(conn, items) -> None:  # pragma: no cover - runs in the child
    """Send pieces coalesced (one message per token costs ~10 % of decode speed on a fast GPU),
    then the final figures."""
    pending: list[str] = []
    last = 0.0
    for item in items:
        if isinstance(item, str):
            pending.append(item)
            now = time.perf_counter()
            if now - last >= _FLUSH_S:
                conn.send(("piece", "".join(pending)))
                pending.clear()
                last = now
        elif isinstance(item, Prefill):
            conn.send(("progress", item))
        else:
            if pending:
                conn.send(("piece", "".join(pending)))
            conn.send(("done", item))


class EngineProcess:
    """LlamaEngine's interface, served by a child process started on load()."""

    def __init__(self, path: str | Path, **engine_options) -> None:
        """`engine_options` are LlamaEngine's (n_ctx, gpu_layers, n_batch, ...), passed on."""
        self.path = Path(path).expanduser()
        self._kwargs = {"path": str(self.path), **engine_options}
        self.report: LoadReport | None = None
        self.info: GGUFInfo | None = None
        self.n_ctx: int | None = None  # as LlamaEngine: known once loaded
        self._proc = None
        self._conn = None
        self._stop = None
        self.template: ChatTemplate | None = None

    # ------------------------------------------------------------------ the child's life
    @property
    def loaded(self) -> bool:
        return self.report is not None and self._proc is not None and self._proc.is_alive()

    def load(self) -> LoadReport:
        """Start the child and load the model there (validation and GPU fallback included)."""
        if self.loaded:
            return self.report
        self.close()
        # The file's header and size are checked here first: a wrong file or one too large for
        # this computer is refused without starting a process (the child checks again).
        check_memory(inspect_gguf(self.path))
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.RawValue(ctypes.c_bool, False)
        self._conn, child_end = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve,
            args=(child_end, self._stop, self._kwargs),
            name="confidant-model",
            daemon=True,
        )
        self._proc.start()
        child_end.close()
        try:
            self._send("load")
            kind, value = self._reply()
            if kind == "error":
                raise value
            report, self.info, self.n_ctx, facts = value
            self.template = ChatTemplate(**facts)
            self.report = with_note(report, self.template.check())
        except BaseException:
            self.close()
            raise
        return self.report

    def close(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self.report = None
        if self.template is not None:
            self.template.close()
            self.template = None
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("close", ()))
            conn.close()
        if proc is not None:  # stuck in a long prompt slice, it holds nothing we need
            reap(proc, 5)

    # ------------------------------------------------------------------ requests
    def _send(self, op: str, *args) -> None:
        if self._conn is None:
            raise ModelLoadError("The model is not loaded.")
        try:
            self._conn.send((op, args))
        except (OSError, ValueError) as exc:
            raise self._died() from exc

    def _reply(self, cancel: CancelToken | None = None):
        """The child's next message. With `cancel`, its Stop is passed on while waiting. A dead
        child closes its end of the pipe, so waiting always ends."""
        conn = self._conn
        try:
            while True:
                if cancel is None:
                    return conn.recv()
                if cancel.cancelled:
                    self._stop.value = True
                if conn.poll(_POLL_S):
                    return conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died() from exc

    def _request(self, op: str, *args) -> None:
        if not self.loaded:  # never started, or died since: a fresh child (load reports why not)
            self.load()
        self._stop.value = False  # a Stop belongs to the request it was given for
        self._send(op, *args)

    def _call(self, op: str, *args):
        self._request(op, *args)
        kind, value = self._reply()
        if kind == "error":
            raise value
        return value

    def _died(self) -> ModelLoadError:
        code = None
        if self._proc is not None:
            self._proc.join(1)  # reap it, so its exit code is known
            code = self._proc.exitcode
        self.close()
        return ModelLoadError(
            f"The model stopped unexpectedly (its process ended with code {code}). The model "
            "file may be damaged or too large for this computer: choose another in Settings, "
            "or ask again to reload it."
        )

    def render(self, messages: list[dict[str, str]], cancel: CancelToken | None = None) -> str:
        """As LlamaEngine.render: the file's template, bounded, or a standard one with a note."""
        if not self.loaded:
            self.load()
        prompt = self.template.render(messages, cancel)
        self.report = with_note(self.report, self.template.note)
        return prompt

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        return self._call("tokenize", text, special)

    def count_tokens(self, text: str) -> int:
        return self._call("count_tokens", text)

    def prompt_length(self, prompt: str) -> int:
        return self._call("prompt_length", prompt)

    def neutralize(self, text: str) -> str:
        return self._call("neutralize", text)

    def assemble(self, system, question, history, hits, max_answer_tokens, sources):
        """As LlamaEngine.assemble, in one round trip (it used to take one per string)."""
        if not self.loaded:
            self.load()
        # Plain pairs cross the pipe: unpickling chat.Turn would import the chat module (and
        # the library's) into the model's process.
        pairs = [(t.question, t.answer) if hasattr(t, "question") else tuple(t) for t in history]
        return self._call(
            "assemble", system, question, pairs, list(hits), max_answer_tokens, sources
        )

    def generate(
        self,
        prompt: str,
        cancel: CancelToken,
        max_tokens: int = 512,
        temperature: float = 0.2,
        stop_at_eog: bool = True,
        progress: bool = False,
    ) -> Iterator[str | Generated | Prefill]:
        """As LlamaEngine.generate: pieces as they come (and Prefills), then one Generated."""
        self._request("generate", prompt, max_tokens, temperature, stop_at_eog, progress)
        finished = False
        try:
            while True:
                kind, value = self._reply(cancel)
                if kind in ("piece", "progress"):
                    yield value
                elif kind == "done":
                    finished = True
                    yield value
                    return
                else:
                    finished = True
                    raise value
        finally:
            if not finished and self._conn is not None:
                # The consumer stopped reading early: stop the child and drain its replies so
                # the next request does not read this one's leftovers.
                self._stop.value = True
                self._drain()

    def _drain(self) -> None:
        with contextlib.suppress(ModelLoadError):  # a child that died has nothing left to say
            while self._reply()[0] not in ("done", "error"):
                pass


def gpu_offload_supported_isolated(timeout_s: float = 60.0) -> bool:
    """llama.cpp's GPU offload support, asked in a child process, so that this process never
    loads a CUDA llama.cpp beside a CUDA torch (see the module's docstring)."""
    from concurrent.futures import ProcessPoolExecutor

    from app.core.llm import gpu_offload_supported

    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return bool(pool.submit(gpu_offload_supported).result(timeout=timeout_s))
    except Exception as exc:  # no process could start, or llama.cpp died: say CPU
        log.warning("could not ask llama.cpp about GPU offload: %s", exc)
        return False
