"""Stage 3, index: embed chunks into a FAISS index through llama-index, incrementally and atomically.

Layout of the index folder:
    CURRENT            the name of the live build (replaced atomically, so readers never see a half build)
    builds/<name>/     llama-index storage (docstore, index store, FAISS vectors), bm25/, studies.json,
                       manifest.json (model, dimension, chunking version, per-study content hash,
                       per-chunk text hash in FAISS order)

A rebuild reuses the vector of every chunk whose embedded text is unchanged, so an unchanged corpus
embeds nothing and an edited entry embeds only its changed chunks. A model or chunking change
rebuilds everything, and says why.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .chunk import CHUNKING_VERSION, chunk_study
from .embed import embed_texts, embedding_model, model_name
from .parse import load_corpus
from .settings import Settings
from .study import Study

POINTER = "CURRENT"


class EmptyCorpus(ValueError):
    """Nothing to index: the live index is kept rather than replaced by an empty one."""


class IndexMissing(Exception):
    """No usable index at the given folder; the message says which command builds one."""


@dataclass
class IndexSummary:
    studies: int = 0
    chunks: int = 0
    embedded_chunks: int = 0
    reused_chunks: int = 0
    skipped: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    model_load_seconds: float = 0.0
    full_rebuild_reason: str | None = None
    warnings: list[str] = field(default_factory=list)

    def contract(self) -> dict:
        """The `index --json` object (shared/contracts/index-summary.schema.json)."""
        keys = ("studies", "chunks", "embedded_chunks", "reused_chunks", "skipped", "seconds")
        return {k: getattr(self, k) for k in keys}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def live_build(index_dir: Path) -> Path | None:
    pointer = index_dir / POINTER
    if not pointer.is_file():
        return None
    build = index_dir / "builds" / pointer.read_text().strip()
    return build if (build / "manifest.json").is_file() else None


def _previous_vectors(index_dir: Path, model: str) -> tuple[dict[str, np.ndarray], str | None]:
    """Vectors of the live build keyed by chunk text hash, or why none can be reused."""
    build = live_build(index_dir)
    if build is None:
        return {}, None
    manifest = json.loads((build / "manifest.json").read_text())
    if manifest.get("model") != model:
        return {}, f"the embedding model changed ({manifest.get('model')} -> {model})"
    if manifest.get("chunking_version") != CHUNKING_VERSION:
        return {}, (f"the chunking changed (version {manifest.get('chunking_version')} -> "
                    f"{CHUNKING_VERSION})")
    import faiss

    faiss_index = faiss.read_index(str(build / "default__vector_store.json"))
    vectors = faiss_index.reconstruct_n(0, faiss_index.ntotal)
    return dict(zip(manifest["chunk_hashes"], vectors)), None


def build_index(paths: list[Path], settings: Settings, progress: bool = True) -> IndexSummary:
    started = time.perf_counter()
    index_dir = settings.index_dir
    load = load_corpus(paths)
    if not load.studies:
        raise EmptyCorpus("no study could be read from " + ", ".join(map(str, paths))
                          + ("; " + "; ".join(str(p) for p in load.errors[:3]) if load.errors else "")
                          + f". The index at {index_dir}/ was left as it was.")
    summary = IndexSummary(studies=len(load.studies), skipped=load.skipped,
                           warnings=[str(p) for p in load.problems if p.severity == "warning"])
    nodes = [node for study in load.studies for node in chunk_study(study)]
    texts = [node.get_content(metadata_mode="embed") for node in nodes]
    hashes = [sha(t) for t in texts]
    model = model_name(settings.embedding_model)
    old, summary.full_rebuild_reason = _previous_vectors(index_dir, model)

    todo = [i for i, h in enumerate(hashes) if h not in old]
    if todo:
        load_started = time.perf_counter()
        embedding_model(settings.embedding_model, settings.embed_batch_size)
        summary.model_load_seconds = time.perf_counter() - load_started
    fresh = _embed_with_progress([texts[i] for i in todo], settings, progress)
    new = dict(zip((hashes[i] for i in todo), fresh))
    for node, h in zip(nodes, hashes):
        node.embedding = (new[h] if h in new else old[h]).tolist()
    summary.chunks = len(nodes)
    summary.embedded_chunks = len(todo)
    summary.reused_chunks = len(nodes) - len(todo)

    build = _write_build(index_dir, nodes, load.studies, {
        "model": model, "dimension": len(nodes[0].embedding) if nodes else 0,
        "chunking_version": CHUNKING_VERSION, "chunk_hashes": hashes,
        "studies": {s.id: sha(json.dumps(s.to_dict(), sort_keys=True, default=str)) for s in load.studies},
        "skipped": summary.skipped, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    _swap_live(index_dir, build)
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _embed_with_progress(texts: list[str], settings: Settings, progress: bool) -> np.ndarray:
    """Vectors in the order of `texts`. The texts are embedded longest first: each model batch is
    padded to its longest text, so batches of similar lengths halve the work (bench/index_bench.py
    measured 61.6 s in corpus order against 29.9 s sorted for the 3,149 chunks of the summaries)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    step = settings.embed_batch_size * 4  # a bar step every few model batches
    vectors = np.zeros((len(texts), 0), dtype="float32")
    with tqdm(total=len(texts), desc="embedding chunks", unit="chunk", disable=not progress or not texts) as bar:
        for start in range(0, len(order), step):
            rows = order[start:start + step]
            part = embed_texts([texts[i] for i in rows], settings.embedding_model, settings.embed_batch_size)
            if not vectors.shape[1]:
                vectors = np.zeros((len(texts), part.shape[1]), dtype="float32")
            vectors[rows] = part
            bar.update(len(rows))
    return vectors


def _write_build(index_dir: Path, nodes, studies: list[Study], manifest: dict) -> Path:
    """Write a complete build beside the live one; nothing live is touched here."""
    import faiss
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.retrievers.bm25 import BM25Retriever
    from llama_index.vector_stores.faiss import FaissVectorStore

    builds = index_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    build = builds / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.perf_counter_ns() % 10**6}"
    partial = build.with_name(build.name + ".partial")
    dimension = manifest["dimension"] or 384
    store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(dimension))
    storage = StorageContext.from_defaults(vector_store=store)
    # Every node already carries its vector, so the mock model is never asked to embed anything.
    VectorStoreIndex(nodes, storage_context=storage, embed_model=MockEmbedding(embed_dim=dimension),
                     show_progress=False)
    storage.persist(persist_dir=str(partial))
    if nodes:
        BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=10).persist(str(partial / "bm25"),
                                                                           show_progress=False)
    (partial / "studies.json").write_text(json.dumps([s.to_dict() for s in studies], default=str))
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=1))
    partial.rename(build)
    return build


def _swap_live(index_dir: Path, build: Path) -> None:
    """Point CURRENT at the new build in one atomic rename, then remove older builds."""
    tmp = index_dir / f"{POINTER}.tmp-{os.getpid()}"
    tmp.write_text(build.name)
    os.replace(tmp, index_dir / POINTER)
    for other in (index_dir / "builds").iterdir():
        if other != build:
            shutil.rmtree(other, ignore_errors=True)
