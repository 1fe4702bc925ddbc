"""Crashes lose nothing: SIGKILL real `confidant ingest` runs at random moments, and at chosen
points of replacing and removing, then check that the next run reports what was interrupted,
finishes it, and leaves exactly the library an uninterrupted run makes (same documents, same
chunk ids in both stores, no duplicates, no orphans: Library.verify() == []).

The runs are forked from tests/integration/crash_worker.py, which imports torch,
sentence-transformers and chromadb once; every run is still a fresh process that loads the
embedder, opens Chroma and takes the instance lock itself.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.crash_worker import message_text
from tests.pdfmaker import pdf_bytes

pytestmark = pytest.mark.slow

SEED = 5
KILLS = 20
WORKER = Path(__file__).with_name("crash_worker.py")
ROOT = WORKER.parents[2]
SETTINGS = "chunk_tokens = 48\nchunk_overlap = 8\n"  # small passages: quick to embed on a CPU


def _words(seed: int, n: int) -> str:
    rng = random.Random(seed)
    vocab = "ledger harbour invoice permit quarry tariff vessel warden orchard budget".split()
    return " ".join(rng.choice(vocab) + str(rng.randrange(100)) for _ in range(n))


def original_files() -> dict[str, bytes]:
    files = {}
    for i in range(5):
        pages = [f"Report {i}, page {p}. " + _words(i * 10 + p, 40) for p in range(2)]
        files[f"report {i}.pdf"] = pdf_bytes(pages)
    for i in range(3):
        files[f"notes {i}.txt"] = (f"Notes {i}. " + _words(100 + i, 80)).encode()
    return files


def modified_files() -> dict[str, bytes]:
    files = original_files()
    files["report 1.pdf"] = pdf_bytes(["Report 1 revised. " + _words(901, 90)])
    files["report 3.pdf"] = pdf_bytes(["Report 3 revised. " + _words(903, 40)] * 3)
    files["notes 2.txt"] = ("Notes 2 revised. " + _words(902, 150)).encode()
    return files


def write_docs(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


class Server:
    """The fork server, driven over its stdin/stdout."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.n = 0
        env = {**os.environ, "CONFIDANT_MACHINE_SETTINGS": str(tmp / "none.toml")}
        env.pop("CONFIDANT_HOME", None)
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def run(self, home: Path, *argv: str, kill_after=None, crash_at=None):
        self.n += 1
        out = self.tmp / f"run{self.n}"
        cmd = {
            "argv": list(argv),
            "home": str(home),
            "out": str(out),
            "kill_after": kill_after,
            "crash_at": crash_at,
        }
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the crash worker died"
        reply = json.loads(line)
        reply["stdout"] = Path(f"{out}.out").read_text()
        reply["stderr"] = Path(f"{out}.err").read_text()
        return reply

    def snapshot(self, home: Path) -> dict:
        reply = self.run(home, "__snapshot__")
        assert reply["rc"] == 0, reply["stderr"]
        return json.loads(reply["stdout"])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def new_home(path: Path, like: Path | None = None) -> Path:
    if like is not None:
        shutil.copytree(like, path)
        (path / "confidant.lock.json").unlink(missing_ok=True)
    else:
        path.mkdir(parents=True)
        (path / "settings.toml").write_text(SETTINGS)
    return path


def pending_paths(home: Path) -> set[str]:
    """What a killed run left half-done (read straight from SQLite, the process is dead)."""
    db = home / "library.sqlite3"
    if not db.exists():
        return set()
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT path FROM documents WHERE pending IS NOT NULL").fetchall()
    except sqlite3.OperationalError:  # killed before the schema was written
        rows = []
    con.close()
    return {r[0] for r in rows}


def resumed_paths(stderr: str) -> set[str]:
    prefix = "resuming '"
    return {
        line[len(prefix) :].split("' (an earlier run", 1)[0]
        for line in stderr.splitlines()
        if line.startswith(prefix)
    }


def assert_same_library(got: dict, want: dict) -> None:
    assert got["verify"] == []
    assert len(got["chunk_ids"]) == len(set(got["chunk_ids"]))
    assert got["chunk_ids"] == want["chunk_ids"]
    assert got["vector_ids"] == want["vector_ids"] == sorted(want["chunk_ids"])
    assert got["documents"] == want["documents"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The fork server, the docs folder, and the two reference libraries (uninterrupted runs)."""
    tmp = tmp_path_factory.mktemp("crash")
    server = Server(tmp)
    docs = tmp / "docs"
    write_docs(docs, original_files())
    ref_a = new_home(tmp / "ref-a")
    first = server.run(ref_a, "ingest", str(docs))
    assert first["rc"] == 0, first["stderr"]
    write_docs(docs, modified_files())
    ref_b = new_home(tmp / "ref-b", like=ref_a)
    second = server.run(ref_b, "ingest", str(docs))
    assert second["rc"] == 0, second["stderr"]
    assert "3 replaced" in second["stderr"] and "5 unchanged" in second["stderr"]
    lab = {
        "server": server,
        "tmp": tmp,
        "docs": docs,
        "ref_a": ref_a,
        "want_a": server.snapshot(ref_a),
        "want_b": server.snapshot(ref_b),
        "seconds_a": first["seconds"],
        "seconds_b": second["seconds"],
    }
    assert lab["want_a"]["verify"] == [] and len(lab["want_a"]["documents"]) == 8
    assert lab["want_a"]["chunk_ids"] != lab["want_b"]["chunk_ids"]
    yield lab
    server.close()


def test_sigkill_at_random_moments_loses_nothing(lab):
    """Chains of two kills then a clean run, from empty and while replacing 3 of 8 files."""
    rng = random.Random(SEED)
    server, tmp = lab["server"], lab["tmp"]
    kills = survived = chains = 0
    resumed_total = 0
    started = time.monotonic()
    while kills < KILLS:
        assert chains < 2 * KILLS, "too few runs were still going when the kill came"
        replacing = chains % 2 == 1
        write_docs(lab["docs"], modified_files() if replacing else original_files())
        home = new_home(tmp / f"chain{chains}", like=lab["ref_a"] if replacing else None)
        want = lab["want_b"] if replacing else lab["want_a"]
        span = lab["seconds_b" if replacing else "seconds_a"]
        chains += 1
        for share in (1.0, 0.7):  # a resumed run has less left to do
            delay = rng.uniform(0, span * share)
            reply = server.run(home, "ingest", str(lab["docs"]), kill_after=delay)
            kills += reply["killed"]
        interrupted = pending_paths(home)
        final = server.run(home, "ingest", str(lab["docs"]))
        assert final["rc"] == 0, final["stderr"]
        assert resumed_paths(final["stderr"]) == interrupted
        assert json.loads((home / "ingest-queue.json").read_text()) == []  # all asks answered
        resumed_total += len(interrupted)
        assert_same_library(server.snapshot(home), want)
        survived = kills
        shutil.rmtree(home)
    print(
        f"\n{survived} SIGKILLs survived in {chains} chains, {resumed_total} files resumed, "
        f"{time.monotonic() - started:.0f} s"
    )
    assert resumed_total > 0  # some kills did land mid-file


REPLACE_CRASHES = [
    # after the new version went live, before the old one was purged
    {"target": "app.core.library:Library._purge_version", "when": "before", "n": 1},
    # vectors of the new version sent to the store's process, its keyword rows not yet
    {"target": "app.core.vector_store:CollectionProcess.upsert", "when": "after", "n": 1},
    # the first replaced file is live, the second is not
    {"target": "app.core.library:Library.commit_version", "when": "after", "n": 1},
]


@pytest.mark.parametrize("crash_at", REPLACE_CRASHES, ids=["purge-old", "upsert", "commit"])
def test_a_crash_while_replacing_is_finished_by_the_next_run(lab, crash_at):
    server = lab["server"]
    write_docs(lab["docs"], modified_files())
    home = new_home(lab["tmp"] / f"replace-{crash_at['target'].rsplit('.', 1)[1]}", lab["ref_a"])
    crashed = server.run(home, "ingest", str(lab["docs"]), crash_at=crash_at)
    assert crashed["killed"], crashed["stderr"]
    interrupted = pending_paths(home)
    final = server.run(home, "ingest", str(lab["docs"]))
    assert final["rc"] == 0, final["stderr"]
    assert resumed_paths(final["stderr"]) == interrupted
    assert_same_library(server.snapshot(home), lab["want_b"])


@pytest.mark.parametrize("command", ["ingest", "reindex"])
def test_a_killed_run_is_picked_up_by_an_ingest_naming_nothing(lab, command):
    """The request itself survives: `confidant ingest` with no paths finishes what a killed
    `ingest DOCS`, or a killed `reindex` after a change of passage size, left (the window does
    the same at its next start)."""
    server, tmp = lab["server"], lab["tmp"]
    write_docs(lab["docs"], original_files())
    if command == "ingest":
        home, argv, want = new_home(tmp / "pick-up-ingest"), ["ingest", str(lab["docs"])], None
        picked, verb = str(lab["docs"]), "added"
    else:
        recut = SETTINGS.replace("48", "40")
        reference = new_home(tmp / "pick-up-reference")
        (reference / "settings.toml").write_text(recut)
        assert server.run(reference, "ingest", str(lab["docs"]))["rc"] == 0
        want = server.snapshot(reference)
        home, argv = new_home(tmp / "pick-up-reindex", lab["ref_a"]), ["reindex"]
        (home / "settings.toml").write_text(recut)
        picked, verb = str((lab["docs"] / "notes 0.txt").resolve()), "replaced"
    crash_at = {"target": "app.core.library:Library.commit_version", "when": "after", "n": 2}
    crashed = server.run(home, *argv, crash_at=crash_at)
    assert crashed["killed"], crashed["stderr"]
    if command == "reindex":  # cut short, the re-cut library is still whole and searchable
        listing = json.loads(server.run(home, "list", "--json")["stdout"])["documents"]
        assert [d["status"] for d in listing] == ["ready"] * 8
    final = server.run(home, "ingest")
    assert final["rc"] == 0, final["stderr"]
    assert f"picking up '{picked}' (asked for earlier, not finished)" in final["stderr"]
    assert f"6 {verb}" in final["stderr"] and "2 unchanged" in final["stderr"]
    assert_same_library(server.snapshot(home), want or lab["want_a"])
    nothing = server.run(home, "ingest")
    assert nothing["rc"] == 0 and "nothing left to add" in nothing["stderr"]


@pytest.mark.parametrize(
    "crash_at",
    [
        {"target": "app.core.library:Library._finish_removal", "when": "before", "n": 1},
        {"target": "app.core.vector_store:CollectionProcess.delete", "when": "after", "n": 1},
    ],
    ids=["marked", "vectors-gone"],
)
def test_a_crash_while_removing_is_finished_by_the_next_run(lab, crash_at):
    server, tmp = lab["server"], lab["tmp"]
    write_docs(lab["docs"], original_files())
    home = new_home(tmp / f"remove-{crash_at['target'].rsplit('.', 1)[1]}", lab["ref_a"])
    extra = tmp / "extra" / "to remove.txt"
    extra.parent.mkdir(exist_ok=True)
    extra.write_text("A file added, then removed. " + _words(77, 80))
    assert server.run(home, "ingest", str(extra))["rc"] == 0
    crashed = server.run(home, "remove", str(extra), crash_at=crash_at)
    assert crashed["killed"], crashed["stderr"]
    listing = json.loads(server.run(home, "list", "--json")["stdout"])
    # the next command of any kind finishes the removal before it reads the library
    assert str(extra) not in {d["path"] for d in listing["documents"]}
    final = server.run(home, "ingest", str(lab["docs"]))
    assert final["rc"] == 0, final["stderr"]
    assert_same_library(server.snapshot(home), lab["want_a"])


def test_conversations_survive_kills_mid_write(tmp_path):
    from app.core.history import ChatHistory

    rng = random.Random(SEED)
    db = tmp_path / "chats.sqlite3"
    written = 0
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), "history", str(db), str(written)], cwd=ROOT
        )
        time.sleep(rng.uniform(0.3, 1.2))
        proc.kill()
        proc.wait()
        history = ChatHistory(db)
        assert history._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (conv,) = history.conversations()
        messages = history.messages(conv.id)
        for n, m in enumerate(messages):
            assert m.text == message_text(n), f"message {n} is damaged"
            assert m.sources == [{"n": n}] and m.stats == {"n": n}
            assert m.role == ("user" if n % 2 else "assistant")
        assert len(messages) >= written
        written = len(messages)
        history.close()
    assert written > 6  # the writer did get going between kills
