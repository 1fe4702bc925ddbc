"""IT ships a model: the installers' --model option puts it where the machine settings point.

The .deb build itself (PyInstaller, minutes) is not run here; layout.py's answers, which the
build script uses, and each script's handling of the option are checked."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from tests.packaging import REPO
from tests.packaging.test_layout import layout


def test_the_model_lands_outside_the_bundle_and_the_settings_point_at_it():
    target = layout.shipped_model_path("/srv/it/Llama-3.1-8B-Instruct-Q4_K_M.gguf")
    assert target == "/usr/share/confidant/models/Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    assert not target.startswith(layout.LINUX_PREFIX)
    settings = tomllib.loads(layout.machine_settings_text(target))
    assert settings == {"llm_path": target}
    # a path with quotes or backslashes stays one TOML string
    odd = 'C:\\Models\\a "b".gguf'
    assert tomllib.loads(layout.machine_settings_text(odd))["llm_path"] == odd
    with pytest.raises(ValueError):
        layout.shipped_model_path("/srv/it/model.bin")


def test_layout_answers_the_build_script():
    run = [sys.executable, str(REPO / "packaging/layout.py")]
    out = subprocess.run([*run, "model-target", "/x/M-Q4_K_M.gguf"], capture_output=True, text=True)
    assert out.stdout.strip() == "/usr/share/confidant/models/M-Q4_K_M.gguf"
    bad = subprocess.run([*run, "model-target", "/x/M.bin"], capture_output=True, text=True)
    assert bad.returncode != 0
    path = subprocess.run([*run, "machine-settings-path"], capture_output=True, text=True)
    assert path.stdout.strip() == "/etc/confidant/settings.toml"


@pytest.mark.parametrize("script", ["packaging/build-linux.sh", "packaging/macos/make-dmg.sh"])
def test_scripts_refuse_a_wrong_option_before_building(script):
    out = subprocess.run(
        ["bash", str(REPO / script), "--modle", "x"], capture_output=True, text=True
    )
    assert out.returncode == 2 and "unknown option" in out.stderr


def test_build_linux_refuses_a_file_that_is_not_a_model(tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_text("not a model")
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)}
    out = subprocess.run(
        ["bash", str(REPO / "packaging/build-linux.sh"), "--model", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 1 and "not a GGUF model" in out.stderr
    assert "freezing" not in out.stdout  # refused before any work


def test_the_deb_marks_the_settings_as_a_conffile_and_ci_ships_no_model():
    script = (REPO / "packaging/build-linux.sh").read_text()
    assert 'echo "$SETTINGS" >"$ROOT/DEBIAN/conffiles"' in script
    assert "--model" not in (REPO / "packaging/ci-smoke.sh").read_text()
    iss = (REPO / "packaging/windows/confidant.iss").read_text()
    assert "#ifdef ModelFile" in iss and "{commonappdata}\\Confidant\\models" in iss
    assert "if not FileExists(Settings)" in iss  # IT's own settings file is never overwritten
