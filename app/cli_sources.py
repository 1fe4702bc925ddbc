"""`confidant sync` and `confidant sources`: folders kept in sync (app/core/sources.py).

    confidant sync [--prune] [--json]     reconcile every remembered folder once
    confidant sources [--json]            list them
    confidant sources remove DIR          forget one, and its documents

sync's JSON is ingest's, with `moved` (and its `from`) and `removed` statuses, and the folders'
states: {"files": [{"path", "status", "chunks", "error"[, "from"]}], "sources": [{"path",
"state", "files", "message", "last_sync"}], "seconds"}. Exit 0 when nothing failed and no
folder is missing (offline ones are a passing state), else 1.
"""

from __future__ import annotations

import json
import sys
import time

from app.core.paths import display
from app.core.status import DocStatus

EXIT_OK, EXIT_FAILED = 0, 1


def add_parsers(sub) -> None:
    s = sub.add_parser("sync", help="bring the library in line with its folders (cron-friendly)")
    s.add_argument(
        "--prune",
        action="store_true",
        help="also remove the documents of folders that are missing (deleted on purpose)",
    )
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("sources", help="folders kept in sync ('sources remove DIR' forgets one)")
    s.add_argument("action", nargs="?", choices=("list", "remove"), default="list")
    s.add_argument("folder", nargs="?")
    s.add_argument("--json", action="store_true")


def cmd_sync(services, args) -> int:
    from app.core.cancel import CancelToken
    from app.core.events import FileDone, IngestStarted
    from app.core.sources import FileMoved, SourceChecked, SyncFinished, reconcile

    token = CancelToken()
    files: list = []
    checked: dict[str, SourceChecked] = {}
    finished = None
    total = 0
    quiet = args.json
    ingestor = services.ingestor()
    if not services.library.sources():
        if args.json:
            print(json.dumps({"files": [], "sources": [], "seconds": 0.0}))
        print(
            "confidant: no folders to sync. Add one with 'confidant ingest FOLDER'.",
            file=sys.stderr,
        )
        return EXIT_OK
    try:
        for event in reconcile(services.library, ingestor, token, prune=args.prune):
            if isinstance(event, SourceChecked):
                checked[event.path] = event
                if not quiet and event.message:
                    print(f"{event.state}: {display(event.message)}", file=sys.stderr)
            elif isinstance(event, FileMoved):
                files.append(event)
                if not quiet:
                    print(
                        f"moved: {display(event.old_path)} -> {display(event.path)}",
                        file=sys.stderr,
                    )
            elif isinstance(event, IngestStarted):
                total = event.total
            elif isinstance(event, FileDone):
                files.append(event)
                if not quiet and event.status not in ("unchanged",):
                    detail = event.error or (f"{event.chunks} chunks" if event.chunks else "")
                    n = f"[{total}] " if total else ""
                    print(
                        f"{n}{event.status}: {display(event.path)}"
                        + (f": {display(detail)}" if detail else ""),
                        file=sys.stderr,
                    )
            elif isinstance(event, SyncFinished):
                finished = event
    except KeyboardInterrupt:
        token.cancel()
        print("confidant: sync stopped; the next sync finishes it.", file=sys.stderr)
        return 130
    failed = any(f.status == DocStatus.FAILED for f in files)
    missing = any(c.state == "missing" for c in checked.values()) and not args.prune
    if args.json:
        print(
            json.dumps(
                {
                    "files": [_file_json(f) for f in files],
                    "sources": [_source_json(s) for s in finished.sources],
                    "seconds": round(finished.seconds, 3),
                }
            )
        )
    else:
        counts = finished.counts if finished else {}
        summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "nothing to do"
        print(f"{summary} in {finished.seconds:.1f} s", file=sys.stderr)
    return EXIT_FAILED if failed or missing else EXIT_OK


def cmd_sources(services, args) -> int:
    from app.core.sources import find_source, forget

    library = services.library
    if args.action == "remove":
        if not args.folder:
            from app.cli import UserError

            raise UserError("name the folder to forget: confidant sources remove FOLDER")
        source = find_source(library, args.folder)
        if source is None:
            print(
                f"confidant: '{display(args.folder)}' is not a folder kept in sync "
                "(see 'confidant sources').",
                file=sys.stderr,
            )
            return EXIT_FAILED
        n = sum(1 for _ in forget(library, source.path))
        print(
            f"forgot {display(source.path)} and removed {n} document{'s' if n != 1 else ''} "
            "(the files themselves stay where they are)",
            file=sys.stderr,
        )
        return EXIT_OK
    sources = library.sources()
    if args.json:
        print(json.dumps({"sources": [_source_json(s) for s in sources]}))
        return EXIT_OK
    if not sources:
        print(
            "No folders are kept in sync. Add one with 'confidant ingest FOLDER'.", file=sys.stderr
        )
    for s in sources:
        when = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(s.last_sync)) if s.last_sync else "never"
        )
        paused = ", paused" if s.paused else ""
        print(f"{s.state:<8} {s.files:>6} documents  synced {when}{paused}  {display(s.path)}")
        if s.message:
            print(f"         {display(s.message)}")
    return EXIT_OK


def _file_json(f) -> dict:
    out = {
        "path": display(f.path),
        "status": f.status,
        "chunks": f.chunks,
        "error": getattr(f, "error", None) and display(f.error),
    }
    if hasattr(f, "old_path"):
        out["from"] = display(f.old_path)
    return out


def _source_json(s) -> dict:
    return {
        "path": display(s.path),
        "state": s.state,
        "files": s.files,
        "message": display(s.message) if s.message else None,
        "last_sync": s.last_sync,
        "paused": s.paused,
    }
