"""The citation check (app/core/citecheck.py) on answers with deliberately wrong citations.

Each record of resources/bench/citecheck-{tune,heldout}.jsonl is a group of five real passages of
the R and gnuplot manuals (cut by the project's own loader and chunker, 200 tokens) and answers
written over them, each sentence a claim drawn from one passage:

- extracted sentences, as they are or lightly reworded (a clause dropped, a leading clause moved
  to the end, a lead-in added, a few words swapped for synonyms);
- sentences paraphrased by hand (HANDWRITTEN below), not copies of the passage;

every claim cited once correctly (a positive) and once swapped to another passage of the group
(a negative): the neighbouring page of the same manual (the hard case), a far page of the same
manual, or another manual; plus claims whose number was changed, cited correctly (negatives).
The two files hold disjoint groups (split with a fixed seed); thresholds are tuned on the first
only (--tune), and precision and recall of "unsupported" are reported on both.

    python -m bench.citecheck               # evaluate both halves with the current constants
    python -m bench.citecheck --tune        # grid-search THRESHOLD / LEXICAL_WEIGHT on tune
    python -m bench.citecheck --build DIR   # rebuild both files from the PDFs under DIR
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "bench"
TUNE = RESOURCES / "citecheck-tune.jsonl"
HELDOUT = RESOURCES / "citecheck-heldout.jsonl"
SEED = 16
GROUPS = 80  # groups drawn at random, besides the hand-written ones'

# Hand-written paraphrases, written for the passage rather than copied from it: a line
# "file | page | a phrase of the passage", then the claim on the indented lines below it.
_HANDWRITTEN = r"""
R-FAQ.pdf | 30 | For help with ESS, send email to
    Questions about ESS can be sent by email to the ESS-help@r-project.org list.
R-FAQ.pdf | 30 | which provides a standard interface between statistical programs
    ESS, short for Emacs Speaks Statistics, is an Emacs package offering a standard interface to
    statistical programs.
R-admin.pdf | 40 | Windows also uses locales
    Windows has locales too, although the way they are specified is much less concise.
R-data.pdf | 26 | first calling odbcQuery and then sqlGetResults
    For finer control you can call odbcQuery first and fetch the results afterwards with
    sqlGetResults.
R-exts.pdf | 73 | Not all linkers allow a space after
    Some linkers do not accept a space following the -L flag.
R-intro.pdf | 7 | Many users will come to R mainly for its graphical facilities
    A lot of people are drawn to R chiefly because of its graphics.
R-ints.pdf | 28 | chosen to be loaded
    Code kept in the modules directory is loaded only when it is needed instead of being linked
    into the main executable.
R-lang.pdf | 32 | bad style to use arguments to functions to cause side-effects
    Relying on function arguments to produce side effects is considered poor style, since an
    argument might never be evaluated.
gnuplot.pdf | 281 | By default, gnuplot will use the Adobe glyph names
    Unless told otherwise, gnuplot names characters using Adobe's glyph names.
gnuplot.pdf | 281 | If you specific noadobeglyphnames
    With the noadobeglyphnames option, a Greek alpha is described as /uni03B1 instead.
refman.pdf | 1436 | N is the number of observations and m the number of series
    Here N counts the observations while m counts the series.
R-FAQ.pdf | 49 | Always include the version of R, machine, and operating system
    A bug report should state which R version, machine and operating system were used; typing
    version in R prints this.
R-admin.pdf | 9 | most are described in the file config.site
    Most of the build settings you can customise are documented in config.site at the top of the
    source tree.
R-data.pdf | 25 | On Windows ODBC support is part of the OS
    Windows ships ODBC support as part of the operating system itself.
R-exts.pdf | 195 | gfortran 9.2 introduced an option -ftail-call-workaround
    The -ftail-call-workaround option appeared in gfortran 9.2, where it became the default,
    though it may be removed later.
R-intro.pdf | 56 | Under lexical scope (R) it is the parameter to the function cube
    Because R uses lexical scoping, n refers to the parameter of cube, which was the active
    binding when sq was defined.
R-ints.pdf | 76 | Matrices are stored as vectors and so were also limited to
    Since matrices are stored as vectors, they used to be capped at 2^31-1 elements.
R-ints.pdf | 76 | One example seen was svd() on a complex matrix
    Calling svd() on a complex matrix is one case where overflow in LAPACK routines was
    observed.
R-lang.pdf | 10 | Builtin functions have all their arguments evaluated
    Builtins evaluate all their arguments before passing them to the internal code, while
    specials hand over the arguments unevaluated.
gnuplot.pdf | 269 | The option latex sets the terminal to output its text
    Choosing the latex option makes the terminal emit its text to be processed by LaTeX, so
    commands such as \frac work.
refman.pdf | 1459 | Balance can be checked with the replications function
    You can use the replications function to verify whether a design is balanced.
R-admin.pdf | 42 | for speed you may want to use a 32-bit build
    A 32-bit build tends to be faster, while a 64-bit build is the choice for handling large
    datasets.
R-data.pdf | 22 | Conventionally SQL is written in upper case
    Although SQL is traditionally written in capitals, many people prefer lower case when using
    R's interface functions.
R-exts.pdf | 208 | Freeing the result using free is no longer recommended
    It is no longer advised to release the result with free.
R-intro.pdf | 71 | One way to fit a nonlinear model is by minimizing
    A nonlinear model can be fitted by minimising the sum of squared residuals.
R-ints.pdf | 39 | File nsInfo.rds records a list, a parsed version of the NAMESPACE
    The nsInfo.rds file stores the NAMESPACE file in parsed form, as a list.
R-lang.pdf | 15 | creates the integer value 16 from the hexadecimal
    Writing 0x10L gives the integer 16, using hexadecimal notation.
R-lang.pdf | 15 | qualify our constant with the suffix character
    The easiest way to make a constant an integer is to append the letter L to it.
gnuplot.pdf | 156 | Hidden3d does not affect solid surfaces drawn using the pm3d mode
    Solid pm3d surfaces are not affected by hidden3d.
refman.pdf | 1280 | removeMethods: Returns TRUE if f was a generic function
    removeMethods returns TRUE when f was a generic function and otherwise quietly returns
    FALSE.
R-FAQ.pdf | 10 | Native backports for Ubuntu are provided by Michael Rutter
    Michael Rutter maintains native backports of R for Ubuntu.
R-admin.pdf | 30 | Binary packages are platform-specific
    Binary packages only work on the platform they were built for, but usually need no extra
    tools to install.
R-data.pdf | 30 | The three terminal connections are always open
    stdin, stdout and stderr are always open and can be neither opened nor closed.
R-exts.pdf | 103 | Linefeeds are removed, and leading and trailing whitespace
    Line feeds get stripped, as does whitespace at the start and end.
R-intro.pdf | 16 | That is seq(2,10) is the same vector as 2:10
    For example, seq(2,10) produces the same vector as 2:10.
R-intro.pdf | 16 | It has five arguments, only some of which may be specified
    The seq() function takes five arguments, but only some of them may be given in one call.
R-ints.pdf | 65 | Environment variable AUTORECONf controls the command used
    The AUTORECONf environment variable sets which autoreconf command is run, and may include
    flags.
R-lang.pdf | 60 | may be used to separate elementary expressions
    You can put several simple expressions on one line by separating them with semicolons.
gnuplot.pdf | 280 | If the output cannot be written to standard output, on-the-fly
    On-the-fly font conversion only works when the converter can write to standard output.
refman.pdf | 2232 | An external tar program can be specified by the R_BUILD_TAR
    Setting R_BUILD_TAR lets you use an external tar program instead.
"""


def _handwritten() -> list[tuple[str, int, str, str]]:
    out: list[tuple[str, int, str, str]] = []
    for line in _HANDWRITTEN.strip().splitlines():
        if line.startswith(" "):
            f, page, phrase, claim = out[-1]
            out[-1] = (f, page, phrase, f"{claim} {line.strip()}".strip())
        else:
            f, page, phrase = (x.strip() for x in line.split(" | "))
            out.append((f, int(page), phrase, ""))
    return out


HANDWRITTEN = _handwritten()


# ============================================================================ building the set
@dataclass
class Passage:
    file: str
    page: int
    index: int  # position of the chunk in its file
    text: str


def load_passages(corpus: Path) -> dict[str, list[Passage]]:
    """Every PDF under `corpus` (symlinks and identical copies once), cut as the app cuts it."""
    from app.config import default_embedder_path
    from app.core.chunking import Chunker, PageTokenizer
    from app.core.documents import read_pages

    folder = default_embedder_path()
    if folder is None:
        raise SystemExit("the embedded all-MiniLM-L6-v2 is not installed")
    tokenizer = PageTokenizer((folder / "tokenizer.json").read_text(encoding="utf-8"))
    chunker = Chunker(tokenizer, 200, 40)
    seen: set[str] = set()
    out: dict[str, list[Passage]] = {}
    # shortest names first: refman.pdf is kept, its copy fullrefman.pdf skipped
    for path in sorted(corpus.rglob("*.pdf"), key=lambda p: (len(p.resolve().name), str(p))):
        real = path.resolve()
        chunks = list(chunker.chunks(read_pages(real)))
        digest = hashlib.sha1("\f".join(c.text for c in chunks).encode()).hexdigest()
        if digest in seen:  # the same manual under another name (refman.pdf, fullrefman.pdf)
            continue
        seen.add(digest)
        out[real.name] = [Passage(real.name, c.page or 0, i, c.text) for i, c in enumerate(chunks)]
    return out


_INNER_STOP = re.compile(r"[.!?]\s")
_RUNNING_HEAD = re.compile(r"^Chapter \d+:|•")
_CODEY = re.compile(r"<-|[{}=$#@\\]|\(\)|\w\(|::|==|\w\.\w+\(")


def prose_sentences(text: str) -> list[str]:
    """The passage's sentences that read as prose: 8-40 words, a capital first, a full stop
    last, few code marks."""
    from app.core.citecheck import mend, split_passage

    out = []
    for lo, hi in split_passage(text):
        s = mend(text[lo:hi])
        words = s.split()
        if not 8 <= len(words) <= 40 or not s[0].isupper() or not s.endswith("."):
            continue
        if len(_CODEY.findall(s)) > 1 or sum(w.isalpha() for w in words) < 0.7 * len(words):
            continue
        if _INNER_STOP.search(s[:-1]) or _RUNNING_HEAD.search(s):
            continue  # two sentences run together, or the page's header glued on
        out.append(s)
    return out


_SYNONYMS = {
    "allows": "lets",
    "specify": "give",
    "specifies": "gives",
    "specified": "given",
    "contains": "holds",
    "shows": "displays",
    "create": "make",
    "creates": "makes",
    "necessary": "needed",
    "large": "big",
    "however": "but",
    "additional": "extra",
    "several": "a number of",
    "currently": "at present",
    "usually": "normally",
    "required": "needed",
    "possible": "feasible",
    "example": "instance",
    "returns": "gives back",
    "obtain": "get",
    "provides": "offers",
    "provide": "offer",
    "useful": "handy",
    "different": "distinct",
}
_LEADING_CLAUSE = re.compile(
    r"^((?:If|When|Although|While|Since|Because|For|In|By|As|Once|Unless|On|With|Without|After|"
    r"Before|Under|Where|To|Unlike|Except|Apart|Within|Inside|Outside)\b[^,]{3,80}),\s+(.+)\.$"
)
_LEAD_INS = (
    "According to the manual, ",
    "Note that ",
    "The documentation says that ",
    "In short, ",
)


def reword(sentence: str, rng: random.Random) -> tuple[str, str]:
    """A light rewording of an extracted sentence, and what was done."""
    choices = ["verbatim", "dropped", "reordered", "lead-in", "synonyms"]
    kind = rng.choice(choices)
    s = sentence
    if kind == "verbatim" and _LEADING_CLAUSE.match(s):
        kind = "reordered"  # few sentences open with a clause: move each one that does
    if kind == "dropped":
        t = re.sub(r"\s*\([^()]*\)", "", s)
        parts = re.split(r",\s+(?:which|where|and|but|so|as|since|because|although|while)\b", t)
        if len(parts) > 1 and len(parts[0].split()) >= 6:
            t = parts[0].rstrip(",;:") + "."
        elif t == s and ", " in s and len(s.split(", ")[0].split()) >= 6:
            t = s.split(", ")[0] + "."
        if t != s:
            return t, kind
        kind = "synonyms"
    if kind == "reordered":
        m = _LEADING_CLAUSE.match(s)
        if m:
            lead, rest = m.group(1), m.group(2)
            return f"{rest[0].upper()}{rest[1:]} {lead[0].lower()}{lead[1:]}.", kind
        kind = "lead-in"
    if kind == "lead-in":
        lead = rng.choice(_LEAD_INS)
        first = s.split()[0]
        acronym = len(first) > 1 and any(c.isupper() for c in first[1:])
        body = s if acronym else s[0].lower() + s[1:]
        return lead + body, kind
    if kind == "synonyms":
        words = s.split(" ")
        swapped = 0
        for i, w in enumerate(words):
            key = w.lower().strip(".,;:")
            if key in _SYNONYMS and swapped < 3:
                words[i] = w.replace(w.strip(".,;:"), _SYNONYMS[key], 1)
                swapped += 1
        t = " ".join(words)
        if t != s:
            return t, kind
        return s, "verbatim"
    return s, "verbatim"


_CLAIM_NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.]\d)")


def change_number(claim: str, rng: random.Random) -> str | None:
    """The claim with one of its numbers changed, or None when it has none."""
    found = list(_CLAIM_NUMBER.finditer(claim))
    if not found:
        return None
    m = rng.choice(found)
    value = int(m.group(0))
    taken = {x.group(0) for x in found}
    new = value
    while str(new) in taken:  # not a number the sentence already has ("32-bit and 64-bit")
        new = new + rng.choice([1, 2, 3]) if value < 10 else new * 2
    return claim[: m.start()] + str(new) + claim[m.end() :]


@dataclass
class Claim:
    text: str
    source: int  # index into the group's passages
    kind: str


def _pick(rng: random.Random, items: list, exclude=()) -> object | None:
    pool = [x for x in items if x not in exclude]
    return rng.choice(pool) if pool else None


def build_groups(passages: dict[str, list[Passage]], seed: int = SEED) -> list[dict]:
    from app.core.citecheck import mend

    rng = random.Random(seed)
    prose = {f: [(p, prose_sentences(p.text)) for p in ps] for f, ps in sorted(passages.items())}
    usable = {f: [(p, s) for p, s in items if s] for f, items in prose.items()}
    files = sorted(f for f in usable if len(usable[f]) >= 10)

    anchors: list[tuple[Passage, list[str], list[str]]] = []  # passage, hand claims, phrases
    for file, page, phrase, claim in HANDWRITTEN:
        for p in passages[file]:
            if p.page == page and phrase in mend(p.text):
                for a in anchors:
                    if a[0] is p:
                        a[1].append(claim)
                        a[2].append(phrase)
                        break
                else:
                    anchors.append((p, [claim], [phrase]))
                break
        else:
            raise SystemExit(f"hand-written claim not found: {file} p.{page} {phrase!r}")
    hand_anchors = {id(a[0]) for a in anchors}
    while len(anchors) < len(hand_anchors) + GROUPS:
        file = rng.choice(files)
        p, sents = rng.choice(usable[file])
        if id(p) in hand_anchors or any(a[0] is p for a in anchors) or len(sents) < 2:
            continue
        anchors.append((p, [], []))

    groups = []
    for gi, (a, hand, phrases) in enumerate(anchors):
        file = a.file
        near = [(p, s) for p, s in usable[file] if p.page in (a.page - 1, a.page + 1)]
        far = [(p, s) for p, s in usable[file] if abs(p.page - a.page) >= 20]
        if not near or not far:
            if hand:
                raise SystemExit(f"no neighbouring page for hand-written passage {file} {a.page}")
            continue
        b, b_sents = rng.choice(near)
        c, c_sents = rng.choice(far)
        others = [f for f in files if f != file]
        d_file, e_file = rng.sample(others, 2)
        d, d_sents = rng.choice(usable[d_file])
        e, _ = rng.choice(usable[e_file])
        group = [a, b, c, d, e]
        mended = [mend(p.text) for p in group]
        a_sents = [s for s in prose_sentences(a.text) if not any(ph in s for ph in phrases)]

        claims: list[Claim] = [Claim(h, 0, "handwritten") for h in hand]
        for src, sents, count in (
            (0, a_sents, 2 - min(len(hand), 1)),
            (1, b_sents, 1),
            (2 if gi % 2 else 3, c_sents if gi % 2 else d_sents, 1),
        ):
            for s in rng.sample(sents, min(count, len(sents))):
                text, kind = reword(s, rng)
                claims.append(Claim(text, src, kind))
        # Where each claim's citation goes when swapped: the other of the neighbouring pair,
        # the anchor for the far page, another manual for the others.
        swap_to = {0: 1, 1: 0, 2: 0, 3: 4, 4: 3}

        numbers = rng.sample(range(1, 6), 5)  # passage i is cited as [numbers[i]]
        answers = []
        for half in (0, 1):
            sentences = []
            for k, claim in enumerate(claims):
                swap = (k % 2) == half
                target = swap_to[claim.source] if swap else claim.source
                if swap and claim.text.rstrip(".") in mended[target]:  # in the overlap
                    target = 2 if claim.source != 2 else 3
                kind = "other_manual"
                if target == claim.source:
                    kind = "correct"
                elif {claim.source, target} == {0, 1}:
                    kind = "neighbour"
                elif target in (0, 1, 2) and claim.source in (0, 1, 2):
                    kind = "same_manual"
                sentences.append(
                    (claim.text, numbers[target], target == claim.source, claim.kind, kind)
                )
            if half == 0:
                for claim in claims:
                    changed = change_number(claim.text, rng)
                    if changed:
                        sentences.append(
                            (changed, numbers[claim.source], False, claim.kind, "number")
                        )
                        break
            rng.shuffle(sentences)
            answers.append(format_answer(sentences, rng))
        groups.append(
            {
                "id": f"g{gi:03d}",
                "sources": [
                    {"n": numbers[i], "file": p.file, "page": p.page, "text": p.text}
                    for i, p in sorted(enumerate(group), key=lambda x: numbers[x[0]])
                ],
                "answers": answers,
            }
        )
    return groups


_INTROS = ("", "", "Here is what the documents say.", "In brief:", "From the manuals:")


def format_answer(sentences: list[tuple[str, int, bool, str, str]], rng: random.Random) -> dict:
    """An answer's text in one of the shapes models write, with each sentence's labelled span."""
    style = rng.choice(["before-stop", "after-stop", "bullets", "next-line", "numbered"])
    text = rng.choice(_INTROS)
    labels = []
    for i, (claim, n, ok, claim_kind, cite_kind) in enumerate(sentences):
        body = claim.rstrip(".")
        sep = (" " if text else "") if style in ("before-stop", "after-stop") else "\n"
        if not text:
            sep = ""
        if style == "bullets":
            sep += "- "
        elif style == "numbered":
            sep += f"{i + 1}. "
        text += sep
        start = len(text)
        if style == "after-stop":
            text += f"{body}. [{n}]"
        elif style == "next-line" and i % 2 == 0:
            text += f"{body}.\n[{n}]"
        else:
            text += f"{body} [{n}]."
        labels.append(
            {
                "start": start,
                "end": len(text),
                "n": n,
                "supported": ok,
                "claim": claim_kind,
                "citation": cite_kind,
            }
        )
    return {"style": style, "text": text, "labels": labels}


def build(corpus: Path, seed: int = SEED, passages=None) -> None:
    t0 = time.perf_counter()
    passages = passages or load_passages(corpus)
    print(
        f"{sum(map(len, passages.values()))} passages from {len(passages)} PDFs "
        f"in {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    groups = build_groups(passages, seed)
    rng = random.Random(seed + 1)
    order = list(range(len(groups)))
    rng.shuffle(order)
    tune = sorted(order[: len(order) // 2])
    for path, part in ((TUNE, tune), (HELDOUT, sorted(set(order) - set(tune)))):
        with path.open("w", encoding="utf-8") as fh:
            for i in part:
                fh.write(json.dumps(groups[i], ensure_ascii=False) + "\n")
        pairs = sum(len(a["labels"]) for i in part for a in groups[i]["answers"])
        print(f"{path.name}: {len(part)} groups, {pairs} cited sentences", file=sys.stderr)


# ============================================================================ measuring
def load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _sources(group: dict):
    from app.core.events import Hit, Source

    return tuple(
        Source(s["n"], Hit(f"{group['id']}-{s['n']}", s["file"], s["page"], s["text"], 0.0))
        for s in group["sources"]
    )


@dataclass
class Row:
    """One labelled (sentence, cited number) pair with what the check saw."""

    supported: bool  # the truth
    claim: str
    citation: str
    evidence: object | None  # citecheck.Evidence; None: the sentence was not found
    seconds: float


def collect(groups: list[dict], embed) -> list[Row]:
    from app.core.citecheck import evidence_for

    rows = []
    for group in groups:
        sources = _sources(group)
        for answer in group["answers"]:
            t0 = time.perf_counter()
            found = evidence_for(answer["text"], sources, embed)
            seconds = time.perf_counter() - t0
            for label in answer["labels"]:
                ev = None
                for sentence, evidence, _p in found:
                    if sentence.start <= label["start"] < sentence.end:
                        ev = evidence.get(label["n"])
                        break
                rows.append(Row(label["supported"], label["claim"], label["citation"], ev, seconds))
    return rows


def flagged(row: Row, threshold: float, weight: float) -> bool:
    from app.core.citecheck import supported

    return row.evidence is None or not supported(row.evidence, threshold, weight)


def scores(rows: list[Row], threshold: float, weight: float) -> dict:
    tp = sum(flagged(r, threshold, weight) and not r.supported for r in rows)
    fp = sum(flagged(r, threshold, weight) and r.supported for r in rows)
    fn = sum(not flagged(r, threshold, weight) and not r.supported for r in rows)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {
        "pairs": len(rows),
        "negatives": tp + fn,
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(2 * precision * recall / (precision + recall), 3) if tp else 0.0,
    }


def breakdown(rows: list[Row], threshold: float, weight: float) -> dict:
    """Recall per kind of wrong citation; share wrongly flagged per kind of claim."""
    out: dict[str, dict] = {"missed_by_citation": {}, "false_alarms_by_claim": {}}
    by_cite, by_claim = defaultdict(list), defaultdict(list)
    for r in rows:
        (by_claim[r.claim] if r.supported else by_cite[r.citation]).append(r)
    for kind, rs in sorted(by_cite.items()):
        hit = sum(flagged(r, threshold, weight) for r in rs)
        out["missed_by_citation"][kind] = f"{len(rs) - hit}/{len(rs)}"
    for kind, rs in sorted(by_claim.items()):
        hit = sum(flagged(r, threshold, weight) for r in rs)
        out["false_alarms_by_claim"][kind] = f"{hit}/{len(rs)}"
    out["sentences_not_found"] = sum(r.evidence is None and r.supported for r in rows)
    return out


def tune(rows: list[Row]) -> tuple[float, float, dict]:
    """The (threshold, weight) with the best F1 of "unsupported" on `rows` (ties: the lower
    threshold, fewer false alarms)."""
    best = None
    for weight in np.arange(0.0, 1.01, 0.05):
        for threshold in np.arange(0.3, 1.3, 0.01):
            s = scores(rows, float(threshold), float(weight))
            key = (s["f1"], min(s["precision"], s["recall"]), -threshold)
            if best is None or key > best[0]:
                best = (key, round(float(threshold), 2), round(float(weight), 2), s)
    assert best is not None
    return best[1], best[2], best[3]


def timing(embedder, groups: list[dict], repeats: int = 5) -> dict:
    """Cost of one check on a typical answer: 5 sentences of the held-out set, each citing
    another of the 5 passages of ~200 tokens; median of `repeats`, the embed call apart."""
    from app.core.citecheck import check_citations

    group = groups[0]
    sources = _sources(group)
    claims = {}
    for answer in group["answers"]:
        for lb in answer["labels"]:
            text = answer["text"][lb["start"] : lb["end"]].replace("\n", " ")
            claims.setdefault(lb["n"], text)
    for s in group["sources"]:  # a passage no claim cites: its first sentence of prose
        if s["n"] not in claims:
            claims[s["n"]] = f"{prose_sentences(s['text'])[0].rstrip('.')} [{s['n']}]."
    answer = " ".join(claims[n] for n in sorted(claims))
    texts: list[int] = []

    def embed(batch: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        out = embedder.embed(batch)
        texts.append(len(batch))
        spent.append(time.perf_counter() - t0)
        return out

    totals, spent = [], []
    check_citations(answer, sources, embedder.embed)  # warm
    for _ in range(repeats):
        t0 = time.perf_counter()
        check_citations(answer, sources, embed)
        totals.append(time.perf_counter() - t0)
    return {
        "sentences": len(claims),
        "passages": len(sources),
        "answer_chars": len(answer),
        "texts_embedded": texts[0],
        "median_ms": round(1000 * float(np.median(totals)), 1),
        "embed_median_ms": round(1000 * float(np.median(spent)), 1),
        "device": embedder.device,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.citecheck",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--build", metavar="DIR", help="rebuild the two sets from the PDFs under DIR")
    p.add_argument("--tune", action="store_true", help="grid-search the constants on tune")
    p.add_argument("--embedder", metavar="DIR", help="sentence-transformers folder")
    p.add_argument("--time-only", action="store_true", help="only the cost of one check")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = p.parse_args(argv)
    if args.build:
        build(Path(args.build))
        return 0

    from app.config import default_embedder_path, isolate_from_network
    from app.core import citecheck
    from app.core.embedding import Embedder

    isolate_from_network()
    embedder = Embedder(Path(args.embedder) if args.embedder else default_embedder_path())
    embedder.load()
    tune_groups, held_groups = load(TUNE), load(HELDOUT)
    if args.time_only:
        print(json.dumps({"timing": timing(embedder, held_groups, repeats=15)}))
        return 0
    tune_rows = collect(tune_groups, embedder.embed)
    held_rows = collect(held_groups, embedder.embed)
    threshold, weight = citecheck.THRESHOLD, citecheck.LEXICAL_WEIGHT
    result: dict = {}
    if args.tune:
        threshold, weight, _ = tune(tune_rows)
        result["tuned"] = {"THRESHOLD": threshold, "LEXICAL_WEIGHT": weight}
    result["constants"] = {"THRESHOLD": threshold, "LEXICAL_WEIGHT": weight}
    for name, rows in (("tune", tune_rows), ("heldout", held_rows)):
        result[name] = scores(rows, threshold, weight)
        result[name].update(breakdown(rows, threshold, weight))
    result["timing"] = timing(embedder, held_groups)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
