"""The "obvious pipeline", measured beside Confidant's: LangChain's PyPDFLoader,
RecursiveCharacterTextSplitter(1000, 200), HuggingFaceEmbeddings (the same MiniLM folder) and
Chroma.

Standalone on purpose: it runs under a separate virtual environment that has LangChain (ours must
not), and nothing in Confidant imports it. `confidant bench --baseline-langchain DIR
--baseline-python VENV/bin/python` (VENV: one with LangChain) starts it and reads the
one JSON line it prints:

    python baseline_langchain.py --pdfs DIR --embedder MODEL_DIR [--qa qa.jsonl] [--k 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class PeakRss:
    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--pdfs", required=True)
    p.add_argument("--embedder", required=True)
    p.add_argument("--qa")
    p.add_argument("--k", type=int, default=5)
    args = p.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore")
    from langchain_chroma import Chroma
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    files = sorted(str(f) for f in Path(args.pdfs).rglob("*") if f.suffix.lower() == ".pdf")
    with PeakRss() as rss, tempfile.TemporaryDirectory() as store:
        t_load = time.perf_counter()
        embeddings = HuggingFaceEmbeddings(model_name=args.embedder)
        load_s = time.perf_counter() - t_load
        started = time.perf_counter()
        docs = []
        for f in files:
            docs.extend(PyPDFLoader(f).load())
        extracted = time.perf_counter()
        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
        chunks = splitter.split_documents(docs)
        db = Chroma.from_documents(chunks, embeddings, persist_directory=store)
        seconds = time.perf_counter() - started
        result = {
            "pipeline": "langchain PyPDFLoader + RecursiveCharacterTextSplitter(1000, 200) + "
            "HuggingFaceEmbeddings + Chroma",
            "files": len(files),
            "pages": len(docs),
            "chunks": len(chunks),
            "seconds": round(seconds, 3),
            "extract_s": round(extracted - started, 3),
            "load_s": round(load_s, 3),
            "pages_per_s": round(len(docs) / seconds, 2),
            "chunks_per_s": round(len(chunks) / seconds, 2),
            "peak_rss_mb": round(rss.peak / 2**20, 1),
        }
        if args.qa:
            result["qa"] = score_qa(db, args.qa, args.k)
    print(json.dumps(result))
    return 0


def score_qa(db, qa_path: str, k: int) -> dict:
    items = [json.loads(line) for line in Path(qa_path).read_text().splitlines() if line.strip()]
    hit1 = hitk = 0
    latencies = []
    for item in items:
        t = time.perf_counter()
        found = db.similarity_search(item["question"], k=k)
        latencies.append((time.perf_counter() - t) * 1000)
        keys = [
            (Path(d.metadata.get("source", "")).name, int(d.metadata.get("page", -1)) + 1)
            for d in found
        ]
        answers = {(item["file"], int(pg)) for pg in item["pages"]}
        hit1 += bool(keys[:1] and keys[0] in answers)
        hitk += any(key in answers for key in keys[:k])
    n = len(items) or 1
    latencies.sort()
    return {
        "questions": len(items),
        "hit@1": round(hit1 / n, 3),
        f"hit@{k}": round(hitk / n, 3),
        "p50_ms": round(latencies[len(latencies) // 2], 2) if latencies else None,
    }


if __name__ == "__main__":
    sys.exit(main())
