"""Keyword-index rows written by a thread of their own, while the next batch is embedded.

Inserting a batch of chunks into SQLite (the row, and its FTS5 postings through a trigger) took
3.2-4.0 s of the ingesting thread's 14-16 s over the benchmark corpus on a GPU machine
(bench/NOTES.md). Python's sqlite3 lets go of the GIL while SQLite works, so a thread with its
own connection can write batch N while batch N+1 is embedded.

Same contract as the vector store's upserts (vector_store.py): `put` hands rows over without
waiting (it blocks only when `depth` batches are already waiting, which bounds memory); `flush`
waits until every batch handed over is written and raises the first error since the last flush.
Library flushes before anything that must see the rows (a version going live, a purge, a check),
so a failed write can never be followed by its version going live.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_STOP = None
BUSY_RETRIES = 3
"""A batch that finds the database busy past the busy timeout is tried again this many times
(after 0.5, 1, 1.5 s): a re-cut of a 988-page library was once seen to fail with "database is
locked" here, and the run, not the batch, was lost. Rows are upserts: a retry is harmless."""


def _busy(exc: sqlite3.OperationalError) -> bool:
    return (exc.sqlite_errorcode & 0xFF) == sqlite3.SQLITE_BUSY  # BUSY and its extended codes


class RowWriter:
    """Runs `sql` with executemany over each batch given to put(), one transaction a batch."""

    def __init__(
        self,
        db_path: Path,
        sql: str,
        depth: int = 2,
        busy_timeout: float = 30.0,
        retry_pause: float = 0.5,
    ) -> None:
        self._db_path = db_path
        self._sql = sql
        self._busy_timeout = busy_timeout
        self._retry_pause = retry_pause
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def put(self, rows: Sequence[tuple]) -> None:
        """Queue one batch; raises the error of an earlier batch, if one failed."""
        self._raise_error()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="confidant-rows", daemon=True)
            self._thread.start()
        self._queue.put(list(rows))

    def flush(self) -> None:
        """Wait until every batch queued is written; raise the first that failed."""
        if self._thread is not None:
            self._queue.join()
        self._raise_error()

    def close(self) -> None:
        """Write what is queued, then stop the thread (its errors are raised here)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()
        self._raise_error()

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self._db_path, isolation_level=None, timeout=self._busy_timeout)
            db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            self._error = exc
        while True:  # whatever happens, every batch is marked done: flush() never hangs
            rows = self._queue.get()
            try:
                if rows is _STOP:
                    break
                if db is None:
                    continue  # the connection's error is reported already
                self._write(db, rows)
            except BaseException as exc:  # kept for the owner's next call, never lost
                if db is not None and db.in_transaction:
                    db.execute("ROLLBACK")
                if self._error is None:
                    self._error = exc
            finally:
                self._queue.task_done()
        if db is not None:
            db.close()

    def _write(self, db: sqlite3.Connection, rows: list[tuple]) -> None:
        """One batch, one transaction. IMMEDIATE takes the write lock first, through the busy
        handler, so the transaction never has to upgrade a read snapshot another write made
        stale (which SQLite refuses at once, without waiting)."""
        for attempt in range(BUSY_RETRIES + 1):
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(self._sql, rows)
                db.execute("COMMIT")
                return
            except sqlite3.OperationalError as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if not _busy(exc) or attempt == BUSY_RETRIES:
                    raise
                log.warning("keyword rows: %s; trying the batch again", exc)
                time.sleep(self._retry_pause * (attempt + 1))
