"""`confidant bench` lives in bench/ beside app/: found in a development checkout from any folder,
refused in words where it is not there, and never imported by the product's other commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # bench must be found by app/cli.py, not by the test's path
    return env


def test_bench_help_works_from_a_checkout_in_any_folder(tmp_path):
    # -I: neither the working folder nor PYTHONPATH is on sys.path; app comes from the install
    done = subprocess.run(
        [sys.executable, "-I", "-m", "app", "bench", "--help"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: confidant bench")
    for option in ("--ingest DIR", "--generate", "--sync", "--team"):
        assert option in done.stdout


def test_an_install_without_bench_says_so_without_a_traceback(tmp_path, monkeypatch, capsys):
    from app import cli

    installed = tmp_path / "site-packages" / "app"  # an app/ with no bench/ beside it
    installed.mkdir(parents=True)
    monkeypatch.setattr(cli, "__file__", str(installed / "cli.py"))

    assert cli.main(["bench", "--sync", "20"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("confidant: the benchmarks come with a development checkout")
    assert "Traceback" not in err


def test_other_commands_never_import_bench():
    code = (
        "import sys\n"
        "import bench  # importable here (the checkout is the working folder) ...\n"
        "del sys.modules['bench']\n"
        "from app.cli import build_parser, main\n"
        "p = build_parser()\n"
        "for argv in (['list', '--json'], ['search', 'tides', '-k', '3'], ['ingest', 'a.pdf'],\n"
        "             ['sync'], ['models'], ['repair', '--json'], []):\n"
        "    p.parse_known_args(argv)\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'bench'))  # ... not imported\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_unknown_options_of_other_commands_are_still_refused(capsys):
    from app.cli import main

    try:
        main(["list", "--sync", "20"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("an unknown option was accepted")
    assert "unrecognized arguments: --sync 20" in capsys.readouterr().err
