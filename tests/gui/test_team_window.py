"""The window in team mode (docs/team-setup.md): a server down at start opens the window and says
which and what to do, the local library is left alone, a question meanwhile says why it has no
answer and the next one works once the server is back; a new model server in Settings is used
from then on. The servers are real (Chroma's own, llama-cpp-python's) on 127.0.0.1."""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtWidgets import QApplication

from tests.gui.helpers import LONG, wait_answer
from tests.integration.team_servers import free_port, missing_extras

pytestmark = pytest.mark.slow

needs_servers = pytest.mark.skipif(bool(missing_extras()), reason=missing_extras() or "")
WAIT = 30_000  # ms: a refused connection is said within moments; 2 busy cores


def _last_answer(window):
    messages = window.services.history.messages(window.conversation)
    return messages[-1]


def _team_window(qtbot, home, shared_embedder, **changes):
    """A window whose Services builds its engine from the settings (no shared model), as the
    program's own start does."""
    from app.config import load_settings
    from app.gui.main_window import MainWindow
    from app.services import Services

    settings = dataclasses.replace(load_settings(home), max_answer_tokens=16, **changes)
    services = Services(home, settings, embedder_factory=lambda path: shared_embedder)
    window = MainWindow(services)
    window.show()
    qtbot.waitExposed(window)
    return window, services


@pytest.fixture
def team_windows(qtbot):
    made = []
    yield made
    for window, services in made:
        window.close()
        window.shutdown()
        services.close()


def test_library_server_down_at_start_opens_the_window_and_says_so(
    qtbot, home, tmp_path, make_window
):
    port = free_port()  # nothing listens there
    (tmp_path / "no-machine-settings.toml").write_text(
        f'library_server = "http://127.0.0.1:{port}"\n[locked]\nkeys = ["library_server"]\n',
        encoding="utf-8",
    )
    local = home / "library.sqlite3"  # a local library's file: team mode never opens it
    local.write_bytes(b"the local library, left as it was")
    window = make_window(home)
    assert window.services.settings.library_server == f"http://127.0.0.1:{port}"
    window.start_background_work()
    notice = window.server_notice
    qtbot.waitUntil(notice.isVisible, timeout=WAIT)
    text = notice.label.text()
    assert text.startswith("The team library is unavailable.")
    assert f"127.0.0.1:{port} cannot be reached" in text
    assert "IT department set this address" in text  # locked by IT: no point sending to Settings
    assert QApplication.activeModalWidget() is None  # said in the window, nothing to click away
    # A question meanwhile says why there is no answer.
    window.ask("What is the notice period?")
    wait_answer(qtbot, window)
    failed = _last_answer(window)
    assert failed.stats.get("error") and "team library" in failed.text
    assert "cannot be reached" in failed.text
    assert local.read_bytes() == b"the local library, left as it was"
    assert not (home / "library").exists()


@needs_servers
def test_library_server_back_try_again_clears_the_notice(qtbot, home, tmp_path, make_window):
    from tests.integration.team_servers import chroma_server

    server, url = chroma_server(tmp_path / "chroma", tmp_path / "chroma.log")
    window = make_window(home, library_server=url)
    window.start_background_work()
    notice = window.server_notice
    qtbot.waitUntil(notice.isVisible, timeout=WAIT)
    assert "Check the address in Settings" in notice.label.text()
    assert not window.documents.snapshot.documents
    server.start()
    try:
        notice.retry_button.click()
        qtbot.waitUntil(lambda: not notice.isVisible(), timeout=LONG)
        qtbot.waitUntil(lambda: window.library_label.text().startswith("0 documents"), timeout=LONG)
    finally:
        window.close()
        window.shutdown()
        server.kill()


@needs_servers
def test_a_question_while_the_model_server_is_down_says_so_and_the_next_works(
    qtbot, home, tmp_path, shared_embedder, team_windows
):
    from tests.integration.team_servers import model_server

    server, url = model_server(tmp_path / "model.log")
    window, services = _team_window(
        qtbot, home, shared_embedder, llm_server=url, only_from_documents=False
    )
    team_windows.append((window, services))
    window.start_background_work()
    notice = window.server_notice
    qtbot.waitUntil(notice.isVisible, timeout=WAIT)
    assert notice.label.text().startswith("The team model server is unavailable.")
    assert not window.chat.notice.isVisible()  # no "the built-in model is weak" note either
    window.ask("Say hello.")
    wait_answer(qtbot, window)
    failed = _last_answer(window)
    assert failed.stats.get("error") and "model server" in failed.text
    assert "cannot be reached" in failed.text
    server.start()
    try:
        window.ask("Say hello again.")
        wait_answer(qtbot, window)
        answer = _last_answer(window)
        assert not answer.stats.get("error"), answer.text
        assert answer.text.strip() and answer.stats["model"]
        qtbot.waitUntil(lambda: not notice.isVisible(), timeout=WAIT)  # the server answered
    finally:
        server.kill()


def test_a_new_model_server_key_or_model_in_settings_rebuilds_the_engine(
    qtbot, home, shared_embedder, team_windows, caplog
):
    import logging

    from app.core.team.endpoint import EndpointEngine

    caplog.set_level(logging.DEBUG)

    first, second = free_port(), free_port()
    window, services = _team_window(
        qtbot, home, shared_embedder, llm_server=f"http://127.0.0.1:{first}/v1"
    )
    team_windows.append((window, services))
    window.start_background_work()
    notice = window.server_notice
    qtbot.waitUntil(lambda: f"127.0.0.1:{first}" in notice.label.text(), timeout=WAIT)

    def engine_after(**changes) -> EndpointEngine:
        before = services._engine
        assert window.apply_settings(services.settings.with_changes(**changes))
        qtbot.waitUntil(
            lambda: services._engine is not None and services._engine is not before, timeout=WAIT
        )
        qtbot.waitUntil(lambda: not window.model_lane.busy(), timeout=WAIT)
        return services._engine

    engine = engine_after(llm_server=f"http://127.0.0.1:{second}/v1")
    assert isinstance(engine, EndpointEngine)
    assert engine.base_url == f"http://127.0.0.1:{second}/v1"
    qtbot.waitUntil(lambda: f"127.0.0.1:{second}" in notice.label.text(), timeout=WAIT)
    assert f"127.0.0.1:{first}" not in notice.label.text()
    assert engine_after(llm_api_key="key-2b7f")._key.value == "key-2b7f"
    assert engine_after(llm_model="another-model").model == "another-model"
    same = services._engine
    window.apply_settings(services.settings.with_changes(sources=4))  # not the model's
    qtbot.waitUntil(lambda: not window.model_lane.busy(), timeout=WAIT)
    assert services._engine is same
    assert "key-2b7f" not in caplog.text  # the key is never logged


def test_a_refused_server_address_in_a_settings_file_is_said_in_the_window(
    qtbot, home, make_window
):
    (home / "settings.toml").write_text(
        'library_server = "http://files.example:8000"\n', encoding="utf-8"
    )
    window = make_window(home)
    window.start_background_work()
    notice = window.server_notice
    qtbot.waitUntil(notice.isVisible, timeout=WAIT)
    assert (
        "plain http" in notice.label.text()
        and "Check the address in Settings" in notice.label.text()
    )
    assert QApplication.activeModalWidget() is None
    assert not (home / "library").exists()


def test_the_window_says_where_documents_and_questions_go(qtbot, home, make_window):
    """'Everything stays on this computer' is true only without team servers: with a model
    server the window (and About) says questions go there, and says so no more once it is
    taken out."""
    from app.config import load_settings

    port = free_port()
    (home / "settings.toml").write_text(
        f'llm_server = "http://127.0.0.1:{port}/v1"\n', encoding="utf-8"
    )
    window = make_window(home)
    said = window.chat.empty.body.text()
    assert "team's model server" in said and "stays on this computer" not in said
    window.open_about()
    about = window.about.text.toPlainText()
    window.about.close()
    assert "team's model server" in about and "stays on this computer" not in about
    assert window.apply_settings(dataclasses.replace(load_settings(home), llm_server=""))
    assert window.chat.empty.body.text().endswith("Everything stays on this computer.")
