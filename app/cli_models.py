"""`confidant models`: the chat models on this computer, and opt-in downloads of curated ones.

confidant models [--json]             what is here and whether it fits the graphics card
confidant models available [--json]   the curated list that can be downloaded
confidant models download NAME        fetch one (resumable, checked), if IT allows downloads
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

GB = 1e9


def add_parser(sub) -> None:
    s = sub.add_parser("models", help="chat models on this computer; download a curated one")
    s.add_argument("--json", action="store_true")
    ms = s.add_subparsers(dest="models_command")
    a = ms.add_parser("available", help="the curated models that can be downloaded")
    a.add_argument("--json", action="store_true")
    d = ms.add_parser("download", help="download a curated model (see `models available`)")
    d.add_argument("name", help="its id or its file name")
    d.add_argument("--use", action="store_true", help="then make it the chat model in settings")


def run(args, home: Path, user_error) -> int:
    from app.config import load_settings

    settings = load_settings(home)
    command = getattr(args, "models_command", None)
    if command == "available":
        return _available(args, settings)
    if command == "download":
        return _download(args, home, settings, user_error)
    return _list(args, home, settings)


def _fmt_size(n: int) -> str:
    return f"{n / GB:.1f} GB" if n >= 0.1 * GB else f"{n / 1e6:.0f} MB"


def local_catalog(home: Path, settings):
    """The scan the window and the command line share: the model in the settings first, then
    Confidant's downloads, the other apps' folders, and the embedded model last."""
    from app.config import default_llm_path
    from app.core.downloads import downloads_dir
    from app.core.model_catalog import scan

    extra: list[tuple[Path, str]] = []
    if settings.llm_path:
        extra.append((Path(settings.llm_path).expanduser(), "in Settings"))
    folder = downloads_dir(home)
    with contextlib.suppress(OSError):
        extra += [(p, "downloaded") for p in sorted(folder.glob("*.gguf"))]
    return scan(n_ctx=settings.context_size, extra=extra, embedded=default_llm_path())


def _list(args, home: Path, settings) -> int:
    from app.core.model_catalog import params_words

    catalog = local_catalog(home, settings)
    if args.json:
        print(json.dumps(catalog.to_json(), indent=2))
        return 0
    mem = catalog.memory
    gpu = (
        f"{mem.gpu_name}, {mem.gpu_free / GB:.1f} GB free"
        if mem.gpu_usable
        else (f"{mem.gpu_name} (this build of llama.cpp cannot use it)" if mem.gpu_name else "none")
    )
    print(f"Graphics card: {gpu}; memory: {mem.ram_available / GB:.1f} GB free")
    if not catalog.models:
        print("No chat model found.")
    for e in catalog.models:
        current = " (in use)" if _same(e.path, settings.llm_path) else ""
        print(f"\n{e.name}{current}")
        if e.problem:
            print(f"  {e.problem}")
        else:
            template = "" if e.chat_template else ", no chat template"
            print(
                f"  {e.family} {params_words(e.params)} {e.quant}, {_fmt_size(e.size_bytes)}, "
                f"{e.n_ctx_train:,} tokens trained{template}: {e.fit_words()}"
            )
        print(f"  {e.source}: {e.path}")
    note = " (stopped looking after the time limit)" if catalog.cut_short else ""
    print(f"\nLooked in {catalog.seconds:.2f} s{note}.", file=sys.stderr)
    return 0


def _same(path: Path, setting: str) -> bool:
    from app.config import default_llm_path

    target = Path(setting).expanduser() if setting else default_llm_path()
    try:
        return target is not None and path.resolve() == target.resolve()
    except OSError:
        return False


def _available(args, settings) -> int:
    from app.core.downloads import load_catalog, policy

    entries = load_catalog()
    allowed, why = policy(settings)
    if args.json:
        out = [
            {
                "id": e.id,
                "name": e.name,
                "file": e.file,
                "size_bytes": e.size,
                "good_for": e.good_for,
                "licence": e.licence,
                "sha256": e.sha256 or None,
            }
            for e in entries
        ]
        print(json.dumps({"models": out, "downloads_allowed": allowed}, indent=2))
        return 0
    for e in entries:
        hash_note = "" if e.sha256 else " [no checksum yet: cannot be downloaded]"
        print(f"{e.id}\n  {e.name}, {_fmt_size(e.size)}{hash_note}\n  {e.good_for}")
    if not allowed:
        print(f"\n{why}")
    return 0


def _download(args, home: Path, settings, user_error) -> int:
    from app.config import save_settings
    from app.core.downloads import DownloadError, download, find_entry, policy

    allowed, why = policy(settings)
    if not allowed:
        raise user_error(why)
    entry = find_entry(args.name)
    if entry is None:
        raise user_error(
            f"no model called '{args.name}' in the list; `confidant models available` shows it."
        )
    last = [-1]

    def progress(done: int, total: int) -> None:
        pct = int(done * 100 / total) if total else 0
        if pct != last[0]:
            last[0] = pct
            print(f"\r{entry.file}: {pct}% of {_fmt_size(total)}", end="", file=sys.stderr)

    try:
        path = download(entry, home, settings, progress=progress)
    except DownloadError as exc:
        print(file=sys.stderr)
        raise user_error(str(exc)) from None
    print(file=sys.stderr)
    print(path)
    if args.use:
        if "llm_path" in settings.locked:
            raise user_error("downloaded, but your IT department has set the chat model.")
        save_settings(home, settings.with_changes(llm_path=str(path)))
        print("It is now the chat model.", file=sys.stderr)
    return 0
