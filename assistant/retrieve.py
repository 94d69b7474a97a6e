"""Stage 4, retrieve: dense (FAISS) and BM25 retrieval through llama-index, fused by reciprocal rank
fusion, filtered by study metadata, and grouped per study so one study cannot crowd out the others.

Answering reads only the index folder, never the corpus files."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .index import IndexMissing, live_build
from .store import FaissUnitStore
from .study import Pem, Study


@dataclass(frozen=True)
class Filters:
    year_from: int | None = None
    year_to: int | None = None
    study_types: tuple[str, ...] = ()
    pem_required: bool = False
    study_ids: tuple[str, ...] = ()  # a follow-up about studies an earlier answer cited

    @property
    def active(self) -> bool:
        return bool(self.year_from or self.year_to or self.study_types or self.pem_required or self.study_ids)

    def admits(self, study: Study) -> bool:
        year = study.year or 0
        return ((not self.year_from or year >= self.year_from)
                and (not self.year_to or (year and year <= self.year_to))
                and (not self.study_types or study.study_type in self.study_types)
                and (not self.pem_required or study.pem == Pem.REQUIRED)
                and (not self.study_ids or study.id in self.study_ids))


@dataclass
class Evidence:
    """One retrieved unit: a finding, conclusion, question or not-proven sentence."""
    node_id: str
    text: str
    role: str
    position: int
    similarity: float  # cosine between question and this unit (title included)


@dataclass
class StudyHit:
    study: Study
    relevance: float  # best cosine among the study's retrieved units: comparable across questions
    rank_score: float  # the retriever's score of the study's best unit: what orders the studies
    evidence: list[Evidence] = field(default_factory=list)


class Library:
    """An opened index: the retrievers, the vectors and the study records."""

    def __init__(self, index_dir: Path, candidates: int = 50):
        build = live_build(index_dir)
        if build is None:
            raise IndexMissing(f"no index at {index_dir}/: build it with `atlas-assistant index` "
                               f"(or `atlas-assistant index --index {index_dir}`)")
        try:
            self.manifest = json.loads((build / "manifest.json").read_text())
            if not self.manifest["chunk_hashes"]:
                raise IndexMissing(f"the index at {index_dir}/ is empty: no study was indexed; check the "
                                   "corpus with `atlas-assistant validate`, then run `atlas-assistant index`")
            self.studies = {d["id"]: Study.from_dict(d)
                            for d in json.loads((build / "studies.json").read_text())}
            self._open_retrievers(build, candidates)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
            raise IndexMissing(f"the index at {index_dir}/ cannot be read ({type(err).__name__}: {err}); "
                               "rebuild it with `atlas-assistant index`") from None

    def _open_retrievers(self, build: Path, candidates: int) -> None:
        from llama_index.core import StorageContext, load_index_from_storage
        from llama_index.core.embeddings import MockEmbedding
        from llama_index.core.llms import MockLLM
        from llama_index.core.retrievers import QueryFusionRetriever
        from llama_index.retrievers.bm25 import BM25Retriever
        from llama_index.vector_stores.faiss import FaissVectorStore

        store = FaissVectorStore.from_persist_dir(str(build))
        storage = StorageContext.from_defaults(vector_store=store, persist_dir=str(build))
        dim = self.manifest["dimension"] or 384
        # Questions arrive with their vector already computed (once, for gate, retrieval and
        # composing), so the index never embeds anything itself.
        index = load_index_from_storage(storage, embed_model=MockEmbedding(embed_dim=dim))
        faiss_index = store.client
        rows = {node_id: int(row) for row, node_id in index.index_struct.nodes_dict.items()}
        texts = {node_id: node.get_content() for node_id, node in storage.docstore.docs.items()}
        self.store = FaissUnitStore(faiss_index.reconstruct_n(0, faiss_index.ntotal), rows, texts, self.studies)
        total = max(1, faiss_index.ntotal)
        bm25_dir = build / "bm25"

        def retrievers(k: int) -> dict:
            dense = index.as_retriever(similarity_top_k=k)
            bm25 = BM25Retriever.from_persist_dir(str(bm25_dir), mmap=False)
            bm25.similarity_top_k = k
            fused = QueryFusionRetriever([dense, bm25], llm=MockLLM(), mode="reciprocal_rerank",
                                         similarity_top_k=k, num_queries=1, use_async=False)
            return {"dense": dense, "bm25": bm25, "fused": fused}

        # Filters are applied after retrieval (FAISS has none), so a filtered search fetches everything.
        self._retrievers = (retrievers(min(candidates, total)), retrievers(total))

    def retrieve(self, question: str, query_vector: np.ndarray, filters: Filters = Filters(),
                 top_k: int = 5, per_study: int = 6, method: str = "fused") -> list[StudyHit]:
        """Studies ranked for the question. `method` dense or bm25 serves the baselines in evals."""
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
            # A study ranks by its best unit, so a long entry cannot win on its number of units.
            hit = hits.setdefault(study.id, StudyHit(study, relevance=sim, rank_score=result.score or 0.0))
            hit.relevance = max(hit.relevance, sim)
            if len(hit.evidence) < per_study:
                hit.evidence.append(Evidence(result.node.node_id, result.node.get_content(),
                                             meta["role"], meta["position"], sim))
        ranked = sorted(hits.values(), key=lambda h: h.rank_score, reverse=True)
        return ranked[:top_k]
