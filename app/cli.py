"""`confidant`: the window with no arguments; subcommands for IT and scripts.

Every failure a user can cause ends in one plain sentence on stderr and a non-zero exit code,
never a traceback. Output formats (--json) are relied on by scripts: see the README.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from app.config import SettingsError, data_dir, isolate_from_network
from app.core.paths import display
from app.core.safe_text import snippet
from app.core.status import DocStatus

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DAMAGED = 0, 1, 2, 3


class UserError(Exception):
    """A problem the user can fix; printed as-is, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="confidant", description="Private chat with your documents.")
    p.add_argument(
        "--self-test",
        action="store_true",
        help="ingest the bundled sample, ask about it with the embedded model, exit 0 if cited",
    )
    sub = p.add_subparsers(dest="command")

    s = sub.add_parser(
        "ingest",
        help="add files or folders to the library (with none: finish what an earlier run left)",
    )
    s.add_argument("paths", nargs="*")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("search", help="find passages")
    s.add_argument("query")
    s.add_argument("-k", type=int, default=5)
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("ask", help="answer a question from your documents, with sources")
    s.add_argument("question")
    s.add_argument("--model", help="a GGUF file to use instead of the one in the settings")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("list", help="documents in the library")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("remove", help="remove documents from the library")
    s.add_argument("paths", nargs="+")

    sub.add_parser(
        "reindex",
        help="re-read every document after a change of embedding model or passage size",
    )
    sub.add_parser("doctor", help="versions, GPU support, models and data directory")
    from app.cli_models import add_parser as add_models_parser

    add_models_parser(sub)

    s = sub.add_parser(
        "repair",
        help="rebuild a damaged library from the documents' files (chats and settings are kept)",
    )
    s.add_argument("--json", action="store_true")

    from app.cli_sources import add_parsers as add_source_parsers

    add_source_parsers(sub)  # sync, sources

    # Its options belong to bench/cli.py, read only when `bench` is the command (main()).
    sub.add_parser(
        "bench",
        help="measure ingestion, retrieval and generation speed (a development checkout)",
        add_help=False,
    )
    return p


def main(argv: list[str] | None = None) -> int:
    isolate_from_network()
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_argv = rest  # parsed by bench/cli.py's own parser
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command is None and not args.self_test:
        return _open_window()
    try:
        return _dispatch(args)
    except UserError as exc:
        print(f"confidant: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("confidant: stopped.", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or the system: words on screen, the traceback in a file
        from app.core.errors import describe
        from app.core.store_health import DiskFull, LibraryDamaged, explain

        known = _explain_store_error(exc, explain)
        if isinstance(known, LibraryDamaged):
            print(f"confidant: {known}", file=sys.stderr)
            return EXIT_DAMAGED
        if isinstance(known, DiskFull):
            print(f"confidant: {known}", file=sys.stderr)
            return EXIT_FAILED

        print(
            f"confidant: {args.command or 'self-test'} stopped by an unexpected error: "
            f"{describe(exc)} Nothing already in the library is lost; run the same command "
            f"again to finish.{_keep_traceback()}",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _explain_store_error(exc: Exception, explain):
    """A damaged library or a full disk behind `exc`, in words (store_health.explain)."""
    try:
        return explain(exc, data_dir())
    except Exception:  # the explanation must never hide the error itself
        return None


def _keep_traceback() -> str:
    """Write the traceback being handled to the data dir; returns where, for the message."""
    import traceback

    try:
        path = data_dir() / "last-error.txt"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(traceback.format_exc())
    except OSError:
        return ""
    return f" (Details for support: {path}.)"


def make_services(home: Path, model_override: str | None = None):
    """The commands' Services. Tests swap this one function for theirs, which builds Services
    with their own factories (the session's loaded models), instead of patching classes."""
    from app.services import Services

    return Services(home, model_override=model_override)


def _bench_cli():
    """bench/cli.py of the checkout this app/ was run from; the benchmarks are not installed."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "bench" / "cli.py").is_file() or not (root / "pyproject.toml").is_file():
        raise UserError(
            "the benchmarks come with a development checkout of Confidant (bench/ beside app/); "
            "this installation has none."
        )
    if str(root) not in sys.path:
        sys.path.append(str(root))
    from bench import cli

    return cli


def _dispatch(args) -> int:
    from app.core.embedding import EmbedderError
    from app.core.instance import AlreadyRunning, InstanceLock
    from app.core.library import EmbedderMismatch

    if args.command == "bench":  # measures in its own temporary libraries
        bench_cli = _bench_cli()
        return bench_cli.run_bench(bench_cli.build_parser().parse_args(args.bench_argv))
    from app.config import DataDirError

    try:
        home = data_dir()
    except DataDirError as exc:
        if args.command == "doctor" and exc.path.is_dir():  # the doctor says it, among the rest
            from app.doctor import run_doctor

            return run_doctor(exc.path)
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"the data directory cannot be created ({exc}).") from exc
    if args.command == "doctor":
        from app.doctor import run_doctor

        return run_doctor(home)
    _say_settings_problems(home)
    if args.command == "models":  # reads model headers and settings; no library, no lock
        from app.cli_models import run as run_models

        try:
            return run_models(args, home, UserError)
        except SettingsError as exc:
            raise UserError(str(exc)) from None
    try:
        lock = InstanceLock(home, args.command or "self-test").acquire()
    except AlreadyRunning as exc:
        raise UserError(str(exc)) from None
    try:
        services = make_services(home, getattr(args, "model", None))
        try:
            if args.self_test:
                from app.selftest import run_self_test

                return run_self_test(services)
            if args.command == "repair":
                return cmd_repair(services, args)
            if args.command in ("sync", "sources"):
                from app import cli_sources

                return getattr(cli_sources, f"cmd_{args.command}")(services, args)
            if args.command in ("search", "ask", "list", "remove"):
                # Finish what a crash left half-done (ingest does this itself, and reports it).
                services.library.recover()
            handler = {
                "ingest": cmd_ingest,
                "search": cmd_search,
                "ask": cmd_ask,
                "list": cmd_list,
                "remove": cmd_remove,
                "reindex": cmd_reindex,
            }[args.command]
            return handler(services, args)
        finally:
            services.close()
    except (SettingsError, EmbedderMismatch, EmbedderError) as exc:
        raise UserError(str(exc)) from None
    finally:
        lock.release()


def _say_settings_problems(home: Path) -> None:
    """Each value of the settings files that was refused (its default is used), once."""
    from app.config import load_settings

    try:
        problems = load_settings(home).problems
    except SettingsError:
        return  # a file that cannot be read at all stops the command itself, with its message
    for problem in problems:
        print(f"confidant: note: {display(problem)}", file=sys.stderr)


# --------------------------------------------------------------------------- commands
def cmd_ingest(services, args) -> int:
    from app.core.cancel import CancelToken
    from app.core.events import FileDone, IngestFinished, IngestStarted

    files, seconds, total, finished = [], 0.0, 0, None
    token = CancelToken()
    progress = _Progress(enabled=not args.json)
    ingestor = services.ingestor()
    services.library.check_embedder(ingestor.embedder.model_id)  # refused: nothing is queued
    # Absolute: the queue may be picked up later from another folder.
    given = [os.path.abspath(os.path.expanduser(p)) for p in args.paths]
    earlier = [p for p in ingestor.resumable() if p not in given]
    for path in earlier:
        progress.line(f"picking up '{display(path)}' (asked for earlier, not finished)")
    if not given and not earlier:
        if args.json:
            print(json.dumps({"files": [], "seconds": 0.0}))
        print("confidant: nothing left to add. Name files or folders to add.", file=sys.stderr)
        return EXIT_OK
    ingestor.queue(given)
    from app.core.sources import remember

    remember(services.library, given)  # folders are kept in sync from now on (confidant sync)
    paths = given + earlier
    events = ingestor.run(paths, token)
    try:
        for event in events:
            if isinstance(event, IngestStarted):
                total = event.total
                for path in event.interrupted:
                    progress.line(f"resuming '{display(path)}' (an earlier run was interrupted)")
            elif isinstance(event, FileDone):
                files.append(event)
                progress.file_done(event, len(files), total)
            elif isinstance(event, IngestFinished):
                finished, seconds = event, event.seconds
    except KeyboardInterrupt:
        token.cancel()
        events.close()  # the reader thread and the extraction worker stop here
        ingestor.forget(paths)  # stopped on purpose: not picked up next time
        stopped = _forget_stopped(services.library)
        for path in stopped:
            print(
                f"confidant: '{display(path)}' was not finished; add it again to read it.",
                file=sys.stderr,
            )
        print("confidant: ingestion stopped; files already added are kept.", file=sys.stderr)
        return 130
    failed = any(f.status == DocStatus.FAILED for f in files)
    if args.json:
        print(
            json.dumps(
                {
                    "files": [
                        {
                            "path": display(f.path),
                            "status": f.status,
                            "chunks": f.chunks,
                            "error": f.error and display(f.error),
                        }
                        for f in files
                    ],
                    "seconds": round(seconds, 3),
                }
            )
        )
    else:
        counts = finished.counts if finished else {}
        summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        print(f"{summary or 'nothing to do'} in {seconds:.1f} s", file=sys.stderr)
        for f in files:
            if f.status in (DocStatus.FAILED, DocStatus.SKIPPED):
                print(f"  {f.status}: {display(f.path)}: {display(f.error or '')}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _forget_stopped(library) -> list[str]:
    """The files Ctrl-C stopped halfway: what was written of them is dropped and they are
    marked cancelled (a version already in the library stays), so the next start does not
    resume them as if the computer had crashed. Returns their paths."""
    stopped = []
    for doc in library.documents():
        if doc.pending and doc.status != DocStatus.REMOVING:
            library.abandon_version(
                doc.id,
                doc.pending,
                DocStatus.CANCELLED,
                "Adding was stopped (Ctrl-C) before it finished.",
            )
            stopped.append(doc.path)
    return stopped


def cmd_search(services, args) -> int:
    if not args.query.strip():
        raise UserError("the search text is empty. Type what to look for.")
    retriever = services.retriever()
    hits = retriever.search(args.query, k=max(1, args.k))
    # The same decision `ask` makes in only-from-documents mode.
    verdict = retriever.judge(args.query, hits)
    if args.json:
        print(
            json.dumps(
                {
                    "hits": [_hit_json(h) for h in hits],
                    "answerable": verdict.answerable,
                    "relevance": verdict.as_dict(),
                }
            )
        )
        return EXIT_OK
    if not hits:
        print("No passages found. Add documents with 'confidant ingest PATH'.", file=sys.stderr)
    elif not verdict.answerable:
        print(NOT_MATCHING, file=sys.stderr)
    for n, h in enumerate(hits, start=1):
        print(f"[{n}] {_where(h)}  (score {h.score:.2f})\n    {snippet(h.text, 300)}")
    return EXIT_OK


NOT_MATCHING = (
    "Your documents do not seem to answer this; these are only the closest passages, "
    "and they do not match the question."
)


def _model_note(services) -> None:
    """What the model's load had to say (a chat template replaced by a standard one, a model
    too large for the GPU), once, on stderr: already escaped by the engine."""
    engine = getattr(services, "_engine", None)
    report = getattr(engine, "report", None)
    if report is not None and report.warning:
        print(f"confidant: note: {report.warning}", file=sys.stderr)


def cmd_ask(services, args) -> int:
    from app.core.cancel import CancelToken
    from app.core.events import AnswerDone, AnswerFailed, SourcesFound, TextPiece

    if not args.question.strip():
        raise UserError('the question is empty. Type a question, e.g. confidant ask "What is ...?"')
    if args.model:
        from app.core.gguf_check import ModelFileError, inspect_gguf

        try:
            inspect_gguf(args.model)
        except ModelFileError as exc:
            raise UserError(str(exc)) from None
    token = CancelToken()
    sources, closest, answerable, done = (), (), True, None
    try:
        for event in services.chat().ask(args.question, token):
            if isinstance(event, SourcesFound) and event.answerable:
                sources = event.sources
            elif isinstance(event, SourcesFound):
                closest, answerable = event.sources, False
            elif isinstance(event, TextPiece) and not args.json:
                sys.stdout.write(_terminal_safe(event.text))
                sys.stdout.flush()
            elif isinstance(event, AnswerFailed):
                raise UserError(event.message)
            elif isinstance(event, AnswerDone):
                done = event
    except KeyboardInterrupt:
        token.cancel()
        return 130
    _model_note(services)
    if args.json:
        st = done.stats
        print(
            json.dumps(
                {
                    "answer": done.answer,
                    "sources": [{"n": s.n, **_hit_json(s.hit)} for s in sources],
                    "answerable": answerable,
                    "closest": [_hit_json(s.hit) for s in closest],
                    "stats": {
                        "ttft_ms": st.ttft_ms,
                        "prompt_tokens": st.prompt_tokens,
                        "completion_tokens": st.completion_tokens,
                        "tokens_per_s": st.tokens_per_s,
                        "gpu_layers": st.gpu_layers,
                        "model": st.model,
                    },
                }
            )
        )
        return EXIT_OK
    print()
    if sources:
        print("\nSources:")
        for s in sources:
            print(f"  [{s.n}] {_where(s.hit)}: {snippet(s.hit.text, 120)}")
    elif closest:
        print("\nClosest passages (they do not match the question, and were not used):")
        for s in closest:
            print(f"  - {_where(s.hit)}: {snippet(s.hit.text, 120)}")
    if done and done.stats.completion_tokens:
        st = done.stats
        print(
            f"\n({st.model}: first token {st.ttft_ms:.0f} ms, {st.tokens_per_s:.0f} tokens/s, "
            f"{'CPU' if not st.gpu_layers else str(st.gpu_layers) + ' GPU layers'})",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_list(services, args) -> int:
    docs = services.library.documents()
    if args.json:
        print(
            json.dumps(
                {
                    "documents": [
                        {
                            "path": display(d.path),
                            "status": d.status,
                            "chunks": d.chunks,
                            "error": d.error,
                        }
                        for d in docs
                    ]
                }
            )
        )
        return EXIT_OK
    if not docs:
        print("The library is empty. Add documents with 'confidant ingest PATH'.", file=sys.stderr)
    for d in docs:
        extra = f"  ({display(d.error)})" if d.error else ""
        print(f"{d.status:<8} {d.chunks:>6} chunks  {display(d.path)}{extra}")
    return EXIT_OK


def cmd_remove(services, args) -> int:
    missing = 0
    for raw in args.paths:
        path = str(Path(raw).expanduser().resolve())
        if services.library.remove(path):
            print(f"removed {display(path)}", file=sys.stderr)
        else:
            missing += 1
            print(
                f"confidant: '{display(raw)}' is not in the library (see 'confidant list').",
                file=sys.stderr,
            )
    return EXIT_FAILED if missing else EXIT_OK


def cmd_reindex(services, args) -> int:
    paths = services.ingestor().start_reindex()
    args.paths, args.json = paths, False
    return cmd_ingest(services, args) if paths else EXIT_OK


def cmd_repair(services, args) -> int:
    """Set the damaged files aside and rebuild the library from its documents' files
    (app/core/repair.py); Ctrl-C keeps what was rebuilt, the rest stays queued."""
    from app.core.cancel import CancelToken
    from app.core.events import FileDone, IngestStarted
    from app.core.repair import RepairFinished, RepairStarted

    token = CancelToken()
    progress = _Progress(enabled=not args.json)
    files, begun, total, finished = [], None, 0, None
    try:
        for event in services.repair(token):
            if isinstance(event, RepairStarted):
                begun = event
                _say_repair_started(event, progress)
            elif isinstance(event, IngestStarted):
                total = event.total
            elif isinstance(event, FileDone):
                files.append(event)
                progress.file_done(event, len(files), total)
            elif isinstance(event, RepairFinished):
                finished = event
    except KeyboardInterrupt:
        token.cancel()
        print(
            "confidant: repair stopped; what was rebuilt is kept, and 'confidant repair' "
            "finishes the rest.",
            file=sys.stderr,
        )
        return 130
    failed = [f for f in files if f.status == DocStatus.FAILED]
    missing = list(finished.missing) if finished else []
    if args.json:
        print(
            json.dumps(
                {
                    "damaged": [d.as_dict() for d in begun.damaged] if begun else [],
                    "kept_in": str(begun.kept_in) if begun and begun.kept_in else None,
                    "chats_reset": bool(begun and begun.chats_reset),
                    "source": begun.source if begun else "",
                    "files": [
                        {
                            "path": display(f.path),
                            "status": f.status,
                            "chunks": f.chunks,
                            "error": f.error and display(f.error),
                        }
                        for f in files
                    ],
                    "missing": [display(p) for p in missing],
                    "seconds": round(finished.seconds, 3) if finished else 0.0,
                }
            )
        )
    elif begun and not begun.damaged and not begun.paths:
        print("The library is healthy: nothing to repair.", file=sys.stderr)
    elif begun and not begun.paths:
        print("The library itself needed no rebuilding.", file=sys.stderr)
    else:
        counts = finished.counts if finished else {}
        summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "nothing to read"
        print(f"Rebuilt: {summary} in {finished.seconds:.1f} s.", file=sys.stderr)
        for f in failed:
            print(f"  failed: {display(f.path)}: {display(f.error or '')}", file=sys.stderr)
        for p in missing:
            print(f"  not found (cannot be rebuilt): {display(p)}", file=sys.stderr)
    return EXIT_FAILED if failed or missing else EXIT_OK


def _say_repair_started(event, progress: _Progress) -> None:
    for d in event.damaged:
        progress.line(f"damaged: {d.sentence()}")
    if event.kept_in:
        progress.line(f"the damaged files are kept in {event.kept_in}")
    if event.chats_reset:
        progress.line(
            "your chats could not be read: they are kept there too; new chats start empty"
        )
    if event.source:
        progress.line(f"documents found in {event.source}: {len(event.paths)} to read again")
    elif event.paths:
        progress.line(f"finishing {len(event.paths)} file(s) an earlier run did not")
    for p in event.missing:
        progress.line(f"not found, cannot be rebuilt: {display(p)}")


# --------------------------------------------------------------------------- helpers
class _Progress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and True
        self.started = time.perf_counter()

    def line(self, text: str) -> None:
        if self.enabled:
            print(text, file=sys.stderr)

    def file_done(self, event, n: int, total: int) -> None:
        if self.enabled:
            elapsed = time.perf_counter() - self.started
            eta = elapsed / n * (total - n) if n else 0
            detail = (
                f"{event.chunks} chunks"
                if event.status in ("added", "replaced")
                else (event.error or event.status)
            )
            print(
                f"[{n}/{total}, ETA {eta:.0f} s] {event.status}: "
                f"{display(Path(event.path).name)}: {display(detail)}",
                file=sys.stderr,
            )


def _hit_json(hit) -> dict:
    """A passage as scripts read it: page 1-based, or null for formats without pages. A name
    that is not valid UTF-8 shows its undecodable bytes as \\xNN (JSON holds only text)."""
    return {"path": display(hit.path), "page": hit.page, "score": hit.score, "text": hit.text}


def _where(hit) -> str:
    name = display(Path(hit.path).name)
    return f"{name}, page {hit.page}" if hit.page is not None else name


def _terminal_safe(text: str) -> str:
    """Streamed answer text with line breaks and tabs kept, every other control character
    (an escape sequence quoted from a document) shown as an escape."""
    return "\n".join("\t".join(display(p) for p in line.split("\t")) for line in text.split("\n"))


def _open_window() -> int:
    try:
        from app.gui.main import run_window
    except ImportError as exc:
        print(
            f"confidant: the window cannot start ({exc}). The command-line tools work: "
            "see 'confidant --help'.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return run_window()


if __name__ == "__main__":  # pragma: no cover
    os._exit(main())
