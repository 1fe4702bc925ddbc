"""Chroma in its own process: writes pipelined, errors delivered, a dead child replaced."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.vector_store import CollectionProcess, VectorStoreError


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def store(tmp_path):
    s = CollectionProcess(tmp_path / "vectors", "chunks")
    yield s
    s.close()


def _upsert(store, start: int, n: int) -> None:
    ids = [f"c{i}" for i in range(start, start + n)]
    store.upsert(ids=ids, embeddings=_vectors(n, start), metadatas=[{"doc_id": 1}] * n)


def test_writes_sent_without_waiting_are_all_there_once_flushed(store):
    for start in range(0, 200, 50):
        _upsert(store, start, 50)
    store.flush()
    assert store.count() == 200
    got = store.query(query_embeddings=[_vectors(50, 50)[3].tolist()], n_results=1)
    assert got["ids"][0] == ["c53"]  # the vector came back with its own id


def test_a_failed_write_is_raised_by_the_next_call_and_only_once(store):
    _upsert(store, 0, 5)
    store.upsert(ids=["a", "b"], embeddings=_vectors(3), metadatas=[{"doc_id": 1}] * 2)
    with pytest.raises(Exception) as info:
        store.flush()
    assert not isinstance(info.value, VectorStoreError)  # Chroma's own complaint, passed on
    assert store.count() == 5  # the store goes on


def test_close_finishes_the_writes_it_was_sent(tmp_path):
    store = CollectionProcess(tmp_path / "vectors", "chunks")
    _upsert(store, 0, 300)
    store.close()
    again = CollectionProcess(tmp_path / "vectors", "chunks")
    try:
        assert again.count() == 300
    finally:
        again.close()


def test_a_store_killed_between_calls_is_replaced_by_a_fresh_child(store):
    _upsert(store, 0, 10)
    store.flush()
    first = store._proc.pid
    store._proc.kill()
    store._proc.join(5)
    assert store.count() == 10  # a new process on the same files
    assert store._proc.pid != first


def test_writes_lost_with_a_killed_store_are_reported_not_dropped(store):
    _upsert(store, 0, 10)
    _upsert(store, 10, 20_000)  # still being written when the kill comes
    store._proc.kill()
    store._proc.join(5)
    with pytest.raises(VectorStoreError) as info:
        store.count()
    assert "stopped unexpectedly" in str(info.value) and "not confirmed" in str(info.value)
    assert store.count() >= 10  # then a fresh child serves what was written


def test_reset_empties_the_collection(store):
    _upsert(store, 0, 10)
    store.reset()
    assert store.count() == 0
    _upsert(store, 0, 3)
    assert store.count() == 3


def test_the_store_process_refuses_network_connections(monkeypatch, tmp_path):
    import socket

    import app.core.vector_store as vs

    monkeypatch.setattr(socket.socket, "connect", socket.socket.connect)
    monkeypatch.setattr(socket.socket, "connect_ex", socket.socket.connect_ex)
    monkeypatch.setattr(vs, "_refused", [])
    vs._forbid_network()  # what the child does first
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(PermissionError):
        s.connect(("127.0.0.1", 9))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        assert s.connect_ex(("127.0.0.1", 9)) != 0
    assert len(vs._refused) == 2
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "local.sock"))
    server.listen(1)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(tmp_path / "local.sock"))  # local sockets still work
    server.close()


def test_the_child_reports_telemetry_off_and_no_refusals(store):
    child = store.describe()
    assert child["anonymized_telemetry"] is False
    assert child["refused_connections"] == []
    assert child["pid"] == store._proc.pid
