"""Settings: defaults, round trip, IT's locked keys, clear errors; the data dir is private."""

import os
import stat

import pytest

from app.config import (
    Settings,
    SettingsError,
    data_dir,
    default_embedder_path,
    default_llm_path,
    load_settings,
    save_settings,
)


def test_data_dir_is_created_private(home):
    path = data_dir()
    assert path == home and path.is_dir()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700


def test_settings_round_trip_and_file_is_private(home):
    data_dir()
    s = Settings().with_changes(sources=7, only_from_documents=False, llm_path="/m/x.gguf")
    save_settings(home, s)
    assert load_settings(home) == s
    assert stat.S_IMODE(os.stat(home / "settings.toml").st_mode) == 0o600


def test_machine_settings_preset_and_lock(home, tmp_path, monkeypatch):
    machine = tmp_path / "machine.toml"
    machine.write_text(
        'llm_path = "/opt/models/llama.gguf"\nsources = 3\n[locked]\nkeys = ["llm_path"]\n'
    )
    monkeypatch.setenv("CONFIDANT_MACHINE_SETTINGS", str(machine))
    data_dir()
    (home / "settings.toml").write_text('llm_path = "/home/me/other.gguf"\nsources = 9\n')
    s = load_settings(home)
    assert s.llm_path == "/opt/models/llama.gguf"  # locked by IT
    assert s.sources == 9  # not locked: the user's choice wins
    assert s.with_changes(llm_path="/x.gguf").llm_path == "/opt/models/llama.gguf"


def test_a_malformed_settings_file_names_itself(home):
    data_dir()
    (home / "settings.toml").write_text("sources = 'many'\n")  # a bad value: named, not fatal
    assert load_settings(home).problems == (
        f"{home / 'settings.toml'}: 'sources' must be a whole number from 1 to 20 (it is "
        "'many'); Confidant uses 5 until it is fixed.",
    )
    (home / "settings.toml").write_text("this is [not toml\n")
    with pytest.raises(SettingsError, match=r"settings\.toml"):
        load_settings(home)


def test_reindex_needed_only_for_vector_changes():
    base = Settings()
    assert not base.needs_reindex(base.with_changes(sources=9, llm_path="/x.gguf"))
    assert base.needs_reindex(base.with_changes(embedder_path="/models/other"))
    assert base.needs_reindex(base.with_changes(chunk_tokens=120))


def test_embedded_models_are_found_without_importing_their_packages():
    assert default_llm_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (default_embedder_path() / "modules.json").is_file()
