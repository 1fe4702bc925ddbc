"""The ingest queue: requests survive a restart, leave once per finished run, and a damaged or
unwritable file never stops the app."""

from __future__ import annotations

import json
import logging
import os
import stat

from app.core.ingest_queue import FILE_NAME, IngestQueue


def test_requests_survive_a_restart_and_leave_when_read(tmp_path):
    queue = IngestQueue(tmp_path)
    queue.add(["/docs/a.pdf", "/docs/folder"])
    queue.add(["/docs/a.pdf", "/docs/b.txt"])  # asked again (a killed run, a second drop)

    again = IngestQueue(tmp_path)  # the next start
    assert again.paths() == ["/docs/a.pdf", "/docs/folder", "/docs/b.txt"]
    again.discard(["/docs/a.pdf", "/docs/never-queued.txt"])  # one run reads it for both asks
    assert IngestQueue(tmp_path).paths() == ["/docs/folder", "/docs/b.txt"]
    again.discard(["/docs/b.txt"])
    assert IngestQueue(tmp_path).paths() == ["/docs/folder"]
    again.clear()
    assert IngestQueue(tmp_path).paths() == []


def test_the_file_is_private_and_replaced_whole(tmp_path):
    queue = IngestQueue(tmp_path)
    queue.add(["/docs/été 2026.pdf"])
    file = tmp_path / FILE_NAME
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert json.loads(file.read_text(encoding="utf-8")) == ["/docs/été 2026.pdf"]
    assert not file.with_suffix(".json.tmp").exists()


def test_a_damaged_file_is_ignored_with_a_warning(tmp_path, caplog):
    for damage in ("{not json", '{"a": 1}', "[1, 2]"):
        (tmp_path / FILE_NAME).write_text(damage)
        with caplog.at_level(logging.WARNING):
            queue = IngestQueue(tmp_path)
        assert queue.paths() == []
        assert "ignoring the ingest queue" in caplog.text
        caplog.clear()
        queue.add(["/docs/b.txt"])  # and it is usable again
        assert IngestQueue(tmp_path).paths() == ["/docs/b.txt"]


def test_a_write_that_fails_keeps_the_queue_working_in_memory(tmp_path, monkeypatch, caplog):
    queue = IngestQueue(tmp_path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with caplog.at_level(logging.WARNING):
        queue.add(["/docs/c.pdf"])
    assert "could not save the ingest queue" in caplog.text
    assert queue.paths() == ["/docs/c.pdf"]
    monkeypatch.undo()
    assert IngestQueue(tmp_path).paths() == []  # nothing half-written was left behind
    assert list(tmp_path.iterdir()) == []


def test_the_ingestor_owns_the_queue_without_opening_the_library_or_the_model(tmp_path):
    from app.core.ingest import Ingestor

    def never():
        raise AssertionError("opened only to queue a request")

    queue = IngestQueue(tmp_path)
    window = Ingestor(never, never, ingest_queue=queue)  # as the window's thread makes one
    window.queue(["/docs/a.txt", "/docs/folder"])
    assert Ingestor(never, never, ingest_queue=IngestQueue(tmp_path)).pending() == [
        "/docs/a.txt",
        "/docs/folder",
    ]  # on disk: the next start picks them up
    window.forget(["/docs/a.txt"])  # refused or stopped
    assert window.pending() == ["/docs/folder"] == IngestQueue(tmp_path).paths()
    window.forget_all()  # the user pressed Stop
    assert IngestQueue(tmp_path).paths() == []

    alone = Ingestor(never, never)  # the bench and tests: no queue, nothing kept
    alone.queue(["/docs/b.txt"])
    assert alone.pending() == []
