"""Folders kept in sync (app/core/sources.py): the real embedder, a real Chroma library in tmp,
real files. Each test changes a folder the way people do and checks what the next reconcile
makes of it: what was read again, what was only re-pointed, what stays when the folder is
only out of reach."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from app.core.cancel import CancelToken
from app.core.events import FileDone, FileStarted
from app.core.ingest import IngestOptions, Ingestor
from app.core.library import Library, chunk_id
from app.core.sources import (
    FileMoved,
    SourceChecked,
    SyncFinished,
    find_source,
    forget,
    reconcile,
    remember,
)

WORDS = "ledger harbour invoice permit quarry tariff vessel warden orchard budget".split()


def text(seed: int, n: int = 60) -> str:
    return f"Document {seed}. " + " ".join(WORDS[(seed * 7 + i) % 10] + str(i) for i in range(n))


@pytest.fixture
def lib(tmp_path):
    (tmp_path / "home").mkdir()
    library = Library(tmp_path / "home", vector_process=False)
    yield library
    library.close()


@pytest.fixture
def ingestor(lib, embedder):
    return Ingestor(lib, embedder, IngestOptions(chunk_tokens=48, chunk_overlap=8))


def make_tree(root: Path) -> dict[str, Path]:
    files = {
        "a": root / "a.txt",
        "b": root / "sub" / "b.md",
        "c": root / "sub" / "deeper" / "c.txt",
        "d": root / "other" / "d.txt",
    }
    for i, (_k, p) in enumerate(sorted(files.items())):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text(i))
    return files


def sync(lib, ingestor, **kw) -> dict:
    """Run a reconcile; returns {"events": [...], "by": {status: [paths]}, "read": [paths]}."""
    events = list(reconcile(lib, ingestor, CancelToken(), **kw))
    by: dict[str, list[str]] = {}
    for e in events:
        if isinstance(e, (FileDone, FileMoved)):
            by.setdefault(e.status, []).append(e.path)
    read = [e.path for e in events if isinstance(e, FileStarted)]
    return {"events": events, "by": by, "read": read}


def state(lib) -> dict:
    """What a user could tell apart: each document's path, version, status and chunks."""
    return {d.path: (d.hash, d.status, d.chunks) for d in lib.documents()}


def checked(result) -> dict[str, SourceChecked]:
    return {e.path: e for e in result["events"] if isinstance(e, SourceChecked)}


def test_add_edit_delete_rename_and_move_across_subfolders(lib, ingestor, tmp_path):
    root = tmp_path / "docs"
    files = make_tree(root)
    assert remember(lib, [root, files["a"]]) == [str(root.resolve())]  # a file is no source
    first = sync(lib, ingestor)
    assert sorted(first["by"]["added"]) == sorted(str(p) for p in files.values())
    assert lib.verify() == []

    # Nothing changed: nothing is opened (no FileStarted), every file unchanged.
    again = sync(lib, ingestor)
    assert again["read"] == [] and len(again["by"]["unchanged"]) == 4

    before = state(lib)
    # edit one, delete one, add one, rename one, move one to another subfolder
    files["a"].write_text(text(99))
    files["d"].unlink()
    new = root / "sub" / "new.txt"
    new.write_text(text(42))
    renamed = root / "sub" / "b-renamed.md"
    files["b"].rename(renamed)
    moved = root / "other" / "c.txt"
    files["c"].rename(moved)
    result = sync(lib, ingestor)
    by = result["by"]
    assert by["replaced"] == [str(files["a"])]
    assert by["added"] == [str(new)]
    assert by["removed"] == [str(files["d"])]
    assert sorted(by["moved"]) == sorted([str(renamed), str(moved)])
    # Re-pointed, not read: only the edited and the new file were opened.
    assert sorted(result["read"]) == sorted([str(files["a"]), str(new)])
    after = state(lib)
    assert after[str(renamed)] == before[str(files["b"])]
    assert after[str(moved)] == before[str(files["c"])]
    assert str(files["b"]) not in after and str(files["d"]) not in after
    assert lib.verify() == []
    # The moved document is found under its new name, and repair would find it there too.
    doc = lib.document(str(moved))
    meta = lib.collection.get(ids=[f"{doc.id}-{doc.hash[:16]}-0"], include=["metadatas"])
    assert meta["metadatas"][0]["path"] == str(moved)
    source = lib.sources()[0]
    assert source.state == "online" and source.files == 4 and source.last_sync


def test_a_touched_file_is_hashed_once_then_costs_nothing(lib, ingestor, tmp_path):
    root = tmp_path / "docs"
    files = make_tree(root)
    remember(lib, [root])
    sync(lib, ingestor)
    os.utime(files["a"], (time.time() + 50, time.time() + 50))
    first = sync(lib, ingestor)
    assert first["read"] == [] and str(files["a"]) in first["by"]["unchanged"]
    doc = lib.document(str(files["a"]))
    assert doc.mtime == files["a"].stat().st_mtime  # noted: not hashed again next time


def test_an_unplugged_drive_keeps_its_documents(lib, ingestor, tmp_path):
    """The mount point stays, empty, on another file system: offline, nothing removed."""
    root = tmp_path / "docs"
    make_tree(root)
    remember(lib, [root])
    sync(lib, ingestor)
    before = state(lib)
    lib.update_source(str(root), device=12345)  # as if it had been another disk
    for child in root.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    result = sync(lib, ingestor)
    assert checked(result)[str(root)].state == "offline"
    assert "removed" not in result["by"] and state(lib) == before
    assert lib.sources()[0].state == "offline"


def test_a_folder_on_a_drive_that_is_gone_is_offline_and_a_deleted_one_missing(
    lib, ingestor, tmp_path
):
    root = tmp_path / "docs"
    make_tree(root)
    remember(lib, [root])
    sync(lib, ingestor)
    before = state(lib)
    lib.update_source(str(root), device=12345)  # the folder was on a drive that is not here
    shutil.rmtree(root)
    result = sync(lib, ingestor)
    assert checked(result)[str(root)].state == "offline" and state(lib) == before

    lib.update_source(str(root), device=(tmp_path).stat().st_dev)  # same disk: deleted
    result = sync(lib, ingestor)
    assert checked(result)[str(root)].state == "missing"
    assert state(lib) == before  # kept until confirmed
    result = sync(lib, ingestor, prune=True)
    assert len(result["by"]["removed"]) == 4 and state(lib) == {}
    assert lib.sources() == [] and lib.verify() == []


def test_a_folder_emptied_at_once_is_confirmed_before_its_documents_go(lib, ingestor, tmp_path):
    root = tmp_path / "docs"
    files = make_tree(root)
    remember(lib, [root])
    sync(lib, ingestor)
    for p in files.values():
        p.unlink()
    result = sync(lib, ingestor)
    assert checked(result)[str(root)].state == "missing" and len(state(lib)) == 4
    (root / "back.txt").write_text(text(7))  # the folder is in use again: a normal sync
    result = sync(lib, ingestor)
    assert len(result["by"]["removed"]) == 4 and result["by"]["added"] == [str(root / "back.txt")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_permission_denied_keeps_what_cannot_be_read(lib, ingestor, tmp_path):
    root = tmp_path / "docs"
    files = make_tree(root)
    remember(lib, [root])
    sync(lib, ingestor)
    before = state(lib)
    locked = root / "sub"
    locked.chmod(0o000)
    try:
        result = sync(lib, ingestor)
        assert "removed" not in result["by"] and state(lib) == before
        assert "could not be read" in checked(result)[str(root)].message
        # A new file that cannot be opened fails with a reason; nothing else moves.
        secret = root / "secret.txt"
        secret.write_text(text(5))
        secret.chmod(0o000)
        result = sync(lib, ingestor)
        assert result["by"]["failed"] == [str(secret)]
    finally:
        locked.chmod(0o755)
    result = sync(lib, ingestor)
    assert "removed" not in result["by"] and str(files["b"]) in result["by"]["unchanged"]
    # The whole folder unreadable: offline, nothing removed.
    root.chmod(0o000)
    try:
        result = sync(lib, ingestor)
        assert checked(result)[str(root)].state == "offline"
        assert "removed" not in result["by"]
    finally:
        root.chmod(0o755)


def test_a_file_rewritten_while_it_is_read_ends_with_its_last_content(
    lib, ingestor, tmp_path, monkeypatch
):
    """The file changes between its hash and its last page: it is read again, and the
    library holds its final text, never a mix."""
    root = tmp_path / "docs"
    root.mkdir()
    target = root / "report.txt"
    target.write_text(text(1, 400))
    remember(lib, [root])
    import app.core.ingest as ingest_mod

    real = ingest_mod.chunk_batches
    calls = []

    def rewriting(pages, chunker):
        for batch in real(pages, chunker):
            if not calls:
                calls.append(1)
                target.write_text("Final version. " + text(2, 300))
            yield batch

    monkeypatch.setattr(ingest_mod, "chunk_batches", rewriting)
    result = sync(lib, ingestor)
    assert result["by"]["added"] == [str(target)]
    doc = lib.document(str(target))
    st = target.stat()
    assert (doc.size, doc.mtime) == (st.st_size, st.st_mtime)
    first = chunk_id(doc.id, doc.hash, 0)
    assert lib.hits_for_ids([first])[first].text.startswith("Final version.")
    assert sync(lib, ingestor)["read"] == []  # settled: the next sync has nothing to read


def test_sources_remove_forgets_the_folder_and_its_documents_only(lib, ingestor, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    make_tree(one)
    (two).mkdir()
    (two / "x.txt").write_text(text(3))
    remember(lib, [one, two])
    sync(lib, ingestor)
    source = find_source(lib, str(one) + "/")
    assert source is not None
    removed = list(forget(lib, source.path))
    assert len(removed) == 4
    assert [s.path for s in lib.sources()] == [str(two)]
    assert list(state(lib)) == [str(two / "x.txt")] and lib.verify() == []


def test_an_unchanged_sync_never_reads_or_loads_the_model(lib, ingestor, tmp_path):
    """With nothing to read, a sync does not need the ingestor (nor its model, slow to load)."""
    root = tmp_path / "docs"
    make_tree(root)
    remember(lib, [root])
    sync(lib, ingestor)

    class NoModel:
        options = ingestor.options

        def run(self, paths, cancel):
            raise AssertionError(f"asked to read {paths}")

    result = sync(lib, NoModel())
    assert len(result["by"]["unchanged"]) == 4
    assert isinstance(result["events"][-1], SyncFinished)


def test_a_folder_the_system_refuses_to_list_keeps_its_documents(
    lib, ingestor, tmp_path, monkeypatch
):
    """Permission denied as any user meets it (root included): os.scandir refuses the folder."""
    root = tmp_path / "docs"
    files = make_tree(root)
    remember(lib, [root])
    sync(lib, ingestor)
    before = state(lib)
    import app.core.sources as sources_mod

    real = os.scandir
    refused = {str(root / "sub")}

    def scandir(path):
        if os.fspath(path) in refused:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(sources_mod.os, "scandir", scandir)
    result = sync(lib, ingestor)
    assert "removed" not in result["by"] and state(lib) == before
    assert "could not be read" in checked(result)[str(root)].message
    refused.add(str(root))
    result = sync(lib, ingestor)
    assert checked(result)[str(root)].state == "offline" and state(lib) == before
    refused.clear()
    result = sync(lib, ingestor)
    assert str(files["c"]) in result["by"]["unchanged"] and "removed" not in result["by"]


# --------------------------------------------------------------------------- unmount, kill -9
def _can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
        capture_output=True,
    )
    return done.returncode == 0


UNMOUNT_RUN = textwrap.dedent(
    """
    import json, sys
    from app.cli import main
    if __name__ == "__main__":
        raise SystemExit(main(sys.argv[1:]))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not _can_unshare(), reason="needs unprivileged mount namespaces")
def test_a_tmpfs_unmounted_is_offline_and_its_documents_kept(tmp_path):
    """A real file system under the folder, then taken away: the folder is its empty mount
    point again (another device), as an unplugged drive leaves it."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "run.py"
    script.write_text(UNMOUNT_RUN)
    py = f"{sys.executable} {script}"
    shell = (
        f"set -e; mount -t tmpfs -o size=4m tmpfs {mnt}; mkdir {mnt}/docs; "
        f"echo '{text(1)}' > {mnt}/docs/a.txt; echo '{text(2)}' > {mnt}/b.txt; "
        f"{py} ingest {mnt} --json > {tmp_path}/ingest.json; "
        f"umount {mnt}; "
        f"{py} sync --json > {tmp_path}/sync.json; echo $? > {tmp_path}/rc; "
        f"{py} list --json > {tmp_path}/list.json"
    )
    env = {
        **os.environ,
        "CONFIDANT_HOME": str(home),
        "CONFIDANT_MACHINE_SETTINGS": str(tmp_path / "none.toml"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    subprocess.run(["unshare", "-rm", "sh", "-c", shell], check=True, timeout=600, env=env)
    import json

    ingested = json.loads((tmp_path / "ingest.json").read_text())
    assert sorted(f["status"] for f in ingested["files"]) == ["added", "added"]
    synced = json.loads((tmp_path / "sync.json").read_text())
    assert int((tmp_path / "rc").read_text()) == 0  # offline is a passing state
    assert [(s["path"], s["state"]) for s in synced["sources"]] == [(str(mnt), "offline")]
    assert not [f for f in synced["files"] if f["status"] == "removed"]
    listed = json.loads((tmp_path / "list.json").read_text())
    assert sorted(Path(d["path"]).name for d in listed["documents"]) == ["a.txt", "b.txt"]


# --------------------------------------------------------------------------- kill -9 mid-sync
SYNC_CRASHES = [
    {"target": "app.core.library:Library.move_document", "when": "after", "n": 1},
    {"target": "app.core.library:Library.commit_version", "when": "after", "n": 1},
    {"target": "app.core.library:Library.remove", "when": "before", "n": 1},
    {"target": "app.core.library:Library.update_source", "when": "after", "n": 2},
]


@pytest.mark.slow
def test_a_sync_killed_at_any_point_ends_like_a_clean_one(tmp_path):
    """Real `confidant sync` runs SIGKILLed at chosen points and at random moments: the next
    sync leaves the documents a clean sync leaves, and stores that agree."""
    import json
    import random

    from tests.integration.test_crash import (
        Server,
        modified_files,
        new_home,
        original_files,
        write_docs,
    )

    server = Server(tmp_path)
    try:
        docs = tmp_path / "docs"
        write_docs(docs, original_files())
        base = new_home(tmp_path / "base")
        assert server.run(base, "ingest", str(docs))["rc"] == 0
        # edit three, rename one, move one into a subfolder, delete one, add one
        write_docs(docs, modified_files())
        (docs / "notes 0.txt").rename(docs / "notes zero.txt")
        (docs / "archive").mkdir()
        (docs / "report 4.pdf").rename(docs / "archive" / "report 4.pdf")
        (docs / "report 0.pdf").unlink()
        (docs / "archive" / "new.txt").write_text(text(77, 120))

        def documents(home):
            snap = server.snapshot(home)
            assert snap["verify"] == [] and sorted(snap["vector_ids"]) == sorted(snap["chunk_ids"])
            return sorted(
                (d["path"], d["hash"], d["status"], d["chunks"], d["pages"], d["pending"])
                for d in snap["documents"]
            )

        clean = new_home(tmp_path / "clean", like=base)
        done = server.run(clean, "sync", "--json")
        assert done["rc"] == 0, done["stderr"]
        statuses = sorted(f["status"] for f in json.loads(done["stdout"])["files"])
        assert statuses.count("moved") == 2 and statuses.count("removed") == 1
        assert statuses.count("replaced") == 3 and statuses.count("added") == 1
        want = documents(clean)
        rng = random.Random(7)
        plans = [{"crash_at": c} for c in SYNC_CRASHES] + [
            {"kill_after": rng.uniform(0.5, 1.0) * done["seconds"]} for _ in range(2)
        ]
        for n, plan in enumerate(plans):
            home = new_home(tmp_path / f"killed-{n}", like=base)
            crashed = server.run(home, "sync", **plan)
            assert crashed["rc"] != 0 or plan.get("kill_after"), (plan, crashed["stderr"])
            again = server.run(home, "sync")
            assert again["rc"] == 0, (plan, again["stderr"])
            assert documents(home) == want, plan
    finally:
        server.close()
