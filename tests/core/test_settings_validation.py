"""Settings files with bad values, and data folders Confidant did not make or cannot write:
each ends in a sentence naming the file or folder, never a crash, an empty answer or a folder
whose permissions were changed behind the user's back."""

from __future__ import annotations

import math
import os
import stat

import pytest

from app.cli import main
from app.config import (
    DataDirError,
    Settings,
    SettingsError,
    data_dir,
    load_settings,
    save_settings,
)


def write(home, text: str) -> None:
    home.mkdir(exist_ok=True)
    (home / "settings.toml").write_text(text)


@pytest.mark.parametrize(
    ("line", "key", "must_be", "it_is", "uses"),
    [
        ("sources = -3", "sources", "a whole number from 1 to 20", "-3", "5"),
        ("sources = 21", "sources", "a whole number from 1 to 20", "21", "5"),
        ("sources = 2.5", "sources", "a whole number from 1 to 20", "2.5", "5"),
        ("sources = true", "sources", "a whole number from 1 to 20", "true", "5"),
        ("temperature = nan", "temperature", "a number from 0 to 2", "nan", "0.2"),
        ("temperature = inf", "temperature", "a number from 0 to 2", "inf", "0.2"),
        ("temperature = -1", "temperature", "a number from 0 to 2", "-1", "0.2"),
        ("chunk_tokens = -50", "chunk_tokens", "a whole number from 32 to 2048", "-50", "200"),
        ("chunk_overlap = -1", "chunk_overlap", "a whole number from 0 to 1024", "-1", "40"),
        ("context_size = 0", "context_size", "a whole number from 512 to 131072", "0", "4096"),
        (
            "max_answer_tokens = 0",
            "max_answer_tokens",
            "a whole number from 1 to 32768",
            "0",
            "512",
        ),
        ("gpu_layers = -2", "gpu_layers", "a whole number from -1 to 999", "-2", "-1"),
        ("debug_logging = 1", "debug_logging", "true or false", "1", "false"),
        ('only_from_documents = "no"', "only_from_documents", "true or false", "'no'", "true"),
        ("llm_path = 5", "llm_path", "text in quotes", "5", "the default"),
    ],
)
def test_a_bad_value_is_named_and_its_default_used(home, line, key, must_be, it_is, uses):
    write(home, f"{line}\nsources_other_version = 3\n")  # an unknown key: ignored
    settings = load_settings(home)
    assert getattr(settings, key) == getattr(Settings(), key)
    assert settings.problems == (
        f"{home / 'settings.toml'}: '{key}' must be {must_be} (it is {it_is}); "
        f"Confidant uses {uses} until it is fixed.",
    )


def test_good_values_are_kept_and_problems_are_never_saved(home):
    write(home, "sources = 20\ntemperature = 0\nchunk_tokens = 32\nchunk_overlap = 0\nsources = 3")
    with pytest.raises(SettingsError):  # a key twice is not TOML
        load_settings(home)
    write(home, "sources = 20\ntemperature = 0\nchunk_tokens = 32\nchunk_overlap = 0\n")
    settings = load_settings(home)
    assert (settings.sources, settings.temperature, settings.chunk_tokens) == (20, 0.0, 32)
    assert settings.problems == () and isinstance(settings.temperature, float)
    write(home, "sources = -3\n")
    bad = load_settings(home)
    save_settings(home, bad)
    assert "problems" not in (home / "settings.toml").read_text()
    assert load_settings(home) == Settings() and load_settings(home).problems == ()


def test_an_overlap_as_large_as_the_passage_is_refused(home):
    write(home, "chunk_tokens = 100\nchunk_overlap = 100\n")
    settings = load_settings(home)
    assert (settings.chunk_tokens, settings.chunk_overlap) == (100, 20)
    assert "'chunk_overlap' must be smaller than 'chunk_tokens'" in settings.problems[0]


def test_temperature_nan_never_reaches_the_model(home):
    write(home, "temperature = nan\n")
    assert not math.isnan(load_settings(home).temperature)


def test_a_settings_file_that_is_not_utf8_names_itself_and_the_byte(home):
    home.mkdir()
    (home / "settings.toml").write_bytes(b"# r\xe9glages\nsources = 3\n")
    with pytest.raises(SettingsError) as info:
        load_settings(home)
    assert str(info.value) == (
        f"{home / 'settings.toml'}: is not UTF-8 text (byte 0xe9 at position 3), so its "
        "settings cannot be read. Open it in a text editor and save it as UTF-8, or delete it "
        "to go back to the defaults."
    )


def test_the_cli_says_each_refused_value_once_and_goes_on(home, capsys):
    write(home, 'sources = -3\nllm_path = "\\u001b[2J"\n')
    assert main(["list"]) == 0
    err = capsys.readouterr().err
    assert err.count("confidant: note: ") == 1
    assert "'sources' must be a whole number from 1 to 20 (it is -3); Confidant uses 5" in err
    (home / "settings.toml").write_bytes(b"sources = '\xff'\n")
    assert main(["list"]) == 2
    assert "is not UTF-8 text (byte 0xff" in capsys.readouterr().err


# --------------------------------------------------------------------------- the data folder
def test_a_folder_confidant_creates_is_private(home):
    assert stat.S_IMODE(data_dir().stat().st_mode) == 0o700


def test_an_existing_folder_keeps_its_permissions(home):
    home.mkdir()
    os.chmod(home, 0o1777)  # e.g. CONFIDANT_HOME=/tmp
    assert data_dir() == home
    assert stat.S_IMODE(home.stat().st_mode) == 0o1777
    save_settings(home, Settings())  # what Confidant writes there is its own
    assert stat.S_IMODE((home / "settings.toml").stat().st_mode) == 0o600


def test_a_read_only_data_folder_is_named_as_such(home, monkeypatch, capsys):
    home.mkdir()
    real_access = os.access  # root, running the tests, may write anywhere: answer as a user

    def access(path, mode, **kw):
        return False if str(path) == str(home) and mode & os.W_OK else real_access(path, mode)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(DataDirError) as info:
        data_dir()
    assert str(info.value).startswith(
        f"Confidant cannot write to its data folder {home} (read-only): make it writable"
    )
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert f"cannot write to its data folder {home} (read-only)" in err
    assert "cannot be created" not in err


def test_a_file_in_the_way_of_the_data_folder_is_named(home, capsys):
    home.write_text("not a folder")
    with pytest.raises(DataDirError, match="a file of that name is in the way"):
        data_dir()
