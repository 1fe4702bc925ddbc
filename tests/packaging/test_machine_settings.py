"""IT's machine-wide settings file presets values and locks keys users cannot override."""

from __future__ import annotations

import tomllib

import pytest

from app.config import Settings, load_settings
from tests.packaging import REPO


@pytest.fixture
def machine_file(tmp_path, monkeypatch):
    path = tmp_path / "machine" / "settings.toml"
    path.parent.mkdir()
    monkeypatch.setenv("CONFIDANT_MACHINE_SETTINGS", str(path))
    return path


def test_machine_file_presets_and_locks_llm_path(tmp_path, machine_file):
    machine_file.write_text(
        'llm_path = "/srv/models/company.gguf"\n'
        "context_size = 8192\n"
        "temperature = 0.5\n"
        '[locked]\nkeys = ["llm_path", "only_from_documents"]\n',
        encoding="utf-8",
    )
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.toml").write_text(
        'llm_path = "/home/me/other.gguf"\nonly_from_documents = false\ncontext_size = 2048\n',
        encoding="utf-8",
    )

    settings = load_settings(home)

    assert settings.llm_path == "/srv/models/company.gguf"  # locked: the user's value is ignored
    assert settings.only_from_documents is True  # locked at its default
    assert settings.context_size == 2048  # not locked: the user's value wins over IT's preset
    assert settings.temperature == 0.5  # preset by IT, untouched by the user
    assert settings.locked == {"llm_path", "only_from_documents"}
    # A change made in the Settings dialog cannot touch a locked key either.
    changed = settings.with_changes(llm_path="/tmp/x.gguf", context_size=4096)
    assert changed.llm_path == "/srv/models/company.gguf" and changed.context_size == 4096


def test_without_a_machine_file_the_user_decides(tmp_path, machine_file):
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.toml").write_text('llm_path = "/home/me/other.gguf"\n', encoding="utf-8")
    settings = load_settings(home)
    assert settings.llm_path == "/home/me/other.gguf"
    assert settings.locked == frozenset()


def test_shipped_example_is_valid_and_locks_known_keys(tmp_path, machine_file):
    example = (REPO / "packaging" / "settings.example.toml").read_bytes()
    machine_file.write_bytes(example)
    settings = load_settings(tmp_path)
    data = tomllib.loads(example.decode())
    assert settings.llm_path == data["llm_path"]
    known = {f for f in Settings.__dataclass_fields__ if f != "locked"}
    assert set(data["locked"]["keys"]) <= known
    assert "llm_path" in settings.locked
