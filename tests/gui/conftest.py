"""GUI tests drive the real window with the real tiny models over tmp data directories.

The embedder and the LLM are loaded once per session and shared by every window (a Services
built by `make_services` gets them), so the suite stays fast on two cores.
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt is imported anywhere

import dataclasses
from pathlib import Path

import pytest

from app.config import Settings, embedder_path, isolate_from_network, llm_path

isolate_from_network()

SHOTS = Path(os.environ.get("CONFIDANT_SHOTS", "/tmp/confidant-gui-shots"))


@pytest.fixture(scope="session")
def qapp_args():
    return ["confidant-tests"]


@pytest.fixture(scope="session", autouse=True)
def styled_app(qapp):
    from app.gui.main import create_application

    return create_application()


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


@pytest.fixture(scope="session")
def shared_embedder():
    from app.core.embedding import Embedder

    embedder = Embedder(embedder_path(Settings()))
    embedder.load()
    return embedder


class _SharedEngine:
    """One loaded SmolLM2 for the whole session; a window 'dropping' it keeps it loaded."""

    def __init__(self) -> None:
        from app.core.llm import LlamaEngine

        class KeepOpen(LlamaEngine):
            def close(self) -> None:  # Services.drop_engine/close: keep it for the next test
                pass

            def really_close(self) -> None:
                LlamaEngine.close(self)

        self.engine = KeepOpen(llm_path(Settings()), n_ctx=4096, gpu_layers=0)

    def __call__(self, settings: Settings):
        return self.engine


@pytest.fixture(scope="session")
def shared_engine():
    factory = _SharedEngine()
    yield factory
    factory.engine.really_close()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    from app.config import data_dir

    monkeypatch.setenv("CONFIDANT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CONFIDANT_MACHINE_SETTINGS", str(tmp_path / "no-machine-settings.toml"))
    return data_dir()


@pytest.fixture
def make_services(shared_embedder, shared_engine):
    """Services over a home with the shared models; closed at the end of the test."""
    from app.services import Services

    made = []

    def make(home: Path, **changes):
        from app.config import load_settings

        # Short answers from few sources: the tiny model on two shared cores is slow, and the
        # tests check plumbing, not prose.
        changes = {"max_answer_tokens": 24, "sources": 3, **changes}
        settings = dataclasses.replace(load_settings(home), **changes)
        services = Services(
            home,
            settings,
            engine_factory=shared_engine,
            embedder_factory=lambda path: shared_embedder,  # the session's loaded model
        )
        made.append(services)
        return services

    yield make
    for services in made:
        services.close()


@pytest.fixture
def make_window(qtbot, make_services):
    """A shown MainWindow over `home`; shut down (lanes joined) at the end of the test."""
    from app.gui.main_window import MainWindow

    windows = []

    def make(home: Path, **changes):
        window = MainWindow(make_services(home, **changes))
        window.show()
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
