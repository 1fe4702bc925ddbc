"""The Chroma collection in a process of its own, behind the collection's own methods.

Why a process: Chroma's Rust core holds the GIL for the whole of every call. An upsert into a
growing collection held it longer than the window may stall (50 ms; a 1 ms ticker thread beside
it measured the gaps, bench/NOTES.md), so while a library was being written the window's thread
stalled again and again, and on a GPU the writes could not overlap the embedding at all. In a
child, the writes run beside this process instead of inside it.

The child owns the only client of the store (Chroma must not be opened by two processes). The
parent sends requests over a pipe; the child answers each in order. `upsert` does not wait for
its answer, so the next batch is embedded while the child writes this one; every other call
first collects the answers still owed, so it sees those writes and raises their errors, and
`flush()` does only that (Library calls it before a version goes live). A child that dies is
replaced on the next call; what it had not confirmed is reported as an error to the caller.

Every wait for an answer watches the child: one that ended is reported at once, and one that
is stopped (SIGSTOP, Ctrl-Z on it, a debugger) for STOPPED_GRACE_S is ended and reported, so no
command waits forever on it. The child ignores SIGINT: Ctrl-C in a terminal reaches the whole
process group, and it is the parent that decides what stopping means (it closes the child).

`LocalCollection` is the same surface over a collection in this process: the child serves one,
and `Library(vector_process=False)` uses one directly (the way before; bench compares the two).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path

from app.core.children import portable, reap

log = logging.getLogger(__name__)

# In this process, a Chroma upsert holds the GIL throughout, for longer the more vectors it
# writes, which would freeze the window while a GPU embeds in 256s: LocalCollection writes this
# many at a time.
WRITE_SLICE = 64
STOPPED_GRACE_S = 5.0  # how long the child may stay stopped before it is given up on
POLL_S = 0.25  # how often a wait for an answer looks at the child


_refused: list[str] = []  # in the child: network connections it refused


class VectorStoreError(RuntimeError):
    """The vector store failed or stopped; the message is a plain sentence."""


class VectorStoreDamaged(VectorStoreError):
    """Chroma could not open the store because its files are damaged (it refused them, or its
    Rust core panicked or aborted on them). Library turns it into LibraryDamaged."""


LOG_NAME = "vector-store.log"
"""Beside the store: the child's stderr. A Rust panic in Chroma prints its message and
backtrace there, never on the user's terminal; the error itself comes back as an answer."""


def _looks_damaged(value: BaseException) -> bool:
    from app.core.store_health import _DAMAGE_WORDS

    text = f"{type(value).__name__}: {value}".lower()
    return any(w in text for w in _DAMAGE_WORDS)


class LocalCollection:
    """The persistent Chroma collection at `path` (created when missing), in this process, with
    CollectionProcess's extra methods. `write_slice`: chunks per upsert call (None: all)."""

    def __init__(self, path: str | Path, name: str, write_slice: int | None = None) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self.name = name
        self.write_slice = write_slice
        self._client = chromadb.PersistentClient(
            path=str(path), settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        )
        self._collection = self._get_or_create()

    def _get_or_create(self):
        return self._client.get_or_create_collection(
            self.name, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )

    def __getattr__(self, op: str):  # query, get, delete, count: Chroma's own
        return getattr(self._collection, op)

    def upsert(self, *, ids, embeddings, metadatas) -> None:
        step = self.write_slice
        if not step or len(ids) <= step:  # whole: Chroma checks the lengths agree
            self._collection.upsert(ids=ids, embeddings=embeddings, metadatas=metadatas)
            return
        if not len(ids) == len(embeddings) == len(metadatas):
            raise ValueError("ids, embeddings and metadatas differ in length")
        for at in range(0, len(ids), step):
            self._collection.upsert(
                ids=ids[at : at + step],
                embeddings=embeddings[at : at + step],
                metadatas=metadatas[at : at + step],
            )

    def reset(self) -> None:
        """Delete every vector (the collection is dropped and made again)."""
        self._client.delete_collection(self.name)
        self._collection = self._get_or_create()

    def describe(self) -> dict:
        """The pid, telemetry setting and refused connections (for the privacy test)."""
        return {
            "pid": os.getpid(),
            "anonymized_telemetry": self._client.get_settings().anonymized_telemetry,
            "posthog_loaded": "posthog" in sys.modules,
            "refused_connections": list(_refused),
        }

    def flush(self) -> None:
        """Nothing to wait for: each call here returns once written."""

    def close(self) -> None:
        """Nothing to stop."""


def _forbid_network() -> None:
    """In the child: refuse every connection that is not a local (AF_UNIX) socket. The store
    needs none; this makes sure no library it imports ever reaches out."""
    import socket

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self, address, _real=real_connect):
        if self.family != getattr(socket, "AF_UNIX", None):
            _refused.append(repr(address))
            raise PermissionError("Confidant's vector store never uses the network.")
        return _real(self, address)

    def connect_ex(self, address, _real=real_connect_ex):
        if self.family != getattr(socket, "AF_UNIX", None):
            _refused.append(repr(address))
            return 13  # EACCES
        return _real(self, address)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex


def _stderr_to_log(log_path: Path) -> None:  # pragma: no cover - in the child
    """Send this process's stderr (fd 2, where Rust's panic hook writes) to `log_path`."""
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError:
        return  # a full disk or a read-only folder: keep the terminal
    sys.stderr.flush()
    os.dup2(fd, 2)
    os.close(fd)


def _serve(conn, path: str, name: str, parent: int) -> None:  # pragma: no cover - in the child
    """The child: one collection, one request at a time until 'close' or the pipe ends."""
    # Started with SIGINT blocked (see _start): ignore it, then let signals in.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    from app.config import isolate_from_network

    _stderr_to_log(Path(path).parent / LOG_NAME)
    isolate_from_network()
    _forbid_network()
    try:
        collection = LocalCollection(path, name)
    except BaseException as exc:
        conn.send(("error", portable(exc)))
        return
    conn.send(("ok", None))
    while True:
        try:
            op, kwargs = conn.recv()
        except (EOFError, OSError):
            break
        if os.getppid() != parent:  # the parent died: what it sent last belongs to no one
            break
        if op == "close":
            conn.send(("ok", None))
            break
        try:
            conn.send(("ok", getattr(collection, op)(**kwargs)))
        except BaseException as exc:  # every failure goes back to the parent as an answer
            conn.send(("error", portable(exc)))
    conn.close()


class CollectionProcess:
    """A Chroma collection (upsert, query, get, delete, count) served by a child process.
    Thread-safe: one lock orders the requests on the pipe."""

    def __init__(self, path: str | Path, name: str) -> None:
        self.path = str(path)
        self.name = name
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None
        self._owed = 0  # answers to upserts not collected yet
        self._failed: BaseException | None = None  # the first of those that was an error

    # ------------------------------------------------------------------ the collection's methods
    def upsert(self, **kwargs) -> None:
        """Sent without waiting for the write; its error (if any) is raised by a later call."""
        with self._lock:
            self._raise_failed()
            self._send("upsert", kwargs)
            self._owed += 1
            while self._owed and self._conn.poll():  # collect what is already answered
                self._collect_one()

    def query(self, **kwargs):
        return self._call("query", kwargs)

    def get(self, **kwargs):
        return self._call("get", kwargs)

    def delete(self, **kwargs) -> None:
        self._call("delete", kwargs)

    def count(self) -> int:
        return self._call("count", {})

    def reset(self) -> None:
        """Delete every vector (the collection is dropped and made again)."""
        self._call("reset", {})

    def describe(self) -> dict:
        """The child's pid, telemetry setting and refused connections (for the privacy test)."""
        return self._call("describe", {})

    def flush(self) -> None:
        """Wait until every upsert sent is written; raise the first that failed."""
        with self._lock:
            self._collect_all()

    def close(self) -> None:
        """Let the child finish the writes it was sent, then stop it."""
        with self._lock:
            proc, conn, owed = self._proc, self._conn, self._owed
            self._proc = self._conn = None
            self._owed = 0
        if conn is not None:
            with contextlib.suppress(OSError, ValueError, EOFError):
                conn.send(("close", {}))
                for _ in range(owed + 1):  # the owed answers, then close's own
                    if not conn.poll(60):
                        break
                    kind, value = conn.recv()
                    if kind == "error":
                        log.warning("a write failed while closing the vector store: %s", value)
            conn.close()
        if proc is not None:
            reap(proc, 10)

    # ------------------------------------------------------------------ plumbing
    def start(self) -> None:
        """Start the child and open the collection in it (also done by the first call)."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self._proc is not None:
            if self._proc.is_alive():
                return
            # Died between calls: collect the answers it sent first; any write it did not
            # confirm is an error for the caller, never silently dropped.
            while self._owed and self._conn.poll():
                self._collect_one()
            if self._owed:
                raise self._died()
            self._stop()
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_end = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve,
            args=(child_end, self.path, self.name, os.getpid()),
            name="confidant-vectors",
            daemon=True,
        )
        try:
            with _sigint_blocked():  # until the child ignores it (see _serve)
                self._proc.start()
        except OSError as exc:
            self._stop()
            raise VectorStoreError(
                f"The library's vector store could not be started ({exc}). Close other "
                "programs and try again."
            ) from exc
        finally:
            child_end.close()
        try:
            kind, value = self._recv()
        except VectorStoreError as exc:
            code = getattr(exc, "exitcode", None)
            if code in (-6, -7, -11):  # SIGABRT, SIGBUS, SIGSEGV while opening: its files
                raise VectorStoreDamaged(
                    f"Chroma stopped (signal {-code}) while opening the vector store."
                ) from exc
            raise
        if kind == "error":
            self._stop()
            if _looks_damaged(value):
                raise VectorStoreDamaged(
                    f"Chroma could not open the vector store: {_first_line(value)}"
                ) from value
            raise VectorStoreError(
                f"The library's vector store could not be opened ({value}). Check that the "
                "disk has room and that the data folder may be written."
            ) from value

    def _call(self, op: str, kwargs: dict):
        with self._lock:
            self._collect_all()
            self._send(op, kwargs)
            kind, value = self._recv()
        if kind == "error":
            panic = self._panic()
            if panic:  # Chroma's core failed on its own files: no retry will do better
                raise VectorStoreDamaged(f"Chroma failed on a damaged record: {panic}") from value
            raise value
        return value

    def _panic(self) -> str | None:
        """The message of a Rust panic the child logged (see LOG_NAME), if any."""
        try:
            with open(Path(self.path).parent / LOG_NAME, encoding="utf-8", errors="replace") as fh:
                lines = fh.read(1 << 20).splitlines()
        except OSError:
            return None
        for n, line in enumerate(lines):
            if " panicked at " in line:
                detail = lines[n + 1] if n + 1 < len(lines) else line
                return detail.strip()[:300]
        return None

    def _send(self, op: str, kwargs: dict) -> None:
        self._start()
        try:
            self._conn.send((op, kwargs))
        except (OSError, ValueError) as exc:
            raise self._died() from exc

    def _recv(self):
        self._wait_for_answer()
        try:
            return self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died() from exc

    def _wait_for_answer(self) -> None:
        """Return when an answer is there to read (or the pipe ended: recv says so); raise when
        the child ended without one, or has been stopped for STOPPED_GRACE_S."""
        stopped_since = None
        while not self._conn.poll(POLL_S):
            proc = self._proc
            if proc is None or not proc.is_alive():
                if self._conn.poll(0):  # it answered, then ended
                    return
                raise self._died()
            if _is_stopped(proc.pid):
                stopped_since = stopped_since or time.monotonic()
                if time.monotonic() - stopped_since >= STOPPED_GRACE_S:
                    raise self._stopped(proc.pid)
            else:
                stopped_since = None

    def _stopped(self, pid: int) -> VectorStoreError:
        lost = self._owed
        self._stop()  # killed: a stopped process still receives SIGKILL
        error = VectorStoreError(
            f"The library's vector store stopped responding: its process ({pid}) was paused "
            f"(stopped by a signal, e.g. kill -STOP or a debugger) for over "
            f"{STOPPED_GRACE_S:.0f} s, so Confidant ended it; {lost} write(s) were not confirmed. "
            "Run the command again; nothing already in the library is lost."
        )
        error.exitcode = None
        return error

    def _collect_one(self) -> None:
        kind, value = self._recv()
        self._owed -= 1
        if kind == "error" and self._failed is None:
            self._failed = value

    def _collect_all(self) -> None:
        while self._owed:
            self._collect_one()
        self._raise_failed()

    def _raise_failed(self) -> None:
        failed, self._failed = self._failed, None
        if failed is not None:
            raise failed

    def _died(self) -> VectorStoreError:
        code = None
        if self._proc is not None:
            self._proc.join(1)
            code = self._proc.exitcode
        lost = self._owed
        self._stop()
        error = VectorStoreError(
            f"The library's vector store stopped unexpectedly (its process ended with code "
            f"{code}); {lost} write(s) were not confirmed. Add the files again to finish them."
        )
        error.exitcode = code
        return error

    def _stop(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self._owed = 0
        if conn is not None:
            conn.close()
        if proc is not None:
            reap(proc, 1)


@contextlib.contextmanager
def _sigint_blocked():
    """SIGINT held back in this thread (and so in a child started meanwhile, which inherits the
    mask across exec) and delivered when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _is_stopped(pid: int) -> bool:
    """Whether the process is stopped (state T or t): it will answer nothing until continued."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        try:
            import psutil

            return psutil.Process(pid).status() in ("stopped", "tracing-stop")
        except Exception:  # no way to tell: only an ended child is detected
            return False
    # "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ")"
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state in (b"T", b"t")


def _first_line(value: BaseException) -> str:
    text = str(value).strip()
    return text.splitlines()[0][:300] if text else type(value).__name__
