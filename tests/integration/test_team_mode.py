"""Team mode end to end: a real Chroma server and a real OpenAI-compatible model server on
127.0.0.1, and two data directories as two workstations. One adds documents, the other
searches and asks; each server is killed mid-work and started again."""

from __future__ import annotations

import logging
import threading

import pytest

from app.config import Settings
from app.core.cancel import CancelToken
from app.core.events import AnswerDone, AnswerFailed, FileDone, TextPiece
from app.core.team.http import ServerUnavailable
from app.services import Services
from tests.integration.team_servers import chroma_server, missing_extras, model_server
from tests.pdfmaker import pdf_bytes

pytestmark = pytest.mark.slow

if why := missing_extras():
    pytest.skip(why, allow_module_level=True)

TOKEN = "lib-7d1e-secret-token"
KEY = "llm-51aa-secret-key"
PAGES = {
    "contract.pdf": [
        "Service agreement. The notice period for contract ZX-4471-PELICAN is thirty days.",
        "Either party may end the agreement in writing. Invoices are due within 45 days.",
    ],
    "handbook.pdf": [
        "Fire safety. When the alarm sounds, gather at the car park behind building C.",
        "Holidays. Employees receive twenty five days of paid leave each year.",
    ],
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("team-servers")
    chroma, library_url = chroma_server(root / "chroma", root / "chroma.log")
    model, llm_url = model_server(root / "model.log")
    chroma.start()
    model.start()
    yield {"chroma": chroma, "model": model, "library": library_url, "llm": llm_url}
    chroma.kill()
    model.kill()


@pytest.fixture
def team(servers, tmp_path, embedder):
    """Two workstations (data dirs A and B) on the servers, with a shared folder of PDFs."""
    share = tmp_path / "share"
    share.mkdir()
    for name, pages in PAGES.items():
        (share / name).write_bytes(pdf_bytes(pages))
    settings = Settings(
        library_server=servers["library"],
        library_token=TOKEN,
        llm_server=servers["llm"],
        llm_api_key=KEY,
        max_answer_tokens=64,
        temperature=0.0,
    )
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    b.mkdir()
    made = [
        Services(a, settings, embedder_factory=lambda path: embedder),
        Services(b, settings, embedder_factory=lambda path: embedder),
    ]
    yield made[0], made[1], share
    for s in made:  # each test starts from an empty team library
        try:
            for d in s.library.documents():
                s.library.remove(d.path)
        except ServerUnavailable:
            pass
        s.close()


def ingest(services: Services, *paths) -> dict[str, str]:
    done = {}
    for event in services.ingestor().run([str(p) for p in paths], CancelToken()):
        if isinstance(event, FileDone):
            done[event.path] = event.status
    return done


def ask(services: Services, question: str, on_piece=None) -> list:
    events = []
    for event in services.chat().ask(question, CancelToken()):
        events.append(event)
        if isinstance(event, TextPiece) and on_piece is not None:
            on_piece()
            on_piece = None
    return events


def test_added_on_one_workstation_searched_and_asked_on_the_other(team, caplog):
    caplog.set_level(logging.DEBUG)
    a, b, share = team
    assert set(ingest(a, share).values()) == {"added"}
    docs = {d.path: d for d in b.library.documents()}
    assert set(docs) == {str(share / n) for n in PAGES}
    assert all(d.status == "ready" and d.chunks >= 2 for d in docs.values())
    # keyword half: a code no embedding knows is found by the replica's BM25 index
    keyword = b.library.keyword_search("ZX-4471-PELICAN", 3)
    assert keyword and b.library.hits_for_ids(keyword[:1])[keyword[0]].page == 1
    hits = b.retriever().search("where do we gather when the fire alarm goes off", 3)
    assert (hits[0].path, hits[0].page) == (str(share / "handbook.pdf"), 1)
    events = ask(b, "What is the notice period for contract ZX-4471-PELICAN?")
    done = events[-1]
    assert isinstance(done, AnswerDone), events[-1]
    assert done.answer and done.stats.model == "SmolLM2-135M-Instruct.Q4_1"
    assert done.sources[0].hit.path == str(share / "contract.pdf")
    # team mode never opens or creates the local library
    for home in (a.home, b.home):
        assert not (home / "library.sqlite3").exists() and not (home / "library").exists()
    assert TOKEN not in caplog.text and KEY not in caplog.text
    assert TOKEN not in repr(a.settings) and KEY not in repr(a.settings)


def test_same_file_from_two_workstations_is_one_document_and_removal_is_seen_by_all(team):
    a, b, share = team
    results = {}
    threads = [
        threading.Thread(target=lambda s=s: results.__setitem__(s, ingest(s, share)))
        for s in (a, b)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(a.library.documents()) == len(PAGES) == len(b.library.documents())
    assert a.library.verify() == []
    ingest(b, share)  # again: nothing changed, nothing written
    assert {d.chunks for d in a.library.documents()} == {d.chunks for d in b.library.documents()}
    assert b.retriever().search("ZX-4471-PELICAN notice period", 1)
    assert a.library.remove(str(share / "contract.pdf"))
    found = {h.path for h in b.retriever().search("ZX-4471-PELICAN notice period", 5)}
    assert str(share / "contract.pdf") not in found
    assert [d.path for d in b.library.documents()] == [str(share / "handbook.pdf")]


def test_two_versions_written_at_once_leave_one_whole_version(team, tmp_path):
    """Two workstations mount the share at different places (library_path_map) and add two
    different versions of the same file at the same moment."""
    a, b, _share = team
    mounts = {}
    for s, text in ((a, "Version one says the deposit is 100 euros."), (b, "Version two.")):
        mount = tmp_path / f"mount-{s.home.name}"
        mount.mkdir()
        (mount / "terms.pdf").write_bytes(pdf_bytes([text * 30, text * 30, text]))
        s.apply_settings(s.settings.with_changes(library_path_map=f"{mount}/=//files/docs/"))
        mounts[s] = mount
    threads = [threading.Thread(target=ingest, args=(s, mounts[s])) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    docs_a, docs_b = a.library.documents(), b.library.documents()
    assert len(docs_a) == len(docs_b) == 1
    assert docs_a[0].path == str(mounts[a] / "terms.pdf")  # each sees its own mount
    assert docs_b[0].path == str(mounts[b] / "terms.pdf")
    assert docs_a[0].hash == docs_b[0].hash and a.library.verify() == []
    hits = b.retriever().search("deposit version", 10)
    assert len({h.text.split(" says")[0][:11] for h in hits}) == 1  # one version's text only


def test_library_server_killed_mid_work_then_back(team, servers):
    a, b, share = team
    ingest(a, share)
    servers["chroma"].kill()
    try:
        with pytest.raises(ServerUnavailable, match="cannot be reached"):
            b.retriever().search("notice period", 3)
        events = ask(b, "What is the notice period?")
        assert isinstance(events[-1], AnswerFailed)
        assert "team library" in events[-1].message and "cannot be reached" in events[-1].message
        assert TOKEN not in events[-1].message
    finally:
        servers["chroma"].start()  # same data, same port
    hits = b.retriever().search("notice period ZX-4471-PELICAN", 3)
    assert hits and hits[0].path == str(share / "contract.pdf")


def test_model_server_killed_mid_answer_then_the_next_question_works(team, servers):
    a, b, share = team
    ingest(a, share)
    try:
        events = ask(
            b,
            "Explain the notice period of the service agreement in detail.",
            on_piece=servers["model"].kill,
        )
        failed = events[-1]
        assert isinstance(failed, AnswerFailed), failed
        assert "stopped answering" in failed.message and KEY not in failed.message
    finally:
        servers["model"].start()
    assert isinstance(ask(b, "What is the notice period?")[-1], AnswerDone)


def test_servers_down_at_start(tmp_path, embedder):
    """Nothing connects while the services are built (the window opens); the first use says
    which server cannot be reached."""
    from tests.integration.team_servers import free_port

    port = free_port()
    local = tmp_path / "library.sqlite3"  # a local library, damaged: team mode leaves it be
    local.write_bytes(b"not a database")
    s = Services(
        tmp_path,
        Settings(
            library_server=f"http://127.0.0.1:{port}", llm_server=f"http://127.0.0.1:{port}/v1"
        ),
        embedder_factory=lambda path: embedder,
    )
    assert s.health().ok  # the local library's damage is not this mode's business
    with pytest.raises(ServerUnavailable, match=f"127.0.0.1:{port} cannot be reached"):
        s.library.documents()
    events = list(s.chat().ask("anything", CancelToken()))
    assert isinstance(events[-1], AnswerFailed) and "cannot be reached" in events[-1].message
    s.close()
    assert local.read_bytes() == b"not a database" and not (tmp_path / "library").exists()


def test_headless_ingest_on_a_server_and_a_move_seen_by_a_workstation(
    team, servers, tmp_path, monkeypatch, capsys
):
    """`confidant ingest` in a server account whose settings.toml names the library server;
    a workstation sees the documents, and a file moved on the share is cited at its new place."""
    import json

    from app.cli import main

    _a, b, share = team
    server_home = tmp_path / "ingest-account"
    server_home.mkdir()
    (server_home / "settings.toml").write_text(
        f'library_server = "{servers["library"]}"\nlibrary_token = "{TOKEN}"\n', encoding="utf-8"
    )
    monkeypatch.setenv("CONFIDANT_HOME", str(server_home))
    monkeypatch.setenv("CONFIDANT_MACHINE_SETTINGS", str(tmp_path / "none.toml"))
    code = main(["ingest", str(share), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert {f["status"] for f in json.loads(out)["files"]} == {"added"}
    assert TOKEN not in out + err
    assert not (server_home / "library.sqlite3").exists()
    assert {d.path for d in b.library.documents()} == {str(share / n) for n in PAGES}
    moved = share / "archive"
    moved.mkdir()
    (share / "contract.pdf").rename(moved / "contract.pdf")
    doc = b.library.document(str(share / "contract.pdf"))
    st = (moved / "contract.pdf").stat()
    b.library.move_document(doc.id, str(moved / "contract.pdf"), st.st_size, st.st_mtime)
    hits = b.retriever().search("ZX-4471-PELICAN notice period", 1)
    assert hits[0].path == str(moved / "contract.pdf")
    assert b.library.document(str(moved / "contract.pdf")).id == doc.id


def test_a_version_left_by_a_writer_that_died_is_swept_and_a_live_writers_is_not(team):
    """Workstation A dies mid-write twice (a new version of a live document, and a document's
    first version); B is writing one right now. B's next ingest start sweeps A's leftovers,
    which are older than the safe age, and leaves its own in-progress version whole."""
    import time

    from app.core.library import ChunkRecord

    a, b, share = team
    ingest(a, share)
    lib_a, lib_b = a.library, b.library
    contract = lib_a.document(str(share / "contract.pdf"))
    chunks = [ChunkRecord(0, 1, 0, 9, "half done"), ChunkRecord(1, 1, 9, 20, "never finished")]
    vectors = b.embedder.embed([c.text for c in chunks])
    lib_a.clock = lambda: time.time() - 2 * lib_b.stale_after_s  # its marks are old by now
    lib_a.begin_version(contract.path, "dead-replacement", 1, 1.0)
    lib_a.add_chunks(contract.id, "dead-replacement", chunks, vectors)
    first = lib_a.begin_version(str(share / "new.pdf"), "dead-first", 1, 1.0)
    lib_a.add_chunks(first, "dead-first", chunks, vectors)
    writing = lib_b.begin_version(str(share / "live.pdf"), "live-version", 1, 1.0)
    lib_b.add_chunks(writing, "live-version", chunks, vectors)

    assert ingest(b, share / "contract.pdf") == {str(share / "contract.pdf"): "unchanged"}
    assert lib_b._version_count(contract.id, "dead-replacement") == 0
    assert lib_b._version_count(first, "dead-first") == 0
    assert lib_b._version_count(writing, "live-version") == 2  # another writer's, untouched
    docs = {d.path: d for d in lib_b.documents()}
    kept = docs[str(share / "contract.pdf")]
    assert (kept.status, kept.hash, kept.pending) == ("ready", contract.hash, None)
    assert docs[str(share / "new.pdf")].status == "interrupted"
    assert docs[str(share / "live.pdf")].pending == "live-version"
    lib_b.commit_version(writing, "live-version", 2, 1)  # the live writer finishes
    assert lib_b.verify() == [] and lib_b.document(str(share / "live.pdf")).status == "ready"
    hits = b.retriever().search("ZX-4471-PELICAN notice period", 3)
    assert hits[0].path == str(share / "contract.pdf") and "half done" not in hits[0].text
    assert lib_a.sweep() == 0  # nothing is left to sweep


def test_a_closed_team_library_lets_go_of_its_connections(servers, tmp_path, embedder):
    """Closing the services closes the connection they opened to the library server (it used
    to stay open, half-closed, for the rest of the process). Connections that were there
    before are another test's."""
    import gc

    import psutil

    port = int(servers["library"].rsplit(":", 1)[1])

    def to_server():
        return {
            (c.fd, c.laddr)
            for c in psutil.Process().net_connections(kind="inet")
            if c.raddr and c.raddr.port == port
        }

    before = to_server()
    s = Services(
        tmp_path,
        Settings(library_server=servers["library"], library_token=TOKEN),
        embedder_factory=lambda path: embedder,
    )
    s.library.documents()
    s.close()
    gc.collect()
    assert to_server() <= before
