"""The unit store: where the citable units of every study live, with their vectors.

The seam between the index on disk and everything that reads evidence. Only this module knows how a
unit id is spelled; the rest use `UnitId`. The FAISS store keeps vectors in memory in the order of the
FAISS index; metadata filters are applied here, inside the store, before anything is ranked."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from .study import Role, Study

SEPARATOR = "::"


@dataclass(frozen=True)
class UnitId:
    study_id: str
    role: Role
    position: int

    def key(self) -> str:
        """The id under which the unit is stored (llama-index node id)."""
        return SEPARATOR.join((self.study_id, self.role.value, str(self.position)))

    @classmethod
    def parse(cls, key: str) -> UnitId:
        study_id, role, position = key.rsplit(SEPARATOR, 2)
        return cls(study_id, Role(role), int(position))


@dataclass(frozen=True)
class ScoredUnit:
    id: UnitId
    text: str
    score: float  # cosine similarity to the query


class UnitStore(Protocol):
    """What readers of evidence need from a store (FAISS here; a server store can follow)."""

    def search(self, query: np.ndarray, k: int, admits: Callable[[Study], bool] | None = None) -> list[ScoredUnit]: ...

    def units(self, study_id: str, role: Role, query: np.ndarray) -> list[ScoredUnit]: ...

    def best(self, study_id: str, query: np.ndarray) -> float: ...


class FaissUnitStore:
    """Units of an opened index: texts by id, unit vectors by FAISS row."""

    def __init__(self, vectors: np.ndarray, rows: dict[str, int], texts: dict[str, str], studies: dict[str, Study]):
        self.vectors, self.studies = vectors, studies
        self._row = {UnitId.parse(key): row for key, row in rows.items()}
        self._text = {UnitId.parse(key): text for key, text in texts.items()}
        self._by_study: dict[str, list[UnitId]] = {}
        for unit in sorted(self._row, key=lambda u: (u.role.value, u.position)):
            self._by_study.setdefault(unit.study_id, []).append(unit)

    def search(self, query, k, admits=None):
        """The k units closest to the query among the studies `admits` lets through."""
        allowed = [u for sid, us in self._by_study.items() if admits is None or admits(self.studies[sid]) for u in us]
        if not allowed:
            return []
        scores = self.vectors[[self._row[u] for u in allowed]] @ query
        order = np.argsort(-scores)[:k]
        return [ScoredUnit(allowed[i], self._text[allowed[i]], float(scores[i])) for i in order]

    def units(self, study_id, role, query):
        """A study's units of one role, most similar to the query first."""
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
        """Similarity of one stored unit (by the id the retrievers return) to the query."""
        return float(self.vectors[self._row[UnitId.parse(key)]] @ query)
