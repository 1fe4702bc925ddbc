"""`confidant bench --team`: team mode against real servers on this machine (loopback only).

- Quality: a local library is copied as it is into a Chroma server (`chroma run`, started here)
  and hit@k on a QA set is measured through the local library and through the team library:
  the same chunks and vectors, so any difference is the team path's (the keyword replica, the
  server's vector search).
- Load: 8 clients (threads, each a workstation with its own team library client) ask questions
  for 60 s through the full chat session: search on the team library, answer streamed from the
  model server (llama-cpp-python's server with the embedded SmolLM2, started here, unless
  --team-llm names one on this machine). Reports p50/p95 answer latency, answers and errors.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench.stats import percentile


# ------------------------------------------------------------------ servers on loopback
def chroma_command() -> str | None:
    beside = Path(sys.executable).with_name("chroma")
    return str(beside) if beside.exists() else shutil.which("chroma")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on 127.0.0.1: start(), kill() (SIGKILL, as a crash), start() again."""

    def __init__(self, argv: list[str], ready_url: str, log: Path) -> None:
        self.argv = argv
        self.ready_url = ready_url
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.ready_url, timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"{self.argv} did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


def chroma_server(data: Path, log: Path) -> tuple[Server, str]:
    """`chroma run` over `data` on a free loopback port; (server, its URL)."""
    port = free_port()
    argv = [chroma_command() or "chroma", "run", "--path", str(data), "--host", "127.0.0.1"]
    argv += ["--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    return Server(argv, f"{url}/api/v2/heartbeat", log), url


def model_server(model: Path, log: Path, n_ctx: int = 2048, threads: int = 2):
    """llama-cpp-python's OpenAI-compatible server for `model` on a free loopback port."""
    port = free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)]
    # interrupt_requests: this server otherwise cuts the answer it is writing short whenever
    # another request arrives; here each waits its turn.
    argv += ["--n_threads", str(threads), "--verbose", "false", "--interrupt_requests", "false"]
    url = f"http://127.0.0.1:{port}/v1"
    return Server(argv, f"{url}/models", log), url


def _loopback_only(url: str) -> str:
    from app.core.team.http import is_loopback

    host = urlsplit(url).hostname or ""
    if not is_loopback(host):
        raise SystemExit(
            f"confidant bench --team: {url} is not on this machine. The load bench runs only "
            "against loopback servers (it would load a shared server for a minute)."
        )
    return url


# ------------------------------------------------------------------ quality
def bench_team_quality(library_home: Path, qa_files: list[str], embedder, k: int = 5) -> dict:
    """hit@1/hit@k per QA file through the local library and through a team copy of it."""
    from app.core.library import Library
    from app.core.retrieval import Retriever
    from app.core.team.library import RemoteLibrary
    from app.core.team.migrate import push_library
    from bench.retrieval import bench_quality

    out: dict = {"library": str(library_home), "files": {}}
    with tempfile.TemporaryDirectory(prefix="confidant-team-bench-") as tmp:
        tmp = Path(tmp)
        local_home = tmp / "local"
        # A copy: opening a library writes (its journal), and the bench never writes the one named.
        shutil.copytree(library_home, local_home, ignore=shutil.ignore_patterns("*.lock"))
        server, url = chroma_server(tmp / "chroma", tmp / "chroma.log")
        server.start()
        try:
            local = Library(local_home)
            remote = RemoteLibrary(tmp / "client", url)
            started = time.perf_counter()
            out["chunks"] = push_library(local, remote)
            out["push_s"] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            remote.sync(force=True)
            out["replica_sync_s"] = round(time.perf_counter() - started, 1)
            for qa in qa_files:
                row = {}
                for mode, lib in (("local", local), ("team", remote)):
                    t = time.perf_counter()
                    result = bench_quality(Retriever(lib, embedder), qa, k=k)
                    result["seconds"] = round(time.perf_counter() - t, 1)
                    row[mode] = result
                row["same_misses"] = row["local"]["missed"] == row["team"]["missed"]
                out["files"][Path(qa).name] = row
            local.close()
            remote.close()
        finally:
            server.kill()
    return out


def format_team_quality(d: dict, k: int) -> str:
    lines = [
        f"team vs local retrieval quality ({d['chunks']} chunks pushed in {d['push_s']} s, "
        f"replica synced in {d['replica_sync_s']} s)"
    ]
    for name, row in d["files"].items():
        for mode in ("local", "team"):
            r = row[mode]
            lines.append(
                f"  {name:<18} {mode:<5} hit@1 {r['hit@1']:.3f}  hit@{k} {r[f'hit@{k}']:.3f}  "
                f"({r['questions']} questions)"
            )
        lines.append(f"  {name:<18} same misses in both modes: {row['same_misses']}")
    return "\n".join(lines)


# ------------------------------------------------------------------ load
DEFAULT_DOCS = {
    "contract.txt": "Service agreement. The notice period is thirty days. Invoices are due "
    "within 45 days. Either party may end the agreement in writing.",
    "handbook.txt": "Fire safety: when the alarm sounds, gather at the car park behind building "
    "C. Employees receive twenty five days of paid leave each year.",
    "it.txt": "The office wifi network is named KX-4471-PELICAN. Passwords change every 90 "
    "days. Report a lost laptop to the service desk at once.",
}
DEFAULT_QUESTIONS = [
    "What is the notice period?",
    "Where do we gather when the fire alarm sounds?",
    "How many days of paid leave do employees get?",
    "What is the wifi network called?",
    "When are invoices due?",
    "How often do passwords change?",
]


def bench_team_load(
    embedder,
    clients: int = 8,
    seconds: float = 60.0,
    questions: list[str] | None = None,
    docs: Path | None = None,
    llm_server: str | None = None,
    max_answer_tokens: int = 64,
) -> dict:
    """`clients` workstations asking for `seconds`: answer latency p50/p95, errors."""
    from app.config import Settings, default_llm_path
    from app.core.cancel import CancelToken
    from app.core.chat import ChatSession
    from app.core.events import AnswerDone, AnswerFailed
    from app.core.ingest import Ingestor
    from app.core.retrieval import Retriever
    from app.core.team.endpoint import EndpointEngine
    from app.core.team.library import RemoteLibrary

    clients = max(1, min(clients, 32))
    seconds = max(1.0, min(seconds, 600.0))  # bounded
    questions = questions or DEFAULT_QUESTIONS
    with tempfile.TemporaryDirectory(prefix="confidant-team-load-") as tmp:
        tmp = Path(tmp)
        chroma, library_url = chroma_server(tmp / "chroma", tmp / "chroma.log")
        chroma.start()
        model = None
        try:
            if llm_server:
                llm_url = _loopback_only(llm_server)
            else:
                model, llm_url = model_server(default_llm_path(), tmp / "model.log")
                model.start()
            if docs is None:
                docs = tmp / "docs"
                docs.mkdir()
                for name, text in DEFAULT_DOCS.items():
                    (docs / name).write_text(text, encoding="utf-8")
            writer = RemoteLibrary(tmp / "writer", library_url)
            for _ in Ingestor(writer, embedder).run([str(docs)], CancelToken()):
                pass
            writer.close()
            settings = Settings(max_answer_tokens=max_answer_tokens, temperature=0.0)
            latencies: list[float] = []
            errors: list[str] = []
            answers = 0
            lock = threading.Lock()
            stop_at = time.monotonic() + seconds

            def client(n: int) -> None:
                nonlocal answers
                library = RemoteLibrary(tmp / f"client-{n}", library_url)
                engine = EndpointEngine(llm_url, n_ctx=2048)
                session = ChatSession(Retriever(library, embedder), lambda: engine, settings)
                q = n
                while time.monotonic() < stop_at:
                    started = time.perf_counter()
                    last = None
                    try:
                        for event in session.ask(questions[q % len(questions)], CancelToken()):
                            last = event
                    except Exception as exc:  # counted, never hidden
                        last = AnswerFailed(f"{type(exc).__name__}: {exc}")
                    took = time.perf_counter() - started
                    with lock:
                        if isinstance(last, AnswerDone):
                            answers += 1
                            latencies.append(took)
                        else:
                            errors.append(getattr(last, "message", repr(last))[:200])
                    q += 1
                engine.close()
                library.close()

            threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - started
        finally:
            chroma.kill()
            if model is not None:
                model.kill()
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "answers": answers,
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "answers_per_min": round(answers / wall * 60, 1),
        "p50_s": round(percentile(latencies, 50), 2) if latencies else None,
        "p95_s": round(percentile(latencies, 95), 2) if latencies else None,
        "max_answer_tokens": max_answer_tokens,
        "model_server": llm_server or "llama-cpp-python server, embedded SmolLM2, 2 threads",
    }


def format_team_load(d: dict) -> str:
    return (
        f"team load: {d['clients']} clients for {d['seconds']} s ({d['model_server']})\n"
        f"  answers {d['answers']} ({d['answers_per_min']}/min)  errors {d['errors']}\n"
        f"  answer latency p50 {d['p50_s']} s  p95 {d['p95_s']} s"
        + "".join(f"\n  error: {e}" for e in d["error_examples"])
    )
