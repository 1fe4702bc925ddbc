"""Chroma's child process watched while an answer is awaited: a stopped child (SIGSTOP) is
reported and replaced instead of making the command wait forever; Ctrl-C (SIGINT to the whole
process group) does not touch it, the parent decides."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

import app.core.vector_store as vector_store
from app.core.vector_store import CollectionProcess, VectorStoreError


@pytest.fixture
def store(tmp_path):
    s = CollectionProcess(tmp_path / "vectors", "chunks")
    s.upsert(
        ids=["a", "b"],
        embeddings=np.eye(2, 8, dtype=np.float32),
        metadatas=[{"doc_id": 1}, {"doc_id": 2}],
    )
    assert s.count() == 2
    yield s
    s.close()


def test_a_stopped_child_is_reported_and_replaced_not_waited_for(store, monkeypatch):
    monkeypatch.setattr(vector_store, "STOPPED_GRACE_S", 1.0)
    pid = store.describe()["pid"]
    os.kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    with pytest.raises(VectorStoreError, match=rf"its process \({pid}\) was paused") as info:
        store.query(query_embeddings=[[1.0] + [0.0] * 7], n_results=1)
    assert time.monotonic() - started < 15
    assert "Run the command again" in str(info.value)
    with pytest.raises(ProcessLookupError):  # it was ended, not left stopped behind
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
    assert store.count() == 2  # a fresh child serves the same store
    assert store.describe()["pid"] != pid


def test_a_child_that_is_only_slow_is_waited_for(store, monkeypatch):
    monkeypatch.setattr(vector_store, "STOPPED_GRACE_S", 0.5)
    pid = store.describe()["pid"]
    os.kill(pid, signal.SIGSTOP)  # stopped briefly, then continued: within the grace
    time.sleep(0.2)
    os.kill(pid, signal.SIGCONT)
    assert store.count() == 2 and store.describe()["pid"] == pid


def test_ctrl_c_reaching_the_child_does_not_stop_it(store):
    pid = store.describe()["pid"]
    os.kill(pid, signal.SIGINT)
    time.sleep(0.5)
    assert store.count() == 2 and store.describe()["pid"] == pid
    log = Path(store.path).parent / vector_store.LOG_NAME  # the child's stderr
    assert "KeyboardInterrupt" not in log.read_text(encoding="utf-8", errors="replace")
