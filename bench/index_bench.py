"""Benchmark of indexing and retrieval on the 269 files of ../shared/data/summaries.

A script, not a test:  .venv/bin/python bench/index_bench.py [--profile]

Prints one Markdown table (ours vs the plain llama-index default, measured in the same run), the
machine it ran on, and how much CPU other processes took during each step (a shared 2-core machine
can double every number). Progress goes to stderr, the table to stdout. Results: docs/PERFORMANCE.md.

  (a) raw SentenceTransformer.encode time for exactly the chunk texts `build_index` embeds
  (b) `build_index` wall time, model load reported separately; the ratio b/a (target <= 1.3)
  (c) a rebuild with nothing changed, as a share of (b) (target <= 5 %)
  (d) query latency p50/p95: retrieval only (vector precomputed) and with the query embedding
  (e) the same for llama-index's default: one Document per study, VectorStoreIndex over a
      FaissVectorStore, default SentenceSplitter chunking and embed batch size, dense only

--profile adds a second table: the raw encode of the same texts in calls of 256 and of 64 texts, which
is where (b)'s overhead over (a) comes from (padding; see docs/PERFORMANCE.md).
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SUMMARIES = ROOT.parent / "shared" / "data" / "summaries"
QUESTIONS = ROOT / "evals" / "summaries.jsonl"
N_QUERIES = 50
WARMUP_QUERIES = 3
TOP_K = 5

import assistant  # noqa: E402,F401  (sets HF_HUB_OFFLINE=1 before any model library is imported)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from assistant.chunk import chunk_study  # noqa: E402
from assistant.embed import embed_texts, embedding_model, model_path  # noqa: E402
from assistant.index import build_index  # noqa: E402
from assistant.parse import load_corpus  # noqa: E402
from assistant.retrieve import Library  # noqa: E402
from assistant.settings import Settings  # noqa: E402

# Used only when evals/summaries.jsonl is missing.
FALLBACK_QUESTIONS = [
    "Does pacing help people with ME/CFS?",
    "What is post-exertional malaise and how is it measured?",
    "Is graded exercise therapy harmful in ME/CFS?",
    "Do two-day cardiopulmonary exercise tests show lower performance on day two?",
    "Is there evidence of mitochondrial dysfunction in ME/CFS?",
    "What do studies show about orthostatic intolerance and POTS in ME/CFS?",
    "Does low-dose naltrexone improve symptoms?",
    "Are natural killer cells less active in ME/CFS patients?",
    "Is ME/CFS an autoimmune disease?",
    "What happened in the rituximab trial?",
    "Does long COVID overlap with ME/CFS?",
    "Is cerebral blood flow reduced when patients stand up?",
    "What do brain imaging studies find in ME/CFS?",
    "Is there a diagnostic biomarker for ME/CFS?",
    "Does the gut microbiome differ in ME/CFS?",
    "How common is small fibre neuropathy in ME/CFS?",
    "Can cognitive behavioural therapy cure ME/CFS?",
    "What is the prognosis for children with ME/CFS?",
    "Does Epstein-Barr virus trigger ME/CFS?",
    "Are autoantibodies against adrenergic receptors elevated?",
    "Does immunoadsorption help patients with autoantibodies?",
    "What does the Institute of Medicine report recommend?",
    "Is sleep disturbed in ME/CFS, and how?",
    "Do patients have reduced heart rate variability?",
    "Is there impaired oxygen extraction during exercise?",
    "What are the metabolomic findings in ME/CFS?",
    "Does pyridostigmine improve exercise capacity?",
    "Is ME/CFS more common in women?",
    "How many people with ME/CFS are housebound or bedbound?",
    "What do twin and genetic studies show about ME/CFS?",
    "Do red blood cells deform less in ME/CFS?",
    "Is there neuroinflammation on PET scans?",
    "What is the role of the HPA axis and cortisol?",
    "Do patients have abnormal lactate after exercise?",
    "Does coenzyme Q10 help fatigue?",
    "Is there evidence for plasma cell or B cell abnormalities?",
    "What is the economic burden of ME/CFS?",
    "How reliable are the different case definitions?",
    "Does exercise cause a drop in cognitive performance the next day?",
    "Are cytokine levels different early versus late in the illness?",
    "Is blood volume reduced in ME/CFS?",
    "Do patients have endothelial dysfunction?",
    "What do muscle biopsies show?",
    "Is there increased sodium in the muscles?",
    "What treatments have been tested in randomised trials?",
    "Does hyperbaric oxygen therapy help?",
    "What is the PACE trial and what were its criticisms?",
    "How does ME/CFS affect quality of life compared with other illnesses?",
    "Is there evidence of T cell exhaustion?",
    "Are there changes in the retina or eye blood vessels?",
]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def questions() -> list[str]:
    if QUESTIONS.is_file():
        found = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines() if line.strip()]
        if len(found) >= N_QUERIES:
            return found[:N_QUERIES]
    return FALLBACK_QUESTIONS[:N_QUERIES]


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


class OtherLoad:
    """CPU used by other processes (cores, averaged) while a step runs: a benchmark on a shared machine
    is only worth what its neighbours leave it, so the run says how quiet the machine was."""

    steps: list[tuple[str, float]] = []

    def __init__(self, step: str):
        self.step = step

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
        own = os.times()
        return busy, own.user + own.system, time.perf_counter()

    def __enter__(self):
        try:
            self.start = self._sample()
        except (OSError, ValueError):
            self.start = None
        return self

    def __exit__(self, *exc):
        if self.start is not None:
            end = self._sample()
            wall = end[2] - self.start[2]
            others = ((end[0] - self.start[0]) - (end[1] - self.start[1])) / max(wall, 1e-9)
            OtherLoad.steps.append((self.step, max(0.0, others)))
        return False

    @classmethod
    def report(cls) -> str:
        if not cls.steps:
            return "CPU used by other processes: not measured (no /proc/stat)"
        worst = max(cls.steps, key=lambda s: s[1])
        return ("CPU used by other processes during the steps (cores, of " f"{os.cpu_count()}): "
                + ", ".join(f"{name} {cores:.2f}" for name, cores in cls.steps)
                + (" -- the machine was busy, numbers are inflated" if worst[1] > 0.25 else " -- quiet"))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or cpu
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    except OSError:
        pass
    import faiss
    import torch

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    return (f"{cpu}, {os.cpu_count()} cores (torch threads {torch.get_num_threads()}), RAM {ram}; "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
            f"torch {torch.__version__}, faiss {faiss.__version__}, "
            f"llama-index-core {version('llama-index-core')}, "
            f"llama-index-vector-stores-faiss {version('llama-index-vector-stores-faiss')}, "
            f"llama-index-embeddings-huggingface {version('llama-index-embeddings-huggingface')}, "
            f"sentence-transformers {version('sentence-transformers')}")


def bench_raw_encode(texts: list[str], profile: bool = False) -> dict:
    """(a) the floor: one SentenceTransformer, warmed up, encoding exactly the index's texts."""
    from sentence_transformers import SentenceTransformer

    log("(a) loading SentenceTransformer for the raw encode")
    model, load = timed(SentenceTransformer, model_path(), device="cpu")
    model.encode(texts[:16], batch_size=64, normalize_embeddings=True)  # warm-up
    log(f"(a) encoding {len(texts)} chunk texts (batch 64)")
    with OtherLoad("a"):
        vectors, seconds = timed(model.encode, texts, batch_size=64, normalize_embeddings=True,
                                 show_progress_bar=False)
    assert vectors.shape[0] == len(texts)
    result = {"seconds": seconds, "load": load, "chunks": len(texts)}
    if profile:
        # Where b's overhead over a comes from: encode() sorts texts by length and pads each batch to its
        # longest text only within one call; HuggingFaceEmbedding.get_text_embedding_batch calls encode()
        # once per embed_batch_size (64) texts in corpus order, and build_index hands it 256 at a time.
        for size in (256, 64):
            log(f"(profile) raw encode in calls of {size} texts, corpus order")
            with OtherLoad(f"profile-{size}"):
                started = time.perf_counter()
                for start in range(0, len(texts), size):
                    model.encode(texts[start:start + size], batch_size=64, normalize_embeddings=True,
                                 show_progress_bar=False)
                result[f"calls_of_{size}"] = time.perf_counter() - started
        tok = model.tokenizer
        lengths = np.array([min(len(ids), model.max_seq_length)
                            for ids in tok(texts, add_special_tokens=True)["input_ids"]])
        result["tokens"] = int(lengths.sum())
        for size in (len(texts), 256, 64):
            padded = 0
            for start in range(0, len(texts), size):
                call = np.sort(lengths[start:start + size])[::-1]
                padded += sum(int(call[b:b + 64].max()) * len(call[b:b + 64]) for b in range(0, len(call), 64))
            result[f"padded_{size}"] = padded
    del model
    return result


def bench_ours(index_dir: Path, qs: list[str], expected_chunks: int) -> dict:
    settings = Settings(index_dir=index_dir)
    # (b) a fresh process would load the model inside build_index; clear the per-process cache so it does here too.
    embedding_model.cache_clear()
    log("(b) build_index, first build (model load included, reported separately)")
    with OtherLoad("b"):
        first = build_index([SUMMARIES], settings)
    assert first.chunks == expected_chunks, (first.chunks, expected_chunks)
    assert first.embedded_chunks == first.chunks
    log(f"(b) built: {first.studies} studies, {first.chunks} chunks in {first.seconds:.1f} s "
        f"(model load {first.model_load_seconds:.1f} s)")

    log("(c) build_index again, nothing changed")
    with OtherLoad("c"):
        second = build_index([SUMMARIES], settings)
    assert second.embedded_chunks == 0, f"a no-change rebuild embedded {second.embedded_chunks} chunks"
    assert second.reused_chunks == first.chunks

    log("(d) opening the index and timing queries")
    library, open_seconds = timed(Library, index_dir, settings.candidates)
    embed = lambda q: embed_texts([q], settings.embedding_model, settings.embed_batch_size)[0]  # noqa: E731
    for q in qs[:WARMUP_QUERIES]:
        library.retrieve(q, embed(q), top_k=TOP_K)
    vectors = [embed(q) for q in qs]
    retrieval, end_to_end = [], []
    with OtherLoad("d"):
        for q, v in zip(qs, vectors):
            hits, seconds = timed(library.retrieve, q, v, top_k=TOP_K)
            assert hits
            retrieval.append(seconds)
        for q in qs:
            started = time.perf_counter()
            library.retrieve(q, embed(q), top_k=TOP_K)
            end_to_end.append(time.perf_counter() - started)
    return {"first": first, "second": second, "open": open_seconds,
            "retrieval": percentiles(retrieval), "end_to_end": percentiles(end_to_end)}


def bench_baseline(studies, qs: list[str]) -> dict:
    """(e) llama-index's default: a Document per study, default splitter and batch size, dense only."""
    import faiss
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.schema import QueryBundle
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.faiss import FaissVectorStore

    docs = []
    for study in studies:
        body = "\n\n".join(f"{s.heading}\n" + "\n".join(s.items) for s in study.sections if s.items)
        docs.append(Document(text=f"{study.title}\n\n{body}", metadata={"study_id": study.id}))

    log("(e) baseline: loading HuggingFaceEmbedding (default settings)")
    embed_model, load = timed(HuggingFaceEmbedding, model_name=model_path())
    log(f"(e) baseline: VectorStoreIndex.from_documents over {len(docs)} documents "
        f"(embed batch {embed_model.embed_batch_size})")
    storage = StorageContext.from_defaults(vector_store=FaissVectorStore(faiss_index=faiss.IndexFlatIP(384)))
    with OtherLoad("e-build"):
        index, build = timed(VectorStoreIndex.from_documents, docs, storage_context=storage,
                             embed_model=embed_model)
    chunks = storage.vector_store.client.ntotal
    # The default splitter cuts 1024-token chunks; the model reads at most max_seq_length of them.
    from llama_index.core.schema import MetadataMode

    model = embed_model._model
    lengths = [len(ids) for ids in model.tokenizer(
        [n.get_content(metadata_mode=MetadataMode.EMBED) for n in index.docstore.docs.values()],
        add_special_tokens=True)["input_ids"]]
    limit = model.max_seq_length
    truncated = (sum(1 for n in lengths if n > limit), sum(max(0, n - limit) for n in lengths) / sum(lengths))
    retriever = index.as_retriever(similarity_top_k=TOP_K)

    log("(e) baseline: timing queries")
    for q in qs[:WARMUP_QUERIES]:
        retriever.retrieve(q)
    vectors = [embed_model.get_query_embedding(q) for q in qs]
    retrieval = []
    with OtherLoad("e-queries"):
        for q, v in zip(qs, vectors):
            hits, seconds = timed(retriever.retrieve, QueryBundle(query_str=q, embedding=v))
            assert hits
            retrieval.append(seconds)
        end_to_end = [timed(retriever.retrieve, q)[1] for q in qs]
    return {"docs": len(docs), "chunks": chunks, "load": load, "build": build, "truncated": truncated,
            "limit": limit,
            "retrieval": percentiles(retrieval), "end_to_end": percentiles(end_to_end)}


def table(raw: dict, ours: dict, base: dict, studies: int, files: int, queries: int) -> str:
    first, second = ours["first"], ours["second"]
    b = first.seconds - first.model_load_seconds
    a = raw["seconds"]
    ratio = b / a
    rebuild_share = second.seconds / b
    base_ratio = base["build"] / a

    def pct(p):  # (p50, p95) -> text
        return f"p50 {p[0]:.1f} ms / p95 {p[1]:.1f} ms"

    rows = [
        ("corpus", f"{files} files -> {studies} studies", f"{base['docs']} documents (one per study)", ""),
        ("chunks embedded", f"{first.chunks} (one per citable unit)",
         f"{base['chunks']} (SentenceSplitter default, 1024 tokens)",
         f"default: {base['truncated'][0]} of {base['chunks']} chunks exceed the model's {base['limit']}-token "
         f"input, so {100 * base['truncated'][1]:.0f} % of their tokens are never embedded"),
        ("(a) raw `SentenceTransformer.encode`, our chunk texts (batch 64)",
         f"{a:.2f} s ({raw['chunks'] / a:.0f} chunks/s)", "",
         "the floor: warmed-up model, no llama-index"),
        ("(b) `index` wall time excluding model load",
         f"{b:.2f} s ({first.chunks / b:.0f} chunks/s)",
         f"{base['build']:.2f} s ({base['chunks'] / base['build']:.0f} chunks/s)", ""),
        ("(b) model load (reported separately)", f"{first.model_load_seconds:.2f} s", f"{base['load']:.2f} s", ""),
        ("(b) `index` wall time including model load", f"{first.seconds:.2f} s",
         f"{base['build'] + base['load']:.2f} s", ""),
        ("ratio b/a", f"**{ratio:.2f}**", f"{base_ratio:.2f} (different chunks)",
         f"target <= 1.3: {'met' if ratio <= 1.3 else '**missed**'}"),
        ("(c) no-change rebuild", f"{second.seconds:.2f} s = **{100 * rebuild_share:.1f} %** of (b), "
         f"{second.embedded_chunks} chunks embedded", "n/a (no incremental rebuild)",
         f"target <= 5 %: {'met' if rebuild_share <= 0.05 else '**missed**'}"),
        ("(d) open index (`Library`)", f"{ours['open']:.2f} s", "n/a (in memory)", ""),
        (f"(d) query latency, retrieval only ({queries} queries)", pct(ours["retrieval"]), pct(base["retrieval"]),
         "ours: dense + BM25, RRF fusion, 50 candidates, grouped per study; default: dense top-5"),
        (f"(d) query latency, embed + retrieve ({queries} queries)", pct(ours["end_to_end"]),
         pct(base["end_to_end"]), "one query embedding on CPU each"),
    ]
    lines = ["| measure | ours | llama-index default | target/notes |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def profile_table(raw: dict, ours: dict) -> str:
    first = ours["first"]
    b = first.seconds - first.model_load_seconds
    n = raw["chunks"]
    rows = [
        ("raw encode, one call (= a)", f"{raw['seconds']:.2f} s", f"{raw[f'padded_{n}']:,}",
         "encode() sorts all texts by length, so batches hold similar lengths"),
        ("raw encode, calls of 256 texts", f"{raw['calls_of_256']:.2f} s", f"{raw['padded_256']:,}",
         "the slices `_embed_with_progress` passes to `embed_texts`"),
        ("raw encode, calls of 64 texts", f"{raw['calls_of_64']:.2f} s", f"{raw['padded_64']:,}",
         "what `HuggingFaceEmbedding.get_text_embedding_batch` does (one encode per embed_batch_size)"),
        ("`index` excluding model load (= b)", f"{b:.2f} s", "",
         f"of which the no-change rebuild (parse, chunk, hash, write, BM25) bounds the non-embedding part: "
         f"{ours['second'].seconds:.2f} s"),
    ]
    lines = [f"Profile: the same {n} texts ({raw['tokens']:,} real tokens) encoded with different call sizes",
             "", "| encoding | seconds | padded tokens | notes |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--profile", action="store_true",
                        help="also time raw encode in calls of 256 and 64 texts, to locate b's overhead over a")
    args = parser.parse_args()
    if not SUMMARIES.is_dir():
        sys.exit(f"no corpus at {SUMMARIES}")
    qs = questions()
    log(f"corpus {SUMMARIES}; {len(qs)} queries")
    load = load_corpus([SUMMARIES])
    texts = [node.get_content(metadata_mode="embed") for study in load.studies for node in chunk_study(study)]
    log(f"{load.files} files, {len(load.studies)} studies, {len(texts)} chunks, {len(load.errors)} files skipped")

    raw = bench_raw_encode(texts, args.profile)
    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as tmp:
        ours = bench_ours(Path(tmp) / "index", qs, len(texts))
    base = bench_baseline(load.studies, qs)
    log("done")
    print(table(raw, ours, base, len(load.studies), load.files, len(qs)))
    print()
    print(f"Machine: {machine()}")
    print()
    print(OtherLoad.report())
    if args.profile:
        print()
        print(profile_table(raw, ours))


if __name__ == "__main__":
    main()
