"""`confidant doctor`: what IT needs to know when something does not work."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import platform
import sys
import tempfile
from pathlib import Path

from app.config import default_embedder_path, default_llm_path, load_settings, machine_settings_path


def _version(name: str) -> str:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "not installed"


def qt_summary() -> str:
    """PySide6's version, whichever distribution installed it: the full PySide6 wheel, or
    PySide6-Essentials alone (what Confidant needs; the window runs with either)."""
    for dist in ("PySide6", "PySide6-Essentials"):
        version = _version(dist)
        if version != "not installed":
            return version if dist == "PySide6" else f"{version} (PySide6-Essentials)"
    if importlib.util.find_spec("PySide6") is not None:  # installed some other way
        return "installed (version unknown)"
    return "not installed: the window cannot start (the command line works)"


def _size(path: Path | None) -> str:
    if path is None or not path.exists():
        return "missing"
    if path.is_dir():
        total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    else:
        total = path.stat().st_size
    return f"{total / 1e6:.0f} MB"


def pdf_reader_summary() -> str:
    """Which engine reads PDFs: PDFium (fast, the viewer's own) or pypdf alone (slow)."""
    try:
        import pypdfium2

        pypdfium2.PdfDocument.new().close()  # loads libpdfium: a missing library fails here
        return f"PDFium {pypdfium2.PDFIUM_INFO.build} (pypdf for files PDFium refuses)"
    except Exception as exc:
        return (
            f"pypdf only: PDFium is unusable ({type(exc).__name__}), so PDFs are read about "
            "15x slower. Reinstall Confidant."
        )


def gpu_summary() -> str:
    """'GPU offload: yes (NVIDIA ...)' or a plain statement that the CPU will be used, and why."""
    from app.core.llm_process import gpu_offload_supported_isolated

    offload = gpu_offload_supported_isolated()
    name = None
    try:
        import torch

        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
    except Exception:
        pass
    if offload:
        return f"yes{f' ({name})' if name else ''}"
    if name:
        return (
            f"no: a GPU ({name}) is present but this llama-cpp-python was built without CUDA; "
            "models run on the CPU"
        )
    return "no: no usable NVIDIA GPU/driver found; models run on the CPU"


def run_doctor(home: Path) -> int:
    lines = [
        ("Confidant", _version("confidant")),
        ("Python", sys.version.split()[0]),
        ("Platform", platform.platform()),
    ]
    for pkg in (
        "llama_cpp_python",
        "chromadb",
        "sentence-transformers",
        "torch",
        "pypdf",
        "pypdfium2",
        "python-docx",
    ):
        lines.append((pkg, _version(pkg)))
    lines.append(("PySide6", qt_summary()))
    lines.append(("PDF reader", pdf_reader_summary()))
    lines.append(("GPU offload", gpu_summary()))
    try:
        settings = load_settings(home)
        settings_note = "; ".join(settings.problems) if settings.problems else "ok"
    except Exception as exc:
        settings, settings_note = None, str(exc)
    llm = Path(settings.llm_path) if settings and settings.llm_path else default_llm_path()
    emb = (
        Path(settings.embedder_path)
        if settings and settings.embedder_path
        else default_embedder_path()
    )
    lines.append(("Chat model", f"{llm} ({_size(llm)})"))
    lines.append(("Embedding model", f"{emb} ({_size(emb)})"))
    writable = os.access(home, os.W_OK)
    try:
        with tempfile.NamedTemporaryFile(dir=home):
            pass
    except OSError:
        writable = False
    mode = oct(home.stat().st_mode & 0o777)
    lines.append(
        ("Data directory", f"{home} ({'writable' if writable else 'NOT writable'}, mode {mode})")
    )
    lines.append(("Settings", settings_note))
    lines.append(
        (
            "Machine settings",
            f"{machine_settings_path()} "
            f"({'present' if machine_settings_path().exists() else 'none'})",
        )
    )
    health = library_health(home)
    lines.extend(health)
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    ok = writable and llm is not None and llm.exists() and emb is not None and emb.exists()
    damaged = [key for key, value in health if value.startswith("DAMAGED")]
    if "Library" in damaged:
        from app.core.store_health import REPAIR_HINT

        print(f"\n{REPAIR_HINT}")
    elif damaged:
        print(f"\n{CHATS_HINT}")
    return 0 if ok and not damaged else 1


CHATS_HINT = (
    "The chats file is damaged: the next start of Confidant (or 'confidant repair') keeps it "
    "aside and starts an empty one. Your library and settings are not affected."
)


def library_health(home: Path) -> list[tuple[str, str]]:
    """The library's and the chats' state from their files (store_health.py): 'ok', or
    'DAMAGED: what'. Chroma is not started, so a damaged store cannot crash the doctor."""
    from app.core.store_health import check

    try:
        report = check(home)
    except Exception as exc:  # the doctor reports; it never fails on what it examines
        return [("Library", f"DAMAGED: it could not be checked ({type(exc).__name__}: {exc})")]
    library = (
        "ok"
        if not report.library
        else "DAMAGED: " + "; ".join(d.sentence() for d in report.library)
    )
    chats = (
        "ok" if not report.chats else "DAMAGED: " + "; ".join(d.sentence() for d in report.chats)
    )
    return [("Library", library), ("Chats", chats)]
