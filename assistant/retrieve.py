"""Stage 4, retrieve: dense (FAISS) and BM25 (bm25s) retrieval over the unit store, fused by reciprocal
rank fusion, filtered by study metadata inside the store, and grouped per study so one study cannot
crowd out the others.

Answering reads only the index folder, never the corpus files; opening it maps the files rather than
loading every unit (store.py describes the layout)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .index import IndexMissing, open_live
from .store import BM25_DIR, FORMAT, Bm25, FaissUnitStore, StoreDamaged, StudyTable
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
                and (not self.year_to or (year > 0 and year <= self.year_to))
                and (not self.study_types or study.study_type in self.study_types)
                and (not self.pem_required or study.pem == Pem.REQUIRED)
                and (not self.study_ids or study.id in self.study_ids))

    __call__ = admits  # a Filters is the `admits` of UnitStore.search

    def study_mask(self, studies: StudyTable) -> np.ndarray:
        """`admits` for every study of a StudyTable at once, from its columns (no record is read)."""
        year = studies.years
        mask = np.ones(len(studies), dtype=bool)
        if self.year_from:
            mask &= year >= self.year_from
        if self.year_to:
            mask &= (year > 0) & (year <= self.year_to)
        if self.study_types:
            mask &= studies.type_mask(self.study_types)
        if self.pem_required:
            mask &= studies.pem_mask(Pem.REQUIRED)
        if self.study_ids:
            mask &= studies.id_mask(self.study_ids)
        return mask


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
    """An opened index: the unit store (vectors, texts, study records, memory-mapped and read on
    demand), its BM25 index and the manifest (without its per-chunk hashes, a million strings in a
    large library, which only `index` reads)."""

    def __init__(self, index_dir: Path, candidates: int = 50):
        found = open_live(index_dir)
        if found is None:
            raise IndexMissing(f"no index at {index_dir}/: build it with `atlas-assistant index` "
                               f"(or `atlas-assistant index --index {index_dir}`)")
        build, self.manifest = found
        if not self.manifest["chunk_hashes"]:
            raise IndexMissing(f"the index at {index_dir}/ is empty: no study was indexed; check the "
                               "corpus with `atlas-assistant validate`, then run `atlas-assistant index`")
        if self.manifest.get("format") != FORMAT:
            raise IndexMissing(f"the index at {index_dir}/ was written by an earlier version of atlas-assistant "
                               f"(format {self.manifest.get('format', 1)}, this version reads format {FORMAT}); "
                               "rebuild it with `atlas-assistant index` (unchanged texts are not embedded again)")
        self.candidates = candidates
        try:
            self.studies = StudyTable(build)
            self.store = FaissUnitStore(build, self.studies, self.manifest.get("store", {}))
            self.bm25 = Bm25(build / BM25_DIR, self.store.rows)
            if self.store.rows != len(self.manifest["chunk_hashes"]):
                raise StoreDamaged(f"the store holds {self.store.rows} units, the manifest "
                                   f"{len(self.manifest['chunk_hashes'])}")
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
            raise IndexMissing(f"the index at {index_dir}/ cannot be read ({type(err).__name__}: {err}); "
                               "rebuild it with `atlas-assistant index`") from None
        del self.manifest["chunk_hashes"]

    def refresh(self) -> bool:
        """Whether the library changed since it was opened (and was reopened); the shared store
        (store_pg.PostgresLibrary) follows re-indexes this way, an opened FAISS index does not."""
        return False

    def retrieve(self, question: str, query_vector: np.ndarray, filters: Filters = Filters(),
                 top_k: int = 5, per_study: int = 6, method: str = "fused") -> list[StudyHit]:
        """Studies ranked for the question. `method` dense or bm25 serves the baselines in evals.
        Dense (FAISS) and BM25 each return their best `candidates` units among those the filters
        admit (the filters are applied inside the store), fused by reciprocal rank fusion."""
        mask = self.store.row_mask(filters) if filters.active else None
        k = self.candidates
        ranked = []
        if method in ("fused", "dense"):
            ranked.append(self.store.nearest(query_vector, k, mask))
        if method in ("fused", "bm25"):
            ranked.append(self.bm25.top(question, k, mask))
        if method not in ("fused", "dense", "bm25"):
            raise ValueError(f"unknown retrieval method {method!r}")
        results = fuse(ranked, k) if method == "fused" else list(zip(*(a.tolist() for a in ranked[0])))
        similarities = self.store.scores([row for row, _ in results], query_vector).tolist()
        # Group by study first and read records and texts only for the studies returned.
        grouped: dict[int, list] = {}  # study number -> [rank score, relevance, [(row, similarity)]]
        for (row, score), sim in zip(results, similarities):
            # A study ranks by its best unit, so a long entry cannot win on its number of units.
            entry = grouped.setdefault(self.store.study_number(row), [score or 0.0, sim, []])
            entry[1] = max(entry[1], sim)
            if len(entry[2]) < per_study:
                entry[2].append((row, sim))
        hits = []
        for number, (rank_score, relevance, rows) in sorted(grouped.items(), key=lambda item: item[1][0],
                                                             reverse=True)[:top_k]:
            hit = StudyHit(self.studies.record(number), relevance=relevance, rank_score=rank_score)
            for row, sim in rows:
                unit = self.store.unit(row)
                hit.evidence.append(Evidence(unit.key(), self.store.text(row), unit.role.value, unit.position, sim))
            hits.append(hit)
        return hits


RRF_K = 60.0  # reciprocal rank fusion's constant (Cormack et al.; llama-index's QueryFusionRetriever)


def fuse(ranked: list[tuple[np.ndarray, np.ndarray]], k: int) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of ranked (rows, scores) lists, as llama-index's QueryFusionRetriever in
    mode reciprocal_rerank: each list sorted by score, 1/(rank + 60) summed per row, ties in first-seen
    order; the k best."""
    fused: dict[int, float] = {}
    for rows, scores in ranked:
        order = sorted(range(len(rows)), key=lambda i: float(scores[i]), reverse=True)
        for rank, i in enumerate(order):
            row = int(rows[i])
            fused[row] = fused.get(row, 0.0) + 1.0 / (rank + RRF_K)
    return sorted(fused.items(), key=lambda item: item[1], reverse=True)[:k]
