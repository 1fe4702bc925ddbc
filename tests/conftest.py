"""Shared fixtures: the real tiny models, loaded once per test session, and tmp data dirs."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from app.config import default_embedder_path, default_llm_path, isolate_from_network

isolate_from_network()


@pytest.fixture(scope="session")
def embedder():
    """The embedded all-MiniLM-L6-v2, on the CPU."""
    from app.core.embedding import Embedder

    e = Embedder(default_embedder_path(), device="cpu")
    e.load()
    return e


@pytest.fixture(scope="session")
def engine():
    """The embedded SmolLM2-135M GGUF, loaded once (not thread-safe: tests use it serially)."""
    from app.core.llm import LlamaEngine

    e = LlamaEngine(default_llm_path(), n_ctx=2048, gpu_layers=0)
    e.load()
    yield e
    e.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh data directory, selected the way users select one: $CONFIDANT_HOME."""
    path = tmp_path / "home"
    monkeypatch.setenv("CONFIDANT_HOME", str(path))
    monkeypatch.setenv("CONFIDANT_MACHINE_SETTINGS", str(tmp_path / "no-machine-settings.toml"))
    return path


@pytest.fixture
def shared_models(monkeypatch, embedder, engine):
    """Make every Services built during the test reuse the session's loaded models."""
    import app.services as services

    monkeypatch.setattr(services, "Embedder", lambda path: embedder)
    monkeypatch.setattr(services, "EngineProcess", lambda path, **kw: _Unclosable(engine))
    return embedder, engine


class _Unclosable:
    """The session engine, protected from Services.close() so later tests can use it."""

    def __init__(self, engine) -> None:
        self._engine = engine

    def close(self) -> None:
        pass

    def __getattr__(self, name):
        return getattr(self._engine, name)
