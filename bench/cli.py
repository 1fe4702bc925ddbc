"""`confidant bench`: ingestion, retrieval, QA quality, generation and a LangChain baseline.

Every part is optional and runs against a throw-away library in a temporary directory unless
--library names one, so the user's own library is never touched. The heavy parts are imported
lazily: `--generate` alone needs only app.core.llm (it runs on machines without chromadb, Qt or
sentence-transformers).

    confidant bench --ingest DIR [--qa resources/bench/qa.jsonl] [--retrieval]
    confidant bench --retrieval --synthetic-chunks 100000
    confidant bench --generate --model M.gguf --prompt-tokens 500,3500 --repeats 3 \
        [--llama-bench PATH]
    confidant bench --gui DIR [--question "..."]
    confidant bench --baseline-langchain DIR --baseline-python VENV/bin/python --qa FILE
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.generation import add_generation_arguments

QA_DEFAULT = Path(__file__).resolve().parents[1] / "resources" / "bench" / "qa.jsonl"


def build_parser() -> argparse.ArgumentParser:
    """`confidant bench`'s own parser: app/cli.py hands it what follows `bench`."""
    p = argparse.ArgumentParser(
        prog="confidant bench",
        description="Measure ingestion, retrieval, QA quality, generation and the window "
        "(a development checkout's bench/).",
    )
    add_arguments(p)
    return p


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    g = p.add_argument_group("ingestion")
    g.add_argument("--ingest", metavar="DIR", help="ingest DIR into a temporary library, timed")
    g.add_argument("--ingest-into", metavar="HOME", help="keep that library here (a new folder)")
    g.add_argument("--embed-fp32", action="store_true", help="no bf16 embeddings on the CPU")
    g.add_argument(
        "--embedder", metavar="DIR", help="sentence-transformers folder (default: the embedded one)"
    )
    g.add_argument(
        "--extract-in-thread", action="store_true", help="parse PDFs in the reader thread"
    )
    g.add_argument(
        "--vectors-in-process",
        action="store_true",
        help="write Chroma in this process, not its own (the way before it had one)",
    )
    g.add_argument("--chunk-tokens", type=int, metavar="N", help="passage size (default: setting)")
    g.add_argument("--chunk-overlap", type=int, metavar="N", help="overlap (default: setting)")
    g.add_argument(
        "--embed-window",
        type=int,
        metavar="N",
        help="chunks handed to the embedder at once (default: 256)",
    )
    g.add_argument(
        "--embed-batch",
        type=int,
        metavar="N",
        help="rows per forward pass (default: 16 CPU, 256 GPU)",
    )
    g.add_argument(
        "--embed-streams",
        type=int,
        metavar="N",
        help="forward passes at once on the CPU, each with its share of the threads "
        "(default: one a core on 2-3 cores, else 2 threads each, at most 8)",
    )
    g = p.add_argument_group("retrieval")
    g.add_argument("--library", metavar="HOME", help="a CONFIDANT_HOME to search (read only)")
    g.add_argument("--retrieval", action="store_true", help="search latency p50/p95")
    g.add_argument("--synthetic-chunks", type=int, default=0, metavar="N")
    g.add_argument("--synthetic-vectors", choices=("random", "minilm"), default="random")
    g.add_argument(
        "--retrieval-while-ingesting",
        metavar="DIR",
        help="search latency while the same embedder ingests DIR into a scratch library",
    )
    g.add_argument("--qa", metavar="FILE", help="questions with answer pages: hit@1, hit@5")
    g.add_argument(
        "--query-inline",
        action="store_true",
        help="embed questions on the caller's thread with torch's default threads (as before "
        "they had a thread of their own), to compare",
    )
    g.add_argument(
        "--gate",
        metavar="QA",
        action="append",
        help="relevance gate: refusals of these answerable questions (repeatable) and of "
        "--offtopic's, by tuning and held-out part",
    )
    g.add_argument("--offtopic", metavar="FILE", help="off-topic questions for --gate")
    g.add_argument("-k", type=int, default=5, help="hits per question for hit@k")
    g.add_argument("--generate", action="store_true", help="LLM load, TTFT and decode speed")
    add_generation_arguments(p)
    g = p.add_argument_group("window")
    g.add_argument(
        "--gui", metavar="DIR", help="launch time; GUI lag while ingesting DIR, answering"
    )
    g.add_argument(
        "--question",
        default="What does this library cover?",
        help="the question --gui asks after ingesting",
    )
    g.add_argument(
        "--sync",
        type=int,
        nargs="?",
        const=20_000,
        metavar="N",
        help="folders in sync: reconcile of N unchanged files, GUI lag while syncing (20,000)",
    )
    g = p.add_argument_group("team mode (bench/team.py; servers started on loopback)")
    g.add_argument(
        "--team",
        action="store_true",
        help="load: --team-clients clients asking for --team-seconds through a Chroma server "
        "and a model server; with --team-qa and --library: hit@k local vs team",
    )
    g.add_argument("--team-clients", type=int, default=8, metavar="N")
    g.add_argument("--team-seconds", type=float, default=60.0, metavar="S", help="0: no load run")
    g.add_argument("--team-qa", metavar="FILE", action="append", help="QA file (repeatable)")
    g.add_argument("--team-llm", metavar="URL", help="a model server on this machine (/v1)")
    g = p.add_argument_group("baseline")
    g.add_argument("--baseline-langchain", metavar="DIR", help="PDF folder for the LangChain run")
    g.add_argument("--baseline-python", metavar="PATH", help="python of a venv with LangChain")


def run_bench(args) -> int:
    if args.team:
        return _team(args)
    wanted = (
        args.ingest,
        args.retrieval,
        args.qa,
        args.generate,
        args.baseline_langchain,
        args.synthetic_chunks,
        args.gui,
        args.retrieval_while_ingesting,
        args.gate,
        args.sync,
    )
    if not any(wanted):
        print(
            "confidant bench: nothing to measure. Give --ingest DIR, --retrieval, --qa FILE, "
            "--generate --model M.gguf, --gui DIR or --baseline-langchain DIR (see --help).",
            file=sys.stderr,
        )
        return 2
    results: dict = {}
    if args.generate:
        if not args.model:
            print("confidant bench: --generate needs --model PATH (a .gguf file).", file=sys.stderr)
            return 2
        from bench.generation import format_generation, run_from_args

        gen = run_from_args(args)
        results["generation"] = gen.as_dict()
        _show(args, format_generation(gen))
    has_library = args.ingest or args.library or args.synthetic_chunks
    if has_library:
        _library_parts(args, results)
    elif (
        args.retrieval or args.qa or args.retrieval_while_ingesting
    ) and not args.baseline_langchain:
        print(
            "confidant bench: --retrieval and --qa search a library: give --ingest DIR, "
            "--library HOME or --synthetic-chunks N.",
            file=sys.stderr,
        )
        return 2
    if args.gui:
        from bench.gui import bench_gui, format_gui

        results["gui"] = bench_gui(args.gui, args.question).as_dict()
        _show(args, format_gui(results["gui"]))
    if args.sync:
        from bench.sync import bench_sync, format_sync

        results["sync"] = bench_sync(args.sync).as_dict()
        _show(args, format_sync(results["sync"]))
    if args.baseline_langchain:
        results["baseline"] = run_baseline(args)
        _show(args, format_baseline(results["baseline"]))
    if args.json:
        print(json.dumps(results))
    return 0


def _team(args) -> int:
    """Team mode: hit@k local vs team (--team-qa, --library), then the load run."""
    from app.config import default_embedder_path, isolate_from_network
    from bench import team

    isolate_from_network()
    from app.core.embedding import Embedder

    if team.chroma_command() is None:
        print("confidant bench --team: the chroma command is missing.", file=sys.stderr)
        return 2
    embedder = Embedder(Path(args.embedder) if args.embedder else default_embedder_path())
    results: dict = {}
    if args.team_qa:
        if not args.library:
            print("confidant bench --team --team-qa needs --library HOME.", file=sys.stderr)
            return 2
        results["team_quality"] = team.bench_team_quality(
            Path(args.library).expanduser(), args.team_qa, embedder, k=args.k
        )
        _show(args, team.format_team_quality(results["team_quality"], args.k))
    if args.team_seconds > 0:
        results["team_load"] = team.bench_team_load(
            embedder,
            clients=args.team_clients,
            seconds=args.team_seconds,
            llm_server=args.team_llm,
        )
        _show(args, team.format_team_load(results["team_load"]))
    if args.json:
        print(json.dumps(results))
    return 0


def _show(args, text: str) -> None:
    if not args.json:
        print(text, flush=True)


def _library_parts(args, results: dict) -> None:
    from app.config import (
        default_embedder_path,
        embedder_path,
        isolate_from_network,
        load_settings,
    )

    isolate_from_network()
    from app.core.embedding import Embedder
    from app.core.library import Library
    from app.core.retrieval import Retriever
    from bench.ingestion import bench_ingest
    from bench.retrieval import (
        DEFAULT_QUERIES,
        bench_latency,
        bench_quality,
        build_synthetic_library,
        load_qa,
    )

    tmp = None
    if args.library:
        home = Path(args.library).expanduser()
        if not (home / "library.sqlite3").is_file():
            raise SystemExit(f"confidant bench: '{home}' holds no Confidant library.")
    elif args.ingest_into:
        home = Path(args.ingest_into).expanduser()
        if home.exists() and any(home.iterdir()):
            raise SystemExit(f"confidant bench: '{home}' is not empty; name a new folder.")
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
    else:
        tmp = tempfile.mkdtemp(prefix="confidant-bench-")
        home = Path(tmp)
    try:
        settings = load_settings(home) if args.library else None
        if args.embedder:
            model_dir = Path(args.embedder).expanduser()
        else:
            model_dir = embedder_path(settings) if settings else default_embedder_path()
        embedder = Embedder(
            model_dir,
            batch_size=args.embed_batch,
            cpu_bf16=not args.embed_fp32,
            cpu_streams=args.embed_streams,
        )
        library = None
        # What the measured library holds (a --library may be a synthetic one built earlier).
        vectors = f"the library at {home}" if args.library else "ingested documents"
        if args.ingest:
            if args.library:
                raise SystemExit("confidant bench: --ingest makes its own library; drop --library.")
            ingest, library, embedder = bench_ingest(
                args.ingest,
                home,
                embedder=embedder,
                options=_ingest_options(args),
                vector_process=not args.vectors_in_process,
            )
            ingest_d = ingest.as_dict()
            ingest_d["embed_precision"] = _precision(embedder)
            ingest_d["embed_device"] = embedder.device
            ingest_d["embed_streams"] = embedder.streams
            ingest_d["extraction"] = "thread" if args.extract_in_thread else "process"
            ingest_d["vectors"] = "this process" if args.vectors_in_process else "own process"
            results["ingest"] = ingest_d
            _show(args, format_ingest(ingest_d))
        if library is None:
            library = Library(home, vector_process=not args.vectors_in_process)
        if args.synthetic_chunks:
            vectors = build_synthetic_library(
                library,
                args.synthetic_chunks,
                embedder.dimensions,
                vectors=args.synthetic_vectors,
                embedder=embedder,
            )
        retriever = Retriever(library, embedder, gate=_gate(library, embedder, home))
        if args.retrieval or args.synthetic_chunks:
            queries = DEFAULT_QUERIES
            if args.qa:
                queries = [q["question"] for q in load_qa(args.qa)]
            lat = bench_latency(retriever, queries, repeats=max(1, args.repeats), vectors=vectors)
            results["retrieval"] = lat.as_dict()
            _show(args, format_latency(results["retrieval"]))
        if args.retrieval_while_ingesting:
            from bench.retrieval import bench_latency_while_ingesting

            queries = [q["question"] for q in load_qa(args.qa)] if args.qa else DEFAULT_QUERIES
            if args.query_inline:
                embedder.embed_query = lambda text: embedder.embed([text])[0]
            with tempfile.TemporaryDirectory(prefix="confidant-bench-busy-") as scratch:
                busy = bench_latency_while_ingesting(
                    retriever, queries, args.retrieval_while_ingesting, scratch
                )
            results["retrieval_while_ingesting"] = busy
            _show(args, format_busy(busy))
        if args.gate:
            from bench.gate import OFFTOPIC_DEFAULT, bench_gate, format_gate

            results["gate"] = bench_gate(retriever, args.gate, args.offtopic or OFFTOPIC_DEFAULT)
            _show(args, format_gate(results["gate"]))
        if args.qa:
            results["qa"] = bench_quality(retriever, args.qa, k=args.k)
            _show(args, format_qa(results["qa"], args.k))
        library.close()
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        elif args.ingest_into and "ingest" in results:
            results["ingest"]["home"] = str(home)


def _gate(library, embedder, home: Path):
    """The app's relevance gate over this library (its baseline is not cached: the bench does
    not write into a --library)."""
    from app.core.gate import RelevanceGate, load_probes
    from app.paths import resources_dir

    probes = load_probes(resources_dir() / "gate" / "probes.txt")
    return RelevanceGate(library, embedder.embed, embedder.model_id, probes)


def _ingest_options(args):
    from app.config import Settings
    from app.core.ingest import IngestOptions

    defaults = Settings()
    options = IngestOptions(
        chunk_tokens=defaults.chunk_tokens if args.chunk_tokens is None else args.chunk_tokens,
        chunk_overlap=defaults.chunk_overlap if args.chunk_overlap is None else args.chunk_overlap,
        extract_in_process=not args.extract_in_thread,
    )
    if args.embed_window:
        options.embed_window = args.embed_window
    return options


def _precision(embedder) -> str:
    try:
        return str(next(embedder.load().parameters()).dtype).replace("torch.", "")
    except Exception:
        return "unknown"


# ------------------------------------------------------------------ the LangChain baseline
def run_baseline(args) -> dict:
    from app.config import default_embedder_path

    python = args.baseline_python or sys.executable
    script = Path(__file__).with_name("baseline_langchain.py")
    cmd = [python, str(script), "--pdfs", args.baseline_langchain]
    cmd += ["--embedder", str(default_embedder_path()), "--k", str(args.k)]
    if args.qa:
        cmd += ["--qa", args.qa]
    env = dict(os.environ, PYTHONPATH="")  # its own venv only, nothing of ours
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr or done.stdout).strip()[-2000:], "command": cmd}
    return json.loads(lines[-1])


# ------------------------------------------------------------------ tables
def _table(title: str, rows: list[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join([title] + [f"  {k:<{width}}  {v}" for k, v in rows])


def format_ingest(d: dict) -> str:
    return _table(
        "ingestion",
        [
            ("files", f"{d['files']} ({', '.join(f'{n} {k}' for k, n in d['counts'].items())})"),
            ("pages", d["pages"]),
            ("chunks", d["chunks"]),
            ("seconds", f"{d['seconds']:.2f} (model load {d['load_s']:.2f} s not counted)"),
            ("pages/s", f"{d['pages_per_s']:.2f}"),
            ("chunks/s", f"{d['chunks_per_s']:.2f}"),
            ("peak RSS", f"{d['peak_rss_mb']:.0f} MB (process + workers)"),
            (
                "embeddings",
                f"{d.get('embed_precision', '?')} on {d.get('embed_device', '?')}, "
                f"{d.get('embed_streams', '?')} stream(s)",
            ),
            ("PDF parsing", d.get("extraction", "?")),
            ("Chroma", d.get("vectors", "?")),
            ("its thread", ", ".join(f"{k} {v:.2f} s" for k, v in d.get("stages", {}).items())),
        ]
        + [("problem", f) for f in d["failed"]],
    )


def format_latency(d: dict) -> str:
    parts = ", ".join(f"{k} {v:.1f}" for k, v in d["parts_p50_ms"].items())
    return _table(
        "retrieval latency (query embedding included)",
        [
            ("chunks", d["chunks"]),
            ("vectors", d["vectors"]),
            ("queries", f"{d['queries']} x {d['repeats']}"),
            ("p50", f"{d['p50_ms']:.1f} ms"),
            ("p95", f"{d['p95_ms']:.1f} ms"),
            ("parts p50", f"{parts} ms"),
        ],
    )


def format_busy(d: dict) -> str:
    ingest = d.get("ingest") or {}
    return _table(
        "Search while ingesting",
        [
            ("questions asked", d["queries"]),
            ("search p50 / p95", f"{d['p50_ms']} / {d['p95_ms']} ms"),
            ("question embedding p50 / p95", f"{d['embed_p50_ms']} / {d['embed_p95_ms']} ms"),
            (
                "ingested meanwhile",
                f"{ingest.get('pages', 0)} pages in {ingest.get('seconds', 0)} s",
            ),
            *([("ingestion error", d["error"])] if d.get("error") else []),
        ],
    )


def format_qa(d: dict, k: int) -> str:
    rows = [
        ("questions", d["questions"]),
        ("hit@1", f"{d['hit@1']:.3f}"),
        (f"hit@{k}", f"{d[f'hit@{k}']:.3f}"),
    ]
    rows += [("missed", q) for q in d.get("missed", [])]
    return _table("retrieval quality", rows)


def format_baseline(d: dict) -> str:
    if "error" in d:
        return _table("LangChain baseline", [("error", d["error"][-500:])])
    rows = [
        ("pipeline", d["pipeline"]),
        ("pages", d["pages"]),
        ("chunks", d["chunks"]),
        ("seconds", f"{d['seconds']:.2f} (model load {d['load_s']:.2f} s not counted)"),
        ("pages/s", f"{d['pages_per_s']:.2f}"),
        ("peak RSS", f"{d['peak_rss_mb']:.0f} MB"),
    ]
    if "qa" in d:
        rows += [(k, v) for k, v in d["qa"].items()]
    return _table("LangChain baseline", rows)
