"""DocStatus equals the strings libraries already hold, so an existing library reads the same,
and what the library writes through it is the plain word."""

from __future__ import annotations

import json
import sqlite3

from app.core.library import Library
from app.core.status import DocStatus
from tests.core.test_library import ingest


def test_the_members_are_the_words_stored_in_existing_libraries():
    assert {s.value for s in DocStatus} == {
        "ready",
        "indexing",
        "queued",
        "interrupted",
        "cancelled",
        "skipped",
        "failed",
        "removing",
    }
    assert DocStatus.READY == "ready" and json.dumps([DocStatus.FAILED]) == '["failed"]'


def test_the_library_stores_the_words_and_reads_them_back_equal(tmp_path):
    lib = Library(tmp_path)
    try:
        ingest(lib, "/a.txt", "v1", ["harbour tide tables"])
        lib.record_unreadable("/b.pdf", DocStatus.SKIPPED, "scanned, no text")
        lib.reset()  # a re-index with another embedder: every document queued
        assert lib.unfinished() == ["/a.txt", "/b.pdf"]
        assert {d.path: d.status for d in lib.documents()} == {
            "/a.txt": DocStatus.QUEUED,
            "/b.pdf": DocStatus.QUEUED,
        }
    finally:
        lib.close()
    db = sqlite3.connect(tmp_path / "library.sqlite3")
    stored = db.execute("SELECT status, typeof(status) FROM documents").fetchall()
    db.close()
    assert stored == [("queued", "text"), ("queued", "text")]
