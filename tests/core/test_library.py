"""The store's consistency rules, with a real Chroma directory and real SQLite in tmp."""

import sqlite3
import threading

import numpy as np
import pytest

from app.core.library import ChunkRecord, EmbedderMismatch, Library, fts_terms
from app.core.row_writer import RowWriter


def vecs(n, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def records(texts):
    return [ChunkRecord(i, i + 1, 0, len(t), t) for i, t in enumerate(texts)]


def ingest(lib, path, version, texts, seed=0):
    doc = lib.begin_version(path, version, 10, 1.0)
    lib.add_chunks(doc, version, records(texts), vecs(len(texts), seed))
    lib.commit_version(doc, version, len(texts), len(texts))
    return doc


@pytest.fixture
def lib(tmp_path):
    library = Library(tmp_path)
    yield library
    library.close()


def test_a_committed_version_is_searchable_both_ways(lib):
    ingest(lib, "/a.txt", "v1", ["zebra crossing rules", "tax forms are due in april"])
    assert lib.verify() == []
    assert lib.chunk_count() == 2
    ids = lib.keyword_search("When are the tax forms due?", 5)
    assert len(ids) == 1 and lib.hits_for_ids(ids)[ids[0]].text == "tax forms are due in april"
    assert len(lib.vector_search(vecs(1)[0], 5)) == 2


def test_vector_search_returns_what_there_is(lib):
    assert lib.vector_search(vecs(1)[0], 40) == []  # an empty library
    ingest(lib, "/a.txt", "v1", ["one", "two", "three"])
    hits = lib.vector_search(vecs(1)[0], 40)
    assert len(hits) == 3 and hits == sorted(hits, key=lambda h: h[1], reverse=True)
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)  # the query is the first chunk's vector


def test_replacing_a_version_drops_the_old_chunks_everywhere(lib):
    ingest(lib, "/a.txt", "v1", ["old text one", "old text two", "old text three"])
    ingest(lib, "/a.txt", "v2", ["new text"], seed=1)
    assert lib.verify() == []
    assert lib.chunk_count() == 1
    assert lib.keyword_search("old", 5) == []
    assert lib.collection.count() == 1
    assert lib.document("/a.txt").hash == "v2"


def test_a_failed_new_version_keeps_the_old_one_live(lib):
    ingest(lib, "/a.txt", "v1", ["the original content"])
    doc = lib.begin_version("/a.txt", "v2", 10, 2.0)
    lib.add_chunks(doc, "v2", records(["half written"]), vecs(1, 3))
    assert lib.keyword_search("half", 5) == []  # pending chunks are never visible
    lib.abandon_version(doc, "v2", "failed", "broken file")
    row = lib.document("/a.txt")
    assert (row.status, row.hash, row.error) == ("ready", "v1", "broken file")
    assert lib.keyword_search("original", 5) and lib.verify() == []


def test_a_keyword_write_that_fails_keeps_its_version_from_going_live(lib):
    ingest(lib, "/a.txt", "v1", ["the original content"])
    doc = lib.begin_version("/a.txt", "v2", 10, 2.0)
    unstorable = [ChunkRecord(0, {"not": "a page number"}, 0, 4, "half")]
    lib.add_chunks(doc, "v2", unstorable, vecs(1, 3))  # handed to the row writer: no error yet
    with pytest.raises(sqlite3.Error):
        lib.commit_version(doc, "v2", 1, 1)
    assert lib.document("/a.txt").hash == "v1"
    lib.abandon_version(doc, "v2", "failed", "could not be stored")
    assert lib.keyword_search("original", 5) and lib.verify() == []


def test_reads_from_another_thread_never_make_a_write_fail(tmp_path):
    """A read still open on the library's connection while the row writer's connection
    committed made the next write fail with 'database is locked' (seen while ingesting)."""
    lib = Library(tmp_path, vector_process=False)
    stop, errors = threading.Event(), []

    def reads():
        try:
            while not stop.is_set():
                lib.documents(), lib.chunk_count(), lib.keyword_search("text", 5)
        except Exception as exc:
            errors.append(exc)

    reader = threading.Thread(target=reads)
    reader.start()
    try:
        for n in range(40):
            doc = lib.begin_version(f"/f{n}", "v1", 1, 1.0)
            for part in range(2):
                texts = [f"text {n} {part} {i}" for i in range(20)]
                batch = [ChunkRecord(part * 20 + i, 1, 0, 4, t) for i, t in enumerate(texts)]
                lib.add_chunks(doc, "v1", batch, vecs(20, n))
            lib.commit_version(doc, "v1", 40, 1)
    finally:
        stop.set()
        reader.join()
    assert errors == []
    assert lib.chunk_count() == 40 * 40 and lib.verify() == []
    lib.close()


def test_the_row_writer_writes_every_batch_before_flush_returns(tmp_path):
    db = sqlite3.connect(tmp_path / "t.sqlite3")
    db.execute("CREATE TABLE t (n INTEGER)")
    db.commit()
    writer = RowWriter(tmp_path / "t.sqlite3", "INSERT INTO t VALUES (?)", depth=1)
    for batch in range(20):
        writer.put([(batch * 100 + n,) for n in range(100)])
    writer.flush()
    assert db.execute("SELECT count(*), sum(n) FROM t").fetchone() == (2000, sum(range(2000)))
    writer.close()


def test_a_row_writer_that_cannot_open_its_database_says_so_and_never_hangs(tmp_path):
    writer = RowWriter(tmp_path / "missing" / "t.sqlite3", "INSERT INTO t VALUES (?)")
    with pytest.raises(sqlite3.OperationalError):  # from a later put or the flush
        writer.put([(1,)])
        writer.put([(2,)])
        writer.flush()
    writer.flush()  # reported once; the thread still takes and drops batches
    writer.close()


def _held_write_lock(path):
    """Another connection holding the database's write lock (as a long write would)."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    return other


def test_a_row_writer_tries_a_busy_batch_again_until_the_lock_frees(tmp_path, caplog):
    path = tmp_path / "t.sqlite3"
    other = _held_write_lock(path)
    writer = RowWriter(path, "INSERT INTO t VALUES (?)", busy_timeout=0.05, retry_pause=0.1)
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()  # freed after ~2 tries
    writer.put([(n,) for n in range(10)])
    writer.flush()
    assert other.execute("SELECT count(*) FROM t").fetchone() == (10,)
    assert "trying the batch again" in caplog.text
    writer.close()


def test_a_row_writer_gives_up_with_the_error_if_the_lock_never_frees(tmp_path):
    path = tmp_path / "t.sqlite3"
    other = _held_write_lock(path)
    writer = RowWriter(path, "INSERT INTO t VALUES (?)", busy_timeout=0.05, retry_pause=0.01)
    writer.put([(1,)])
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        writer.flush()
    other.execute("COMMIT")
    writer.put([(2,)])  # and it goes on once the database is free
    writer.flush()
    assert other.execute("SELECT n FROM t").fetchall() == [(2,)]
    writer.close()


def test_recover_undoes_a_version_interrupted_by_a_crash(tmp_path):
    lib = Library(tmp_path)
    ingest(lib, "/done.txt", "d1", ["finished document"])
    doc = lib.begin_version("/half.txt", "h1", 10, 1.0)
    lib.add_chunks(doc, "h1", records(["first batch"]), vecs(1, 5))
    lib.close()  # the process "dies" here: no commit
    again = Library(tmp_path)
    assert again.verify() != []  # the leftovers are visible to verify()
    assert again.recover() == ["/half.txt"]
    assert again.verify() == []
    assert again.chunk_count() == 1
    assert again.collection.count() == 1
    again.close()


def test_remove_deletes_everywhere_and_an_interrupted_removal_is_finished(tmp_path):
    lib = Library(tmp_path)
    ingest(lib, "/a.txt", "v1", ["alpha"])
    ingest(lib, "/b.txt", "v1", ["beta"], seed=2)
    assert lib.remove("/a.txt") and not lib.remove("/missing.txt")
    assert [d.path for d in lib.documents()] == ["/b.txt"]
    lib._db.execute("UPDATE documents SET status='removing' WHERE path='/b.txt'")  # crash midway
    lib.close()
    again = Library(tmp_path)
    again.recover()
    assert again.documents() == [] and again.collection.count() == 0 and again.verify() == []
    again.close()


def test_vectors_of_two_models_are_never_mixed(lib):
    lib.check_embedder("model-a")
    ingest(lib, "/a.txt", "v1", ["x"])
    with pytest.raises(EmbedderMismatch, match="model-a"):
        lib.check_embedder("model-b")
    lib.reset()
    lib.check_embedder("model-b")  # after a reset the library takes the new model
    assert lib.verify() == [] and lib.chunk_count() == 0


def test_keyword_search_survives_fts_syntax_characters(lib):
    assert fts_terms('"Tax" AND (forms) NEAR* tax') == ["tax", "forms", "near"]
    assert fts_terms("   ?!  ") == []
    ingest(lib, "/tax.txt", "v1", ["Tax forms are due in April."])
    hits = lib.keyword_search_scored('"Tax" AND (forms) NEAR* tax', 5)  # FTS5 syntax, as words
    assert len(hits) == 1 and hits[0][1] > 0
    assert lib.keyword_search_scored("   ?!  ", 5) == []


def test_words_in_most_chunks_do_not_flood_the_keyword_search(lib, monkeypatch):
    import app.core.library as library

    monkeypatch.setattr(library, "COMMON_TERM_MIN", 0)  # as in a library of 100k chunks
    texts = [f"common filler sentence number {i}" for i in range(20)]
    texts[7] = "common words and a zebra"
    texts[12] = "common words and a quokka"
    ingest(lib, "/a.txt", "v1", texts)
    ids = lib.keyword_search("common zebra quokka", 10)
    got = sorted(lib.hits_for_ids(ids)[i].text for i in ids)
    assert got == ["common words and a quokka", "common words and a zebra"]
    # a question made only of common words is left to the vectors: scoring every posting of
    # a word in a quarter of 100k chunks took 27 ms
    assert lib.keyword_search("common filler", 5) == []


def test_a_small_library_keeps_every_word_of_the_question(lib):
    # "common" is in half the chunks, but 10 postings cost nothing: it still counts.
    texts = [f"{'common' if i % 2 else 'plain'} filler sentence number {i}" for i in range(20)]
    texts[2] = "zebra alone here"
    texts[4] = "common zebra alone"
    ingest(lib, "/a.txt", "v1", texts)
    ids = lib.keyword_search("common zebra alone", 3)
    assert lib.hits_for_ids(ids)[ids[0]].text == "common zebra alone"


@pytest.mark.parametrize("vector_process", [True, False], ids=["own-process", "in-process"])
def test_a_batch_larger_than_a_write_slice_keeps_each_vector_with_its_chunk(
    tmp_path, vector_process
):
    from app.core.vector_store import WRITE_SLICE

    lib = Library(tmp_path, vector_process=vector_process)
    n = WRITE_SLICE * 2 + 22
    texts = [f"passage number {i} word{i}" for i in range(n)]
    ingest(lib, "/big.txt", "v1", texts, seed=5)
    assert lib.chunk_count() == n and lib.collection.count() == n and lib.verify() == []
    v = vecs(n, 5)
    for i in (0, WRITE_SLICE, n - 1):  # first, second slice, last
        best = lib.vector_search(v[i], 1)[0][0]
        assert lib.hits_for_ids([best])[best].text == texts[i]
    lib.close()
