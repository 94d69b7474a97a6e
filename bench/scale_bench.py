"""Scale benchmark of the unit store: libraries of 10,000 and 100,000 studies on one machine.

A script, not a test:

    .venv/bin/python bench/scale_bench.py --studies 10000 100000 --json

The libraries are recombined from the real entries (../shared/data/summaries, summaries-2 and the
bundled corpus/): study i copies the sections of real study i mod R, a third of its list items get a
unit of another real study appended, its year is moved back by up to 20 years, and every unit vector
is the real unit's vector (mixed 0.8/0.2 with the appended unit's) plus normalised noise (norm 0.3),
renormalised. The real units and the questions are embedded ONCE (and cached on disk), so the bench
measures the store, not the model.

For each size it reports, for the new store (`index.write_library` + `retrieve.Library`) and, beside
it in the same run, today's store before this work (bench/legacy_store.py, llama-index storage):

  build     write the build (chunking, texts, study records, vectors, IVF above 200k units, BM25,
            checksums), seconds and seconds per 1,000 units; no embedding model involved
  open      `Library(...)` in a fresh process (imports done first; files in the page cache), and of
            that the checksum verification of every file
  RSS       peak resident memory (VmHWM) of that process after opening and answering, and at the
            end its anonymous / file-backed parts (mapped pages count when they are touched)
  latency   p50/p95 of retrieval + evidence (`Library.retrieve` then `evidence.gather`, the
            question's embedding excluded) over the questions of evals/summaries.jsonl, without
            filters and with filters (year, study type, PEM, a combination, in turn)
  recall    recall@10 of the dense search (IVF above 200k units) against an exact flat search over
            the same vectors, unfiltered and filtered

Progress goes to stderr; stdout gets the Markdown table, the machine, the CPU other processes used
during each step, and, with --json, as its last line one JSON object keyed by size:
{"10000": {"build_s", "open_s", "rss_mb", "p50_ms", "p95_ms", "p95_filtered_ms", ...}, ...}.
Results: docs/PERFORMANCE.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SHARED = ROOT.parent / "shared" / "data"
SOURCES = [SHARED / "summaries", SHARED / "summaries-2", ROOT / "corpus"]
QUESTIONS = ROOT / "evals" / "summaries.jsonl"
NOISE = 0.3  # norm of the noise added to each reused vector
MIX = 0.2  # weight of the appended unit's vector in a recombined unit
WARMUP = 3
LEGACY_FILTERED = 8  # filtered questions asked of today's store (each fetches every unit) ...
LEGACY_FILTERED_SECONDS = 120.0  # ... or fewer, once they took this long (at least one of each filter kind)

import assistant  # noqa: E402,F401  (sets HF_HUB_OFFLINE=1 before any model library is imported)

import numpy as np  # noqa: E402

from index_bench import OtherLoad, machine  # noqa: E402

# Filters asked in turn: a year range, one study type, a combination, PEM required (rare: exact path).
FILTERS = [{"year_from": 2020}, {"study_types": ["rct"]},
           {"study_types": ["case-control", "cohort", "cross-sectional"], "year_to": 2015},
           {"pem_required": True}]


def log(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the real units and questions, embedded once -----------------------------------------------

def real_library(cache_dir: Path):
    """The real studies, their unit vectors (in study_units order) and the questions with vectors."""
    from assistant.chunk import embed_text, study_units
    from assistant.embed import embed_texts, model_name
    from assistant.parse import load_corpus
    from assistant.understand import understand

    load = load_corpus([p for p in SOURCES if p.exists()])
    studies = [s for s in load.studies if study_units(s)]
    texts = [embed_text(s, t) for s in studies for _, t in study_units(s)]
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines() if line.strip()]
    searches = [understand(q).search_text for q in questions]
    key = hashlib.sha256("\n".join([model_name(), *texts, "--", *searches]).encode()).hexdigest()[:16]
    cache = cache_dir / f"vectors-{key}.npz"
    if cache.is_file():
        log(f"unit and question vectors from the cache {cache}")
        saved = np.load(cache)
        units, queries, seconds = saved["units"], saved["queries"], float(saved["seconds"])
    else:
        log(f"embedding {len(texts)} real units and {len(searches)} questions once (cached in {cache_dir})")
        started = time.perf_counter()
        with OtherLoad("embed"):
            units = embed_texts(texts)
            queries = embed_texts(searches)
        seconds = time.perf_counter() - started
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.savez(cache, units=units, queries=queries, seconds=seconds)
    return studies, units.astype("float32"), questions, queries.astype("float32"), seconds


def synthesise(real, real_vectors: np.ndarray, n_studies: int, out: Path, seed: int = 0):
    """n_studies recombined from the real ones, and their unit vectors (study_units order) written to a
    float32 memmap at `out`."""
    from assistant.chunk import study_units
    from assistant.study import Role

    rng = np.random.default_rng(seed)
    real_units = [study_units(s) for s in real]
    offsets = np.cumsum([0] + [len(u) for u in real_units])
    donors: dict[Role, list[tuple[int, str]]] = {}
    for number, units in enumerate(real_units):
        for k, (unit, text) in enumerate(units):
            if unit.role != Role.NOT_PROVEN:  # sentence units stay as they are (they are re-split)
                donors.setdefault(unit.role, []).append((int(offsets[number]) + k, text))
    studies, sources, mixes = [], [], []
    R = len(real)
    for i in range(n_studies):
        t = i % R
        template = real[t]
        sections, next_position, appended = [], {}, {}
        draws = rng.random(64)  # one draw per list item (far fewer than 64 per study), and a donor each
        picks = rng.integers(0, 1 << 30, 64)
        used = 0
        for section in template.sections:
            if section.generated or section.role == Role.NOT_PROVEN or section.role not in donors:
                sections.append(section)
                continue
            items, first = list(section.items), next_position.get(section.role, 0)
            pool = donors[section.role]
            for j in range(len(items)):
                if draws[used % 64] < 1 / 3:
                    row, text = pool[int(picks[used % 64]) % len(pool)]
                    items[j] = f"{items[j]} {text}"
                    appended[(section.role, first + j)] = row
                used += 1
            next_position[section.role] = first + len(items)
            sections.append(replace(section, items=items))
        studies.append(replace(template, id=f"synth:{i}", doi=None, pmid=None, url=None, source_path="synthetic",
                               year=(template.year or 2020) - int(rng.integers(0, 21)), sections=sections,
                               title=template.title if i < R else f"{template.title} ({i // R})"))
        for k, (unit, _) in enumerate(real_units[t]):
            sources.append(int(offsets[t]) + k)
            mixes.append(appended.get((unit.role, unit.position), -1))
    for study, t in ((studies[i], i % R) for i in range(0, n_studies, max(1, n_studies // 50))):
        assert len(study_units(study)) == len(real_units[t]), study.id  # same units as the template
    sources, mixes = np.asarray(sources), np.asarray(mixes)
    n, d = len(sources), real_vectors.shape[1]
    vectors = np.lib.format.open_memmap(out, mode="w+", dtype="float32", shape=(n, d))
    for start in range(0, n, 65536):
        a, b = sources[start:start + 65536], mixes[start:start + 65536]
        block = real_vectors[a].copy()
        has = b >= 0
        block[has] = (1 - MIX) * block[has] + MIX * real_vectors[b[has]]
        noise = rng.standard_normal(block.shape, dtype="float32")
        block += noise * (NOISE / np.linalg.norm(noise, axis=1, keepdims=True))
        vectors[start:start + 65536] = block / np.linalg.norm(block, axis=1, keepdims=True)
    vectors.flush()
    return studies, vectors


# --- CPU used by other processes (children counted as ours) ------------------------------------

class Quiet(OtherLoad):
    @staticmethod
    def _sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
        own = os.times()  # with the probe processes, once they were waited for
        return busy, own.user + own.system + own.children_user + own.children_system, time.perf_counter()


# --- the probe: a fresh process opens a library and answers ------------------------------------

def status() -> dict:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def probe(kind: str, path: Path, queries: Path, filtered_limit: int, recall: bool) -> dict:
    """Runs in its own process: open the library, answer, measure (RSS before recall is computed)."""
    import faiss  # noqa: F401  (imports before the clock: open time is the library's own)
    import bm25s  # noqa: F401

    from assistant.evidence import gather
    from assistant.index import verify_build
    from assistant.retrieve import Filters, Library
    from assistant.understand import understand

    if kind == "legacy":
        import llama_index.core  # noqa: F401
        import llama_index.retrievers.bm25  # noqa: F401
        import llama_index.vector_stores.faiss  # noqa: F401
        from legacy_store import LegacyLibrary
    saved = np.load(queries)
    vectors = saved["vectors"]
    questions = json.loads(str(saved["questions"]))
    understood = [understand(q) for q in questions]
    started = time.perf_counter()
    library = LegacyLibrary(path) if kind == "legacy" else Library(path)
    open_s = time.perf_counter() - started

    def answer(i: int, filters: Filters):
        u, v = understood[i], vectors[i]
        began = time.perf_counter()
        hits = library.retrieve(u.search_text, v, filters, top_k=5)
        retrieved = time.perf_counter()
        gather(u, v, hits, library.store, 3)
        return retrieved - began, time.perf_counter() - began, [h.study.id for h in hits]

    for i in range(WARMUP):
        answer(i, Filters())
    plain = [answer(i, Filters()) for i in range(len(questions))]
    filtered, spent = [], 0.0
    for i in range(min(filtered_limit, len(questions))):
        if kind == "legacy" and spent > LEGACY_FILTERED_SECONDS and i >= len(FILTERS):
            break
        began = time.perf_counter()
        filtered.append(answer(i, Filters(**{k: tuple(v) if isinstance(v, list) else v
                                             for k, v in FILTERS[i % len(FILTERS)].items()})))
        spent += time.perf_counter() - began
    memory = status()
    build = path if kind == "legacy" else Path(path) / "builds" / (Path(path) / "CURRENT").read_text().strip()
    began = time.perf_counter()
    verify_build(build)
    verify_s = time.perf_counter() - began

    def ms(values, q):
        return round(float(np.percentile(np.asarray(values) * 1000, q)), 2)

    result = {"open_s": round(open_s, 3), "verify_s": round(verify_s, 3),
              "rss_mb": round(memory["VmHWM"], 1), "rss_end_mb": round(memory["VmRSS"], 1),
              "rss_anon_mb": round(memory.get("RssAnon", 0), 1), "rss_file_mb": round(memory.get("RssFile", 0), 1),
              "p50_ms": ms([p[1] for p in plain], 50), "p95_ms": ms([p[1] for p in plain], 95),
              "p50_filtered_ms": ms([f[1] for f in filtered], 50), "p95_filtered_ms": ms([f[1] for f in filtered], 95),
              "p95_retrieve_ms": ms([p[0] for p in plain], 95), "queries": len(plain), "filtered_queries": len(filtered),
              "empty_filtered": sum(1 for f in filtered if not f[2]), "top5": [p[2] for p in plain]}
    if recall and kind == "new":
        result.update(dense_recall(library, vectors))
    return result


def dense_recall(library, queries: np.ndarray, k: int = 10) -> dict:
    """recall@k of the store's dense search against an exact scan of every vector, unfiltered and
    with each filter (computed after RSS was read: the scan touches every page)."""
    from assistant.retrieve import Filters

    store = library.store
    masks = [None] + [store.row_mask(Filters(**{a: tuple(v) if isinstance(v, list) else v for a, v in f.items()}))
                      for f in FILTERS]
    best = [[np.full((len(queries), 0), -np.inf, dtype="float32"), np.zeros((len(queries), 0), dtype="int64")]
            for _ in masks]
    for start in range(0, store.rows, 131072):
        scores = np.asarray(store.vectors[start:start + 131072]) @ queries.T  # rows x queries
        for m, mask in enumerate(masks):
            part = scores.T.copy()
            if mask is not None:
                part[:, ~mask[start:start + 131072]] = -np.inf
            rows = np.broadcast_to(np.arange(start, start + part.shape[1]), part.shape)
            allscores = np.concatenate([best[m][0], part], axis=1)
            allrows = np.concatenate([best[m][1], rows], axis=1)
            keep = np.argsort(-allscores, axis=1, kind="stable")[:, :k]
            best[m] = [np.take_along_axis(allscores, keep, 1), np.take_along_axis(allrows, keep, 1)]
    recalls = []
    for m, mask in enumerate(masks):
        hits = total = 0
        for q in range(len(queries)):
            exact = {int(r) for r, s in zip(best[m][1][q], best[m][0][q]) if s > -np.inf}
            got = set(store.nearest(queries[q], k, mask)[0].tolist())
            hits += len(exact & got)
            total += len(exact)
        recalls.append(hits / max(total, 1))
    return {"recall_at_10": round(recalls[0], 4), "recall_at_10_filtered": round(float(np.mean(recalls[1:])), 4),
            "recall_at_10_by_filter": [round(r, 4) for r in recalls[1:]]}


def run_probe(kind: str, path: Path, queries: Path, filtered_limit: int, recall: bool) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--probe", kind, "--index", str(path),
               "--queries", str(queries), "--filtered", str(filtered_limit)] + (["--recall"] if recall else [])
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"the {kind} probe of {path} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- one size --------------------------------------------------------------------------------------

def bench_size(n_studies: int, real, real_vectors, queries: Path, model: str, work: Path, legacy: bool) -> dict:
    from assistant.index import write_library

    log(f"{n_studies} studies: synthesising")
    folder = work / f"n{n_studies}"
    folder.mkdir(parents=True)
    started = time.perf_counter()
    with Quiet(f"{n_studies // 1000}k synthesise"):
        studies, vectors = synthesise(real, real_vectors, n_studies, folder / "vectors.npy")
    result = {"studies": n_studies, "units": int(len(vectors)), "synth_s": round(time.perf_counter() - started, 1)}
    log(f"{n_studies} studies, {len(vectors)} units synthesised in {result['synth_s']} s; building the new store")
    started = time.perf_counter()
    with Quiet(f"{n_studies // 1000}k build"):
        build = write_library(folder / "index", studies, vectors, model, say=lambda m: log(f"  {m}"))
    result["build_s"] = round(time.perf_counter() - started, 2)
    result["build_s_per_1k_units"] = round(result["build_s"] / len(vectors) * 1000, 3)
    manifest = json.loads((build / "manifest.json").read_text())
    result["index"] = manifest["store"]["index"]
    result["disk_mb"] = round(sum(p.stat().st_size for p in build.rglob("*") if p.is_file()) / 2**20, 1)
    log(f"built in {result['build_s']} s ({result['index']}, {result['disk_mb']} MB); probing in a fresh process")
    with Quiet(f"{n_studies // 1000}k probe"):
        result.update(run_probe("new", folder / "index", queries, 10**9, recall=True))
    log(f"new store: open {result['open_s']} s, peak RSS {result['rss_mb']} MB, p95 {result['p95_ms']} ms, "
        f"filtered p95 {result['p95_filtered_ms']} ms, recall@10 {result.get('recall_at_10')}")
    if legacy:
        log(f"{n_studies} studies: building today's store (llama-index storage)")
        from legacy_store import write_legacy

        (folder / "legacy").mkdir()
        started = time.perf_counter()
        with Quiet(f"{n_studies // 1000}k legacy build"):
            write_legacy(folder / "legacy", studies, np.asarray(vectors), model)
        old = {"build_s": round(time.perf_counter() - started, 2)}
        old["build_s_per_1k_units"] = round(old["build_s"] / len(vectors) * 1000, 3)
        old["disk_mb"] = round(sum(p.stat().st_size for p in (folder / "legacy").rglob("*") if p.is_file()) / 2**20, 1)
        log(f"today's store built in {old['build_s']} s; probing")
        with Quiet(f"{n_studies // 1000}k legacy probe"):
            old.update(run_probe("legacy", folder / "legacy", queries, LEGACY_FILTERED, recall=False))
        same = [len(set(a) & set(b)) / max(len(b), 1) for a, b in zip(result["top5"], old["top5"])]
        old["top5_overlap_with_new"] = round(float(np.mean(same)), 3)
        log(f"today's store: open {old['open_s']} s, peak RSS {old['rss_mb']} MB, p95 {old['p95_ms']} ms, "
            f"filtered p95 {old['p95_filtered_ms']} ms")
        old.pop("top5")
        result["legacy"] = old
    result.pop("top5")
    del studies, vectors
    shutil.rmtree(folder, ignore_errors=True)
    return result


# --- report ----------------------------------------------------------------------------------------

def table(results: dict, legacy_skipped: dict) -> str:
    rows = [("units (studies)", lambda r: f"{r['units']:,} ({r['studies']:,})"),
            ("dense index", lambda r: r.get("index", "flat (in memory)")),
            ("build", lambda r: f"{r['build_s']:.1f} s = {r['build_s_per_1k_units']:.3f} s per 1k units"),
            ("on disk", lambda r: f"{r['disk_mb']:,.0f} MB"),
            ("open (fresh process)", lambda r: f"{r['open_s']:.2f} s (checksums {r['verify_s']:.2f} s)"),
            ("peak RSS (anon + file at end)", lambda r: f"{r['rss_mb']:,.0f} MB ({r['rss_anon_mb']:,.0f} + {r['rss_file_mb']:,.0f})"),
            ("retrieval + evidence, no filter", lambda r: f"p50 {r['p50_ms']:.1f} ms / p95 {r['p95_ms']:.1f} ms ({r['queries']} q)"),
            ("retrieval + evidence, filtered", lambda r: f"p50 {r['p50_filtered_ms']:.1f} ms / p95 {r['p95_filtered_ms']:.1f} ms ({r['filtered_queries']} q)"),
            ("dense recall@10 vs flat (filtered)", lambda r: f"{r['recall_at_10']:.3f} ({r['recall_at_10_filtered']:.3f})" if "recall_at_10" in r else "1 (flat)"),
            ]
    columns = []
    for size, r in results.items():
        columns.append((f"{int(size):,} studies, new", r))
        if "legacy" in r:
            columns.append((f"{int(size):,} studies, today's", {**r["legacy"], "units": r["units"], "studies": r["studies"]}))
        elif size in legacy_skipped:
            columns.append((f"{int(size):,} studies, today's", None))
    lines = ["| measure | " + " | ".join(c for c, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, cell in rows:
        lines.append(f"| {name} | " + " | ".join("not run" if r is None else cell(r) for _, r in columns) + " |")
    for size, reason in legacy_skipped.items():
        lines.append(f"\nToday's store at {int(size):,} studies was not run: {reason}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--studies", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--legacy", type=int, nargs="*", default=None,
                        help="sizes at which today's store is measured too (default: those up to 20,000 studies)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line keyed by size")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()), help="where libraries are built")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "atlas-scale-bench-cache")
    parser.add_argument("--probe", choices=["new", "legacy"], help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--queries", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--filtered", type=int, default=10**9, help=argparse.SUPPRESS)
    parser.add_argument("--recall", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe, args.index, args.queries, args.filtered, args.recall)))
        return
    began = time.perf_counter()
    from assistant.embed import model_name

    legacy_sizes = set(args.legacy) if args.legacy is not None else {n for n in args.studies if n <= 20000}
    real, real_vectors, questions, query_vectors, embed_s = real_library(args.cache)
    log(f"{len(real)} real studies, {len(real_vectors)} real units, {len(questions)} questions")
    work = Path(tempfile.mkdtemp(prefix="atlas-scale-", dir=args.work))
    queries = work / "queries.npz"
    np.savez(queries, vectors=query_vectors, questions=np.array(json.dumps(questions)))
    results, skipped = {}, {}
    try:
        for n in args.studies:
            results[str(n)] = bench_size(n, real, real_vectors, queries, model_name(), work, n in legacy_sizes)
            if n not in legacy_sizes:
                skipped[str(n)] = legacy_reason(n, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - began
    log(f"done in {total / 60:.1f} min")
    print(table(results, skipped))
    print()
    print(f"Real data: {len(real)} studies, {len(real_vectors)} units, embedded once "
          f"({embed_s:.0f} s, cached); {len(questions)} questions from {QUESTIONS.relative_to(ROOT)}. "
          f"Whole run {total / 60:.1f} min.")
    print()
    print(f"Machine: {machine()}")
    print()
    print(Quiet.report())
    if args.json:
        print()
        summary = {size: {k: r[k] for k in ("build_s", "open_s", "rss_mb", "p50_ms", "p95_ms", "p95_filtered_ms")}
                   | {k: r[k] for k in ("units", "build_s_per_1k_units", "index", "recall_at_10",
                                          "recall_at_10_filtered", "verify_s") if k in r}
                   | ({"legacy": {k: r["legacy"][k] for k in ("build_s", "open_s", "rss_mb", "p50_ms", "p95_ms",
                                                               "p95_filtered_ms")}} if "legacy" in r else {})
                   for size, r in results.items()}
        print(json.dumps(summary))


def legacy_reason(n: int, results: dict) -> str:
    measured = [(int(size), r["legacy"]) for size, r in results.items() if "legacy" in r]
    if not measured:
        return "not asked for (--legacy)"
    size, old = max(measured)
    factor = n / size
    return (f"at {size:,} studies it took {old['build_s']:.0f} s to build, {old['open_s']:.0f} s to open and "
            f"{old['rss_mb'] / 1024:.1f} GB peak RSS, and every filtered question fetched every unit "
            f"(p95 {old['p95_filtered_ms'] / 1000:.1f} s); everything it holds grows with the units, so "
            f"{n:,} studies would need about {old['rss_mb'] * factor / 1024:.0f} GB, {old['build_s'] * factor / 60:.0f} min "
            f"to build and {old['open_s'] * factor / 60:.0f} min to open, beyond this machine's budget "
            f"of 20 minutes for the whole bench")


if __name__ == "__main__":
    main()
