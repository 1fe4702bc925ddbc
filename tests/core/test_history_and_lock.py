"""Conversations survive restarts; one process per library, and a crashed holder frees it."""

import subprocess
import sys
import textwrap

import pytest

from app.core.history import ChatHistory
from app.core.instance import AlreadyRunning, InstanceLock


def test_conversations_persist_in_order(tmp_path):
    h = ChatHistory(tmp_path / "chats.sqlite3")
    c = h.create("Budget")
    h.add(c.id, "user", "What is the budget?")
    h.add(
        c.id,
        "assistant",
        "42 [1]",
        sources=[{"n": 1, "path": "/a.pdf", "page": 2}],
        stats={"ttft_ms": 12},
    )
    h.rename(c.id, "Budget 2025")
    h.close()
    again = ChatHistory(tmp_path / "chats.sqlite3")
    [conv] = again.conversations()
    assert conv.title == "Budget 2025"
    msgs = again.messages(conv.id)
    assert [m.role for m in msgs] == ["user", "assistant"]
    assert msgs[1].sources[0]["page"] == 2 and msgs[1].stats == {"ttft_ms": 12}
    again.delete(conv.id)
    assert again.conversations() == [] and again.messages(conv.id) == []


def test_a_second_instance_is_refused_with_the_holder_named(tmp_path):
    first = InstanceLock(tmp_path, "window").acquire()
    with pytest.raises(AlreadyRunning, match="Confidant window"):
        InstanceLock(tmp_path, "ingest").acquire()
    first.release()
    InstanceLock(tmp_path, "ingest").acquire().release()


def test_a_lock_left_by_a_killed_process_is_recovered(tmp_path):
    code = textwrap.dedent(f"""
        import os, sys
        from app.core.instance import InstanceLock
        InstanceLock(__import__('pathlib').Path({str(tmp_path)!r}), "ingest").acquire()
        print("locked", flush=True)
        os.kill(os.getpid(), 9)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "locked" in proc.stdout and proc.returncode == -9
    assert (tmp_path / "confidant.lock.json").exists()  # the dead holder's note is still there
    InstanceLock(tmp_path, "window").acquire().release()
