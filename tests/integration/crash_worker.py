"""A fork server for the crash tests: imports the heavy libraries once, then forks a fresh process
for every run, so a test can SIGKILL dozens of real `confidant` runs without paying ~20 s of
imports (torch, sentence-transformers, chromadb) each time.

Each forked child is a new process that runs the real CLI (`app.cli.main`) on its own data
directory: it loads the embedder, opens Chroma, takes the instance lock, exactly like
`python -m app ...`. Only the imports are shared (nothing is loaded, opened or run before fork).

Protocol: one JSON command per line on stdin, one JSON reply per line on stdout.
  {"argv": [...], "home": DIR, "out": PREFIX, "kill_after": SECONDS | null,
   "crash_at": {"target": "module:Class.method", "when": "before"|"after", "n": N} | null}
The child's stdout/stderr go to PREFIX.out / PREFIX.err. With kill_after the server SIGKILLs the
child that many seconds after forking it (if it is still running); with crash_at the child
SIGKILLs itself at the n-th call of the target (a deterministic crash point).
Reply: {"pid", "killed": bool, "rc": exit code or null, "seconds"}.

`python crash_worker.py history DB START` is a separate, light mode: it appends messages to a
conversation forever (until killed), each a known function of its number.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def message_text(n: int) -> str:
    """The n-th message body: long enough that a write spans many pages of the database."""
    return f"message {n} begins. " + ("lorem ipsum dolor sit amet " * 2000) + f"message {n} ends."


def _history(db: str, start: int) -> None:
    from app.core.history import ChatHistory

    history = ChatHistory(Path(db))
    conv = history.conversations()[0].id if history.conversations() else history.create("t").id
    n = start
    while True:
        history.add(conv, "user" if n % 2 else "assistant", message_text(n), [{"n": n}], {"n": n})
        n += 1


def _snapshot(home: str) -> int:
    """Print the library's state as JSON: documents, chunk ids in both stores, verify()."""
    from app.core.library import Library

    lib = Library(Path(home))
    docs = [
        {"path": d.path, "id": d.id, "hash": d.hash, "pending": d.pending, "status": d.status}
        | {"chunks": d.chunks, "pages": d.pages}
        for d in lib.documents()
    ]
    vectors = lib.collection.get(include=[])["ids"] if lib._has_vectors() else []
    print(
        json.dumps(
            {
                "documents": docs,
                "chunk_ids": list(lib.stored_chunk_ids()),
                "vector_ids": sorted(vectors),
                "verify": lib.verify(),
            }
        )
    )
    lib.close()
    return 0


def _install_crash(spec: dict) -> None:
    module_name, qualname = spec["target"].split(":")
    owner = importlib.import_module(module_name)
    *path, attr = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, attr)
    calls = {"n": 0}

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        calls["n"] += 1
        hit = calls["n"] == spec.get("n", 1)
        if hit and spec.get("when", "before") == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, attr, wrapper)


def _child(cmd: dict, out: int, err: int) -> None:
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    os.environ["CONFIDANT_HOME"] = cmd["home"]
    try:
        if cmd.get("crash_at"):
            _install_crash(cmd["crash_at"])
        from app.cli import main

        if cmd["argv"][:1] == ["__snapshot__"]:
            rc = _snapshot(cmd["home"])
        elif cmd.get("profile"):
            import cProfile

            prof = cProfile.Profile()
            rc = prof.runcall(main, cmd["argv"])
            prof.dump_stats(cmd["profile"])
        else:
            rc = main(cmd["argv"])
    except BaseException as exc:
        print(f"worker: {type(exc).__name__}: {exc}", file=sys.stderr)
        rc = 99
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def _serve() -> None:
    # The imports a CLI run pays for, done once. Nothing is loaded or opened before fork.
    import chromadb  # noqa: F401
    import sentence_transformers  # noqa: F401

    import app.cli
    import app.core.ingest
    import app.core.library
    import app.services  # noqa: F401

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        # The output files exist before the fork: a kill at once still leaves them to read.
        out = os.open(cmd["out"] + ".out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(cmd["out"] + ".err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(cmd, out, err)
        os.close(out)
        os.close(err)
        killed = False
        deadline = started + cmd["kill_after"] if cmd.get("kill_after") is not None else None
        status = None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if deadline is not None and time.monotonic() >= deadline:
                os.kill(pid, signal.SIGKILL)
                killed = True
                _, status = os.waitpid(pid, 0)
                break
            time.sleep(0.005)
        rc = os.waitstatus_to_exitcode(status)
        print(
            json.dumps(
                {
                    "pid": pid,
                    "killed": killed or rc == -signal.SIGKILL,
                    "rc": rc,
                    "seconds": round(time.monotonic() - started, 3),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    if sys.argv[1:2] == ["history"]:
        _history(sys.argv[2], int(sys.argv[3]))
    else:
        _serve()
