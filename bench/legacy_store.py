"""Today's store before the scale work (commit 710165d), kept only as the bench's baseline.

bench/scale_bench.py builds and opens it beside the new store in the same run: llama-index storage
(SimpleDocumentStore JSON with every node, index store JSON, a FAISS IndexFlatIP read into memory),
llama-index's BM25Retriever (its corpus JSON loaded, mmap=False), studies.json with every study
record, and filters applied after retrieval (a filtered question fetches every unit). The code is
that commit's `index._write_build`, `retrieve.Library` and `store.FaissUnitStore`, with the build
folder given directly instead of through CURRENT; the files are checksummed and verified on open as
that commit did. Not used by the assistant."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from assistant.index import file_sha256, verify_build
from assistant.retrieve import Evidence, Filters, StudyHit
from assistant.store import ScoredUnit, UnitId
from assistant.study import Study


def write_legacy(folder: Path, studies: list[Study], vectors: np.ndarray, model: str) -> None:
    """The build of commit 710165d: nodes carrying their vectors, persisted through llama-index."""
    import faiss
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.retrievers.bm25 import BM25Retriever
    from llama_index.vector_stores.faiss import FaissVectorStore

    from assistant.chunk import chunk_study

    nodes = [node for study in studies for node in chunk_study(study)]
    if len(nodes) != len(vectors):
        raise ValueError(f"{len(vectors)} vectors for {len(nodes)} nodes")
    for node, vector in zip(nodes, vectors):
        node.embedding = vector.tolist()
    dimension = vectors.shape[1]
    store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(dimension))
    storage = StorageContext.from_defaults(vector_store=store)
    VectorStoreIndex(nodes, storage_context=storage, embed_model=MockEmbedding(embed_dim=dimension),
                     show_progress=False)
    storage.persist(persist_dir=str(folder))
    BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=10).persist(str(folder / "bm25"), show_progress=False)
    (folder / "studies.json").write_text(json.dumps([s.to_dict() for s in studies], default=str))
    manifest = {"model": model, "dimension": dimension, "chunk_hashes": [n.node_id for n in nodes]}
    manifest["files"] = {p.relative_to(folder).as_posix(): file_sha256(p)
                         for p in sorted(folder.rglob("*")) if p.is_file()}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))


class LegacyUnitStore:
    """Commit 710165d's FaissUnitStore: every vector and text in memory."""

    def __init__(self, vectors: np.ndarray, rows: dict[str, int], texts: dict[str, str], studies: dict[str, Study]):
        self.vectors, self.studies = vectors, studies
        self._row = {UnitId.parse(key): row for key, row in rows.items()}
        self._text = {UnitId.parse(key): text for key, text in texts.items()}
        self._by_study: dict[str, list[UnitId]] = {}
        for unit in sorted(self._row, key=lambda u: (u.role.value, u.position)):
            self._by_study.setdefault(unit.study_id, []).append(unit)

    def search(self, query, k, admits=None):
        allowed = [u for sid, us in self._by_study.items() if admits is None or admits(self.studies[sid]) for u in us]
        if not allowed:
            return []
        scores = self.vectors[[self._row[u] for u in allowed]] @ query
        order = np.argsort(-scores)[:k]
        return [ScoredUnit(allowed[i], self._text[allowed[i]], float(scores[i])) for i in order]

    def units(self, study_id, role, query):
        ids = [u for u in self._by_study.get(study_id, []) if u.role == role]
        if not ids:
            return []
        scores = self.vectors[[self._row[u] for u in ids]] @ query
        return sorted((ScoredUnit(u, self._text[u], float(s)) for u, s in zip(ids, scores)), key=lambda x: -x.score)

    def rows(self, study_id: str) -> np.ndarray:
        return np.array([self._row[u] for u in self._by_study.get(study_id, [])], dtype=int)

    def best(self, study_id, query):
        rows = self.rows(study_id)
        return float(np.max(self.vectors[rows] @ query)) if len(rows) else 0.0

    def best_unit(self, key: str, query: np.ndarray) -> float:
        return float(self.vectors[self._row[UnitId.parse(key)]] @ query)


class LegacyLibrary:
    """Commit 710165d's Library over one build folder."""

    def __init__(self, build: Path, candidates: int = 50):
        from llama_index.core import StorageContext, load_index_from_storage
        from llama_index.core.embeddings import MockEmbedding
        from llama_index.core.llms import MockLLM
        from llama_index.core.retrievers import QueryFusionRetriever
        from llama_index.retrievers.bm25 import BM25Retriever
        from llama_index.vector_stores.faiss import FaissVectorStore

        verify_build(build)
        self.manifest = json.loads((build / "manifest.json").read_text())
        self.studies = {d["id"]: Study.from_dict(d) for d in json.loads((build / "studies.json").read_text())}
        store = FaissVectorStore.from_persist_dir(str(build))
        storage = StorageContext.from_defaults(vector_store=store, persist_dir=str(build))
        dim = self.manifest["dimension"] or 384
        index = load_index_from_storage(storage, embed_model=MockEmbedding(embed_dim=dim))
        faiss_index = store.client
        rows = {node_id: int(row) for row, node_id in index.index_struct.nodes_dict.items()}
        texts = {node_id: node.get_content() for node_id, node in storage.docstore.docs.items()}
        self.store = LegacyUnitStore(faiss_index.reconstruct_n(0, faiss_index.ntotal), rows, texts, self.studies)
        total = max(1, faiss_index.ntotal)
        bm25_dir = build / "bm25"

        def retrievers(k: int) -> dict:
            dense = index.as_retriever(similarity_top_k=k)
            bm25 = BM25Retriever.from_persist_dir(str(bm25_dir), mmap=False)
            bm25.similarity_top_k = k
            fused = QueryFusionRetriever([dense, bm25], llm=MockLLM(), mode="reciprocal_rerank",
                                         similarity_top_k=k, num_queries=1, use_async=False)
            return {"dense": dense, "bm25": bm25, "fused": fused}

        self._retrievers = (retrievers(min(candidates, total)), retrievers(total))

    def retrieve(self, question: str, query_vector: np.ndarray, filters: Filters = Filters(),
                 top_k: int = 5, per_study: int = 6, method: str = "fused") -> list[StudyHit]:
        from llama_index.core.schema import QueryBundle

        bundle = QueryBundle(query_str=question, embedding=query_vector.tolist())
        retriever = self._retrievers[1 if filters.active else 0][method]
        hits: dict[str, StudyHit] = {}
        for result in retriever.retrieve(bundle):
            meta = result.node.metadata
            study = self.studies[meta["study_id"]]
            if not filters.admits(study):
                continue
            sim = self.store.best_unit(result.node.node_id, query_vector)
            hit = hits.setdefault(study.id, StudyHit(study, relevance=sim, rank_score=result.score or 0.0))
            hit.relevance = max(hit.relevance, sim)
            if len(hit.evidence) < per_study:
                hit.evidence.append(Evidence(result.node.node_id, result.node.get_content(),
                                             meta["role"], meta["position"], sim))
        ranked = sorted(hits.values(), key=lambda h: h.rank_score, reverse=True)
        return ranked[:top_k]
