"""Model downloads against a real HTTP server on 127.0.0.1: resumed after a cut, checked, refused
by policy, and failures (wrong file, disk full, no server) said in words with nothing bad kept."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from app.config import Settings, load_settings
from app.core.cancel import Cancelled, CancelToken
from app.core.downloads import (
    CatalogEntry,
    DownloadError,
    download,
    downloads_dir,
    find_entry,
    load_catalog,
)

PAYLOAD = os.urandom(3 * (1 << 20) + 12345)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves PAYLOAD at any path, honouring Range; can cut a response short or ignore Range."""

    def __init__(self) -> None:
        self.cut_after: int | None = None  # bytes sent before the connection drops (once)
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.requests.append((self.path, rng))
                start = 0
                if rng and not outer.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(PAYLOAD):
                        self.send_response(416)
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header(
                        "Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
                    )
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_after is not None:
                    n, outer.cut_after = outer.cut_after, None
                    self.wfile.write(body[:n])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def entry_for(server: Server, **kw) -> CatalogEntry:
    base = dict(
        id="test-model",
        name="Test Model",
        file="Test-Model-Q4_K_M.gguf",
        url=f"{server.url}/org/repo/resolve/abc/Test-Model-Q4_K_M.gguf",
        size=len(PAYLOAD),
        sha256=SHA,
    )
    base.update(kw)
    return CatalogEntry(**base)


def test_a_download_arrives_checked_with_progress(server, tmp_path):
    seen = []
    path = download(entry_for(server), tmp_path, Settings(), progress=lambda d, t: seen.append(d))
    assert path == downloads_dir(tmp_path) / "Test-Model-Q4_K_M.gguf"
    assert path.read_bytes() == PAYLOAD
    assert seen[0] == 0 and seen[-1] == len(PAYLOAD) and seen == sorted(seen)
    assert not list(downloads_dir(tmp_path).glob("*.part"))
    # asked again: already here, nothing fetched
    server.requests.clear()
    assert download(entry_for(server), tmp_path, Settings()) == path
    assert server.requests == []


def test_cut_short_then_resumed_from_where_it_stopped(server, tmp_path):
    server.cut_after = 1_000_000
    with pytest.raises(DownloadError, match=r"stopped sending.*download again to resume"):
        download(entry_for(server), tmp_path, Settings())
    part = downloads_dir(tmp_path) / "Test-Model-Q4_K_M.gguf.part"
    assert part.stat().st_size == 1_000_000
    assert not (downloads_dir(tmp_path) / "Test-Model-Q4_K_M.gguf").exists()
    path = download(entry_for(server), tmp_path, Settings())
    assert server.requests[-1][1] == "bytes=1000000-"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA
    assert not part.exists()


def test_a_server_that_ignores_range_starts_again(server, tmp_path):
    folder = downloads_dir(tmp_path)
    folder.mkdir()
    (folder / "Test-Model-Q4_K_M.gguf.part").write_bytes(PAYLOAD[:5000])
    server.ignore_range = True
    path = download(entry_for(server), tmp_path, Settings())
    assert path.read_bytes() == PAYLOAD


def test_a_wrong_file_is_deleted_never_used(server, tmp_path):
    with pytest.raises(DownloadError, match="checksum differs"):
        download(entry_for(server, sha256="0" * 64), tmp_path, Settings())
    left = [p.name for p in downloads_dir(tmp_path).iterdir()]
    assert not [n for n in left if n.endswith((".gguf", ".part"))], left


def test_more_bytes_than_the_list_says_stops_the_download(server, tmp_path):
    with pytest.raises(DownloadError, match="more than"):
        download(entry_for(server, size=1_000_000), tmp_path, Settings())
    assert not list(downloads_dir(tmp_path).glob("*.part"))


def test_no_server_is_said_plainly(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    entry = CatalogEntry("m", "M", "M.gguf", f"http://127.0.0.1:{port}/M.gguf", 10, SHA)
    with pytest.raises(DownloadError, match="could not be reached"):
        download(entry, tmp_path, Settings(), timeout=5)


def test_policy_and_missing_checksum_contact_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match="switched off"):
        download(entry_for(server), tmp_path, replace(Settings(), allow_downloads=False))
    with pytest.raises(DownloadError, match="no checksum"):
        download(entry_for(server, sha256=""), tmp_path, Settings())
    assert server.requests == []


def test_the_mirror_serves_files_flat(server, tmp_path):
    settings = replace(Settings(), model_download_url=f"{server.url}/mirror/")
    download(entry_for(server), tmp_path, settings)
    assert server.requests[0][0] == "/mirror/Test-Model-Q4_K_M.gguf"
    with pytest.raises(DownloadError, match="not a web address"):
        download(entry_for(server), tmp_path, replace(settings, model_download_url="file:///etc"))


def test_stop_keeps_what_arrived(server, tmp_path):
    token = CancelToken()

    def progress(done, total):
        if done > 1 << 20:
            token.cancel()

    with pytest.raises(Cancelled):
        download(entry_for(server), tmp_path, Settings(), progress=progress, cancel=token)
    part = downloads_dir(tmp_path) / "Test-Model-Q4_K_M.gguf.part"
    assert 1 << 20 < part.stat().st_size < len(PAYLOAD)
    assert download(entry_for(server), tmp_path, Settings()).read_bytes() == PAYLOAD


def test_a_full_disk_is_said_and_the_part_resumes(server, tmp_path):
    """A file-size limit (RLIMIT_FSIZE) stands for the full disk: writes past it fail."""
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        from app.config import Settings
        from app.core.downloads import CatalogEntry, DownloadError, download
        e = CatalogEntry("t", "Test Model", "Test-Model-Q4_K_M.gguf",
                         "{server.url}/x/Test-Model-Q4_K_M.gguf", {len(PAYLOAD)}, "{SHA}")
        try:
            download(e, Path(sys.argv[1]), Settings())
        except DownloadError as exc:
            print(exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert "disk filled up" in out.stdout and "resumes" in out.stdout, out.stderr
    part = downloads_dir(tmp_path) / "Test-Model-Q4_K_M.gguf.part"
    assert 0 < part.stat().st_size <= 1 << 20
    assert download(entry_for(server), tmp_path, Settings()).read_bytes() == PAYLOAD
    assert server.requests[-1][1].startswith("bytes=")  # resumed, not fetched again


def test_not_enough_space_is_refused_before_anything_is_fetched(server, tmp_path):
    huge = entry_for(server, size=1 << 60)
    with pytest.raises(DownloadError, match="Not enough disk space"):
        download(huge, tmp_path, Settings())
    assert server.requests == []


def test_the_shipped_list_is_complete_and_checkable():
    entries = load_catalog()
    assert len(entries) >= 3
    for e in entries:
        assert e.sha256 and len(e.sha256) == 64, e.id
        assert e.url.startswith("https://") and e.file in e.url and e.size > 1e9
        assert "/resolve/main/" not in e.url  # pinned: the file cannot change under its hash
        assert e.good_for
    assert find_entry("llama-3.1-8b-instruct").file == "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    assert find_entry("nothing") is None


def test_a_bad_catalog_entry_is_left_out(tmp_path):
    bad = tmp_path / "catalog.toml"
    bad.write_text(
        '[[model]]\nid="a"\nname="A"\nfile="../../etc/passwd.gguf"\nurl="https://x/a"\n'
        'size=1\nsha256=""\n'
        '[[model]]\nid="b"\nname="B"\nfile="B.gguf"\nurl="https://x/b"\nsize=1\nsha256="xyz"\n'
        '[[model]]\nid="c"\nname="C"\nfile="C.gguf"\nurl="https://x/c"\nsize=1\nsha256=""\n'
    )
    assert [e.id for e in load_catalog(bad)] == ["c"]  # no hash yet: listed, refused later


def test_only_the_machine_settings_decide_downloads(tmp_path, monkeypatch):
    machine = tmp_path / "machine.toml"
    machine.write_text('allow_downloads = false\nmodel_download_url = "https://mirror/"\n')
    monkeypatch.setenv("CONFIDANT_MACHINE_SETTINGS", str(machine))
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.toml").write_text(
        'allow_downloads = true\nmodel_download_url = "https://x"\n'
    )
    settings = load_settings(home)
    assert settings.allow_downloads is False
    assert settings.model_download_url == "https://mirror/"
