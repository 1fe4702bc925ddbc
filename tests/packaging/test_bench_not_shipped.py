"""Benchmarks are a development checkout's: the wheel's packages and the bundle leave bench/ out."""

from __future__ import annotations

import tomllib

from setuptools import find_packages

from tests.packaging import REPO
from tests.packaging.test_layout import layout


def test_the_installed_packages_leave_bench_out():
    with open(REPO / "pyproject.toml", "rb") as fh:
        find = tomllib.load(fh)["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(where=str(REPO), **find)
    assert "app" in packages and "app.core" in packages and "app.gui" in packages
    assert not [p for p in packages if p.split(".")[0] != "app"], packages
    assert (REPO / "bench" / "cli.py").is_file()  # it is there to be left out


def test_the_bundle_leaves_bench_and_its_question_sets_out():
    spec = (REPO / "packaging" / "confidant.spec").read_text(encoding="utf-8")
    assert 'collect_submodules("bench")' not in spec
    assert "bench" in layout.EXCLUDE_MODULES
    shipped = layout.bundle_paths()
    assert f"{layout.CONTENTS_DIR}/resources/sample/brindle-point.md" in shipped
    assert not [p for p in shipped if "/resources/bench" in p]
