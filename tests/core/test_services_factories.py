"""Services makes its embedder and library through the factories it is given, on first use, and
again only when the settings that choose them change. No model is loaded."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from app.services import Services


class _Made:
    def __init__(self, *args) -> None:
        self.args = args
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_the_embedder_comes_from_its_factory_and_again_after_a_new_folder(tmp_path):
    made = []

    def factory(path):
        made.append(_Made(path))
        return made[-1]

    services = Services(tmp_path, Settings(), embedder_factory=factory)
    assert made == []  # nothing before first use
    first = services.embedder
    assert services.embedder is first and len(made) == 1  # made once
    services.apply_settings(Settings(chunk_tokens=120))
    assert services.embedder is first  # same folder: kept
    services.apply_settings(Settings(embedder_path=str(tmp_path / "other")))
    assert services.embedder is not first and made[-1].args == (tmp_path / "other",)


def test_the_library_comes_from_its_factory_and_again_after_a_switch_to_team_mode(tmp_path):
    made = []

    def factory(home, settings):
        made.append(_Made(Path(home), settings.library_server))
        return made[-1]

    services = Services(tmp_path, Settings(), library_factory=factory)
    library = services.library
    assert services.library is library and library.args == (tmp_path, "")
    assert not (tmp_path / "library.sqlite3").exists()  # the real library was never opened
    services.apply_settings(Settings(library_server="https://chroma.example:8000"))
    assert library.closed
    assert services.library.args == (tmp_path, "https://chroma.example:8000")
    services.close()
    assert made[-1].closed
