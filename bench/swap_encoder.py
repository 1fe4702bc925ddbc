"""What would a whole-library re-embedding with another encoder buy? Measured without touching
the library: export its live chunks, embed them with the other encoder (anywhere: this
script's `embed` step needs only numpy, torch and sentence-transformers, so it can run on a
machine with a GPU), then search with the app's own ranking over those vectors.

    python -m bench.swap_encoder export --library HOME --out chunks.jsonl
    python -m bench.swap_encoder embed --chunks chunks.jsonl --model PATH --out vectors.npy
    python -m bench.swap_encoder score --library HOME --chunks chunks.jsonl \\
        --vectors vectors.npy --model PATH [--vectors V2 --model M2] --qa FILE [--qa FILE ...]

`score` ranks as Retriever.search does (app/core/retrieval.py: the 40 nearest by cosine and the
40 best by BM25 from the library's own keyword index, blended, neighbours merged), with the
cosines computed exactly against the exported vectors. The question groups and the hit rule are
rerank_sweep.py's (qa-blind's A + B / C, a file's "split" and "evidence").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def export(library_home: Path, out: Path) -> int:
    import sqlite3

    db = sqlite3.connect(f"file:{library_home / 'library.sqlite3'}?mode=ro", uri=True)
    rows = db.execute(
        'SELECT c.id, d.path, c.page, c.text, c.start, c."end", c.doc_id, c.idx '
        "FROM chunks c JOIN documents d ON c.doc_id=d.id AND c.version=d.hash ORDER BY c.rowid"
    ).fetchall()
    with out.open("w", encoding="utf-8") as f:
        for r in rows:
            keys = ("id", "path", "page", "text", "start", "end", "doc_id", "idx")
            f.write(json.dumps(dict(zip(keys, r, strict=True))) + "\n")
    return len(rows)


def read_chunks(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def embed(chunks: Path, model: str, out: Path, batch: int = 128) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    st = SentenceTransformer(model, device=device)
    if device == "cuda":
        st.half()
    texts = [c["text"] for c in read_chunks(chunks)]
    t0 = time.perf_counter()
    vectors = st.encode(
        texts, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True
    ).astype(np.float32)
    took = time.perf_counter() - t0
    np.save(out, vectors)
    print(f"{len(texts)} chunks in {took:.1f} s on {device} ({len(texts) / took:.0f}/s)")


class SwappedRetriever:
    """Retriever.search over exported chunks and another encoder's vectors of them."""

    def __init__(self, library, encoder, chunks: list[dict], vectors: np.ndarray, candidates=40):
        """`encoder` and `vectors` may be lists (same length): the cosine is then the mean of
        each encoder's cosine against its own vectors (an ensemble of embedders)."""
        self.library = library
        self.encoders = encoder if isinstance(encoder, list) else [encoder]
        self.vector_sets = vectors if isinstance(vectors, list) else [vectors]
        self.chunks = {c["id"]: c for c in chunks}
        self.ids = [c["id"] for c in chunks]
        self.row = {cid: i for i, cid in enumerate(self.ids)}
        self.candidates = candidates

    def search(self, query: str, k: int = 5):
        from dataclasses import replace

        from app.core.events import Hit
        from app.core.retrieval import blend, merge_neighbours

        by_keyword = self.library.keyword_search_scored(query, self.candidates)
        cos = np.zeros(len(self.ids), dtype=np.float32)
        for encoder, vectors in zip(self.encoders, self.vector_sets, strict=True):
            cos += vectors @ np.asarray(encoder.embed_query(query), dtype=np.float32)
        cos /= len(self.encoders)
        top = np.argpartition(-cos, self.candidates)[: self.candidates]
        similarity = {self.ids[i]: float(cos[i]) for i in top}
        for cid, _ in by_keyword:
            if cid in self.row:
                similarity.setdefault(cid, float(cos[self.row[cid]]))
        ranked = [i for i, _ in blend(similarity, by_keyword)[: k * 3]]
        hits = []
        for cid in ranked:
            c = self.chunks.get(cid)
            if c is None:
                continue
            hit = Hit(cid, c["path"], c["page"], c["text"], 0.0, c["start"], c["end"])
            hit = replace(hit, doc_id=c["doc_id"], chunk_index=c["idx"])
            hits.append(replace(hit, score=round(similarity.get(cid, 0.0), 4)))
        return merge_neighbours(hits)[:k]


def score(args) -> None:
    from app.core.library import Library
    from bench.rerank import load_encoder
    from bench.rerank_sweep import answers, groups_of
    from bench.retrieval import load_qa

    library = Library(Path(args.library))
    chunks = read_chunks(Path(args.chunks))
    if len(args.vectors) != len(args.model):
        raise SystemExit("give one --model for each --vectors")
    vectors = [np.load(v) for v in args.vectors]
    encoders = [load_encoder(m) for m in args.model]
    retriever = SwappedRetriever(library, encoders, chunks, vectors)
    for f in args.qa:
        items = load_qa(f)
        for group, idx in groups_of(Path(f), items).items():
            h1 = h5 = 0
            missed = []
            for i in idx:
                item = items[i]
                hits = retriever.search(item["question"], 5)
                ok = [answers(item, h.path, h.page, h.text) for h in hits]
                h1 += bool(ok and ok[0])
                h5 += any(ok)
                if not any(ok):
                    missed.append(item["question"])
            n = len(idx)
            print(f"{group} (n={n}): hit@1 {h1 / n:.3f}, hit@5 {h5 / n:.3f}")
            for m in missed:
                print("   missed:", m)
    library.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="step", required=True)
    e = sub.add_parser("export")
    e.add_argument("--library", required=True)
    e.add_argument("--out", required=True)
    m = sub.add_parser("embed")
    m.add_argument("--chunks", required=True)
    m.add_argument("--model", required=True)
    m.add_argument("--out", required=True)
    s = sub.add_parser("score")
    s.add_argument("--library", required=True)
    s.add_argument("--chunks", required=True)
    s.add_argument("--vectors", action="append", required=True, help="repeat for an ensemble")
    s.add_argument("--model", action="append", required=True, help="one for each --vectors")
    s.add_argument("--qa", action="append", required=True)
    args = ap.parse_args(argv)
    if args.step == "export":
        print(export(Path(args.library), Path(args.out)), "chunks")
    elif args.step == "embed":
        embed(Path(args.chunks), args.model, Path(args.out))
    else:
        score(args)


if __name__ == "__main__":
    main()
