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


def services_with(monkeypatch, **factories):
    """Every Services the CLI builds during the test (app.cli.make_services) gets these
    factories (Services' embedder_factory, engine_factory, library_factory); returns the same
    maker, `make(home, model_override=None)`, for the Services a test builds itself."""
    from app import cli
    from app.services import Services

    def make(home, model_override=None):
        return Services(home, model_override=model_override, **factories)

    monkeypatch.setattr(cli, "make_services", make)
    return make


@pytest.fixture
def shared_models(monkeypatch, embedder, engine):
    """The CLI's Services reuse the session's loaded models; returns the maker (services_with)."""
    return services_with(
        monkeypatch,
        embedder_factory=lambda path: embedder,
        engine_factory=lambda settings: _Unclosable(engine),
    )


@pytest.fixture
def shared_embedder_only(monkeypatch, embedder):
    """The CLI's Services reuse the session's embedder; the language model is the real one of
    the settings (or --model). Returns the maker (services_with)."""
    return services_with(monkeypatch, embedder_factory=lambda path: embedder)


class _Unclosable:
    """The session engine, protected from Services.close() so later tests can use it."""

    def __init__(self, engine) -> None:
        self._engine = engine

    def close(self) -> None:
        pass

    def __getattr__(self, name):
        return getattr(self._engine, name)
