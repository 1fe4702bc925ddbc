"""Conversations in SQLite (chats.sqlite3), with a list of schema migrations.

Each message is written in its own transaction, so a crash never leaves half a message: an answer
is stored when it is done (or stopped), together with its sources and figures.

A chats file that is damaged (not a database any more, failing SQLite's check, or its tables
gone) is moved into a `damaged-YYYYmmdd-HHMMSS/` folder beside it and a fresh one is started:
the window must open rather than abort on it. `set_aside` then says where the old one went,
for the window to tell the user.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.core.store_health import aside_folder, check_chats, set_aside

log = logging.getLogger(__name__)

MIGRATIONS = [
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY, title TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        text TEXT NOT NULL,
        sources TEXT NOT NULL DEFAULT '[]',
        stats TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL);
    CREATE INDEX messages_conversation ON messages(conversation, id);
    """,
    "CREATE TABLE ui_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
]


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    updated: float


@dataclass(frozen=True)
class Message:
    id: int
    role: str
    text: str
    sources: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)


class ChatHistory:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self.path = Path(path)
        self.set_aside: Path | None = None  # where a damaged chats file was moved, if one was
        self.damage: str | None = None  # what was wrong with it
        damages = check_chats(self.path)
        if damages:
            self._set_aside(damages[0].problem)
        try:
            self._db = self._open()
        except (sqlite3.DatabaseError, ValueError) as exc:  # damage the check did not see
            self._set_aside(str(exc))
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        """The chats file, opened and brought to the current schema (closed again if that
        fails, so a damaged file can be set aside)."""
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            _migrate(db)
        except BaseException:
            db.close()
            raise
        if os.name == "posix":
            os.chmod(self.path, 0o600)
        return db

    def _set_aside(self, problem: str) -> None:
        folder = aside_folder(self.path.parent)
        set_aside([self.path], folder)
        self.set_aside, self.damage = folder / self.path.name, problem
        log.warning("the chats file was damaged (%s); kept in %s, started afresh", problem, folder)

    def note(self) -> str | None:
        """A sentence for the user when a damaged chats file was set aside, else None."""
        if self.set_aside is None:
            return None
        return (
            f"Your earlier chats could not be read ({self.damage}). The damaged file is kept "
            f"in {self.set_aside.parent}; new chats start empty. Your library and settings "
            "are not affected."
        )

    def close(self) -> None:
        self._db.close()

    def create(self, title: str = "New conversation") -> Conversation:
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO conversations (title, created, updated) VALUES (?, ?, ?)",
                (title, now, now),
            )
        return Conversation(int(cur.lastrowid), title, now)

    def conversations(self) -> list[Conversation]:
        rows = self._db.execute(
            "SELECT id, title, updated FROM conversations ORDER BY updated DESC, id DESC"
        ).fetchall()
        return [Conversation(*r) for r in rows]

    def rename(self, conversation: int, title: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE conversations SET title=? WHERE id=?",
                (title.strip() or "Untitled", conversation),
            )

    def delete(self, conversation: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM conversations WHERE id=?", (conversation,))

    def add(
        self,
        conversation: int,
        role: str,
        text: str,
        sources: list | None = None,
        stats: dict | None = None,
    ) -> Message:
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            cur = self._db.execute(
                "INSERT INTO messages (conversation, role, text, sources, stats, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (conversation, role, text, json.dumps(sources or []), json.dumps(stats or {}), now),
            )
            self._db.execute("UPDATE conversations SET updated=? WHERE id=?", (now, conversation))
            self._db.execute("COMMIT")
        return Message(int(cur.lastrowid), role, text, sources or [], stats or {})

    def delete_message(self, message: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM messages WHERE id=?", (message,))

    def messages(self, conversation: int) -> list[Message]:
        rows = self._db.execute(
            "SELECT id, role, text, sources, stats FROM messages WHERE conversation=? ORDER BY id",
            (conversation,),
        ).fetchall()
        return [Message(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4])) for r in rows]

    def get_state(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM ui_state WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_state(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO ui_state VALUES (?, ?)", (key, value))

    def search(self, text: str) -> list[Conversation]:
        """Conversations whose title or any message contains every word of `text` (any case),
        newest first. A plain scan: a person's chats are thousands of messages, not millions."""
        words = [w.lower() for w in text.split()]
        if not words:
            return self.conversations()
        like = " AND ".join(
            "(lower(c.title) LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m "
            "WHERE m.conversation = c.id AND lower(m.text) LIKE ? ESCAPE '\\'))"
            for _ in words
        )
        args: list[str] = []
        for w in words:
            pattern = "%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            args += [pattern, pattern]
        rows = self._db.execute(
            f"SELECT c.id, c.title, c.updated FROM conversations c WHERE {like} "
            "ORDER BY c.updated DESC, c.id DESC",
            args,
        ).fetchall()
        return [Conversation(*r) for r in rows]


def _migrate(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        db.execute("BEGIN")
        for statement in filter(str.strip, script.split(";")):
            db.execute(statement)
        db.execute(f"PRAGMA user_version={number}")
        db.execute("COMMIT")
