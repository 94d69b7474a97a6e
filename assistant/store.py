"""The unit store: where the citable units of every study live, with their vectors.

The seam between the index on disk and everything that reads evidence. Only this module knows how a
unit id is spelled and how the units of a build are laid out on disk; the rest use `UnitId`.

A build's unit store (format 2), written by `write_store`, read by `FaissUnitStore` and `StudyTable`:

    vectors.faiss    every unit vector (float32, unit length) in row order: a FAISS IndexFlatIP file,
                     memory-mapped (IO_FLAG_MMAP_IFC for FAISS, numpy.memmap for slices), never copied
    ann.faiss        above FLAT_LIMIT units only: an IVF index (8-bit scalar quantizer) over the same
                     rows, memory-mapped (IO_FLAG_MMAP); its candidates are re-scored exactly
    units.npy        per row: study number, role, position (memory-mapped)
    texts.bin        the unit texts, UTF-8, back to back; texts.npy their offsets (read on demand)
    studies.jsonl    one study record a line, read on demand; studies.npy per study: first row, number
                     of rows, year, type, PEM and the record's byte range; study_ids.json ids and types
    bm25/            bm25s index of the embedded texts (title: unit), loaded with mmap

Rows are grouped by study (a study's units are one row range), so a study's units are a slice, and a
metadata filter becomes a mask over rows that the search applies inside FAISS (an IDSelector) or by
scoring only the admitted rows; nothing outside the store sees a unit that the filter excludes."""
from __future__ import annotations

import json
import math
import mmap
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

import numpy as np

from .study import Pem, Role, Study

SEPARATOR = "::"
FORMAT = 2  # of a build's files; builds of format 1 (llama-index JSON storage) must be rebuilt
VECTORS = "vectors.faiss"
ANN = "ann.faiss"
UNITS = "units.npy"
TEXTS, TEXT_OFFSETS = "texts.bin", "texts.npy"
STUDY_RECORDS, STUDY_TABLE, STUDY_IDS = "studies.jsonl", "studies.npy", "study_ids.json"
BM25_DIR = "bm25"
FLAT_LIMIT = 200_000  # units: a flat (exact) search below, an IVF index above
NPROBE = 32  # IVF lists searched for an unfiltered query
RERANK = 100  # IVF candidates re-scored with the exact vectors
EXACT_ROWS = 20_000  # a filter that admits at most this many rows is searched exactly over them
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # bm25s's (and llama-index's BM25Retriever's) tokens
ROLES, PEMS = tuple(Role), tuple(Pem)
UNIT_DTYPE = np.dtype([("study", "<i4"), ("role", "i1"), ("position", "<i4")])
STUDY_DTYPE = np.dtype([("first", "<i8"), ("count", "<i4"), ("year", "<i4"), ("type", "<i2"), ("pem", "i1"),
                        ("start", "<i8"), ("end", "<i8")])
FLAT_HEADER = 45  # bytes before the vectors in a FAISS IndexFlat file


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


class StoreDamaged(ValueError):
    """A store file that does not hold what the manifest says."""


# --- writing -------------------------------------------------------------------------------------

def write_store(folder: Path, studies: Iterable[Study], vectors: np.ndarray, dimension: int,
                say: Callable[[str], None] = lambda message: None) -> dict:
    """Write the unit store of `studies` into `folder`; `vectors` holds one unit vector a row, in the
    order of `chunk.study_units` over the studies (an array or a memmap, read in blocks). Returns what
    the manifest records: the chunk and study hashes and the store's description."""
    import hashlib

    from .chunk import embed_text, study_units

    folder.mkdir(parents=True, exist_ok=True)
    types: dict[str, int] = {}
    table, unit_rows, offsets, embedded, chunk_hashes, study_hashes = [], [], [0], [], [], {}
    role_code = {role: code for code, role in enumerate(ROLES)}
    pem_code = {pem: code for code, pem in enumerate(PEMS)}
    with open(folder / TEXTS, "wb") as texts, open(folder / STUDY_RECORDS, "wb") as records:
        for number, study in enumerate(studies):
            if study.id in study_hashes:
                raise ValueError(f"study {study.id} is given twice")
            record = json.dumps(study.to_dict(), sort_keys=True, default=str)
            study_hashes[study.id] = hashlib.sha256(record.encode("utf-8")).hexdigest()[:16]
            start = records.tell()
            records.write(record.encode("utf-8") + b"\n")
            units = study_units(study)
            table.append((len(unit_rows), len(units), study.year or 0, types.setdefault(study.study_type, len(types)),
                          pem_code[study.pem], start, records.tell() - 1))
            for unit, text in units:
                data = text.encode("utf-8")
                texts.write(data)
                offsets.append(offsets[-1] + len(data))
                unit_rows.append((number, role_code[unit.role], unit.position))
                full = embed_text(study, text)
                embedded.append(full)
                chunk_hashes.append(hashlib.sha256(full.encode("utf-8")).hexdigest()[:16])
    n = len(unit_rows)
    if len(vectors) != n:
        raise ValueError(f"{len(vectors)} vectors for {n} units")
    np.save(folder / UNITS, np.array(unit_rows, dtype=UNIT_DTYPE))
    np.save(folder / TEXT_OFFSETS, np.array(offsets, dtype="<i8"))
    np.save(folder / STUDY_TABLE, np.array(table, dtype=STUDY_DTYPE))
    (folder / STUDY_IDS).write_text(json.dumps({"ids": list(study_hashes), "types": list(types)}))
    say(f"writing {n} vectors")
    write_vectors(folder / VECTORS, vectors, dimension)
    description = {"format": FORMAT, "units": n, "studies": len(table), "index": "flat"}
    if n > FLAT_LIMIT:
        say(f"training and filling an IVF index over {n} vectors")
        description.update(index="ivf", **write_ivf(folder / ANN, vectors, dimension))
    if n:
        say(f"BM25 over {n} units")
        write_bm25(folder / BM25_DIR, embedded)
    return {"chunk_hashes": chunk_hashes, "studies": study_hashes, "store": description}


def write_vectors(path: Path, vectors: np.ndarray, dimension: int, block: int = 65536) -> None:
    """A FAISS IndexFlatIP file written block by block (faiss.read_index reads it; no copy of all
    vectors is made in memory)."""
    n = len(vectors)
    header = (b"IxFI" + np.int32(dimension).tobytes() + np.int64(n).tobytes()
              + np.int64(1 << 20).tobytes() + np.int64(1 << 20).tobytes() + b"\x01"
              + np.int32(0).tobytes()  # METRIC_INNER_PRODUCT
              + np.uint64(n * dimension).tobytes())
    assert len(header) == FLAT_HEADER
    with open(path, "wb") as handle:
        handle.write(header)
        for start in range(0, n, block):
            part = np.ascontiguousarray(vectors[start:start + block], dtype="<f4")
            if part.ndim != 2 or part.shape[1] != dimension:
                raise ValueError(f"vectors of shape {part.shape}, expected dimension {dimension}")
            handle.write(part.tobytes())


def ivf_lists(n: int) -> int:
    """IVF lists for n vectors: a power of two near sqrt(n), at least 64."""
    return max(64, 2 ** round(math.log2(math.sqrt(max(n, 1)))))


def write_ivf(path: Path, vectors: np.ndarray, dimension: int, block: int = 65536) -> dict:
    import faiss

    n = len(vectors)
    nlist = ivf_lists(n)
    sample = np.sort(np.random.default_rng(0).choice(n, size=min(n, 40 * nlist), replace=False))
    quantizer = faiss.IndexFlatIP(dimension)
    ivf = faiss.IndexIVFScalarQuantizer(quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_8bit,
                                        faiss.METRIC_INNER_PRODUCT)
    ivf.train(np.ascontiguousarray(vectors[sample], dtype="float32"))
    for start in range(0, n, block):  # ids are rows: added in order from 0
        ivf.add(np.ascontiguousarray(vectors[start:start + block], dtype="float32"))
    faiss.write_index(ivf, str(path))
    return {"nlist": nlist, "quantizer": "SQ8", "nprobe": NPROBE, "rerank": RERANK}


def write_bm25(folder: Path, texts: list[str]) -> None:
    """The BM25 index of the embedded texts, tokenised as llama-index's BM25Retriever does."""
    import bm25s
    import Stemmer

    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), token_pattern=TOKEN_PATTERN,
                            show_progress=False)
    model = bm25s.BM25()
    model.index(tokens, show_progress=False)
    model.save(str(folder), show_progress=False)


# --- reading -------------------------------------------------------------------------------------

def _mapped(path: Path):
    """Read-only bytes of a file, mapped (an empty file is b"")."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return b""
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def flat_vectors(path: Path) -> np.ndarray:
    """The vectors of a FAISS IndexFlat file as a read-only numpy.memmap (no copy)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header = handle.read(FLAT_HEADER)
    if len(header) < FLAT_HEADER or header[:4] not in (b"IxFI", b"IxF2"):
        raise StoreDamaged(f"{path.name} is not a FAISS flat index")
    d = int(np.frombuffer(header, "<i4", 1, 4)[0])
    n = int(np.frombuffer(header, "<i8", 1, 8)[0])
    count = int(np.frombuffer(header, "<u8", 1, 37)[0])
    if d <= 0 or n < 0 or count not in (n * d, n * d * 4) or size != FLAT_HEADER + 4 * n * d:
        raise StoreDamaged(f"{path.name} does not hold {n} vectors of dimension {d} ({size} bytes)")
    if n == 0:
        return np.zeros((0, d), dtype="float32")
    return np.memmap(path, dtype="<f4", mode="r", offset=FLAT_HEADER, shape=(n, d))


class Texts:
    """Unit texts by row, read from the mapped file on demand."""

    def __init__(self, folder: Path):
        self._offsets = np.load(folder / TEXT_OFFSETS, mmap_mode="r")
        self._data = _mapped(folder / TEXTS)
        if len(self._data) != int(self._offsets[-1]):
            raise StoreDamaged(f"{TEXTS} holds {len(self._data)} bytes, its offsets {int(self._offsets[-1])}")

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, row: int) -> str:
        return self._data[int(self._offsets[row]):int(self._offsets[row + 1])].decode("utf-8")


class StudyTable(Mapping):
    """The studies of a build by id: ids and filter columns in memory, each record read on demand
    (and kept for the next question). Iterating over all values reads every record."""

    def __init__(self, folder: Path, cache: int = 4096):
        names = json.loads((folder / STUDY_IDS).read_text(encoding="utf-8"))
        self.ids: list[str] = names["ids"]
        self.types: list[str] = names["types"]
        self.table = np.load(folder / STUDY_TABLE)
        if len(self.table) != len(self.ids):
            raise StoreDamaged(f"{STUDY_TABLE} has {len(self.table)} studies, {STUDY_IDS} {len(self.ids)}")
        self._number = {sid: i for i, sid in enumerate(self.ids)}
        self._records = _mapped(folder / STUDY_RECORDS)
        self.record = lru_cache(maxsize=cache)(self._read)

    def _read(self, number: int) -> Study:
        start, end = int(self.table["start"][number]), int(self.table["end"][number])
        return Study.from_dict(json.loads(self._records[start:end]))

    def __getitem__(self, study_id: str) -> Study:
        return self.record(self._number[study_id])

    def __contains__(self, study_id) -> bool:
        return study_id in self._number

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def number(self, study_id: str) -> int | None:
        return self._number.get(study_id)

    def rows(self, number: int) -> tuple[int, int]:
        first = int(self.table["first"][number])
        return first, first + int(self.table["count"][number])

    @property
    def years(self) -> np.ndarray:
        return self.table["year"]

    def type_mask(self, types: Iterable[str]) -> np.ndarray:
        codes = [self.types.index(t) for t in types if t in self.types]
        return np.isin(self.table["type"], codes)

    def pem_mask(self, pem: Pem) -> np.ndarray:
        return self.table["pem"] == PEMS.index(pem)

    def id_mask(self, ids: Iterable[str]) -> np.ndarray:
        mask = np.zeros(len(self.ids), dtype=bool)
        mask[[self._number[i] for i in ids if i in self._number]] = True
        return mask


class Bm25:
    """bm25s over the units, its score arrays memory-mapped; filters are applied to the scores."""

    def __init__(self, folder: Path, rows: int):
        import bm25s
        import Stemmer

        self._tokenize = bm25s.tokenize
        self.model = bm25s.BM25.load(str(folder), mmap=True, load_corpus=False, show_progress=False)
        self.stemmer = Stemmer.Stemmer("english")
        self.rows = rows
        docs = self.model.scores.get("num_docs")
        if docs is not None and int(docs) != rows:
            raise StoreDamaged(f"{BM25_DIR} indexes {docs} units, the store {rows}")

    def scores(self, query: str) -> np.ndarray:
        words = self._tokenize(query, stemmer=self.stemmer, token_pattern=TOKEN_PATTERN, return_ids=False,
                               show_progress=False)[0]
        ids = self.model.get_tokens_ids(words)
        data, indices, indptr = (self.model.scores[k] for k in ("data", "indices", "indptr"))
        scores = np.zeros(self.rows, dtype="float32")
        for token in ids:  # each token's postings name each unit once, so a plain += is exact
            start, end = int(indptr[token]), int(indptr[token + 1])
            scores[indices[start:end]] += data[start:end]
        if getattr(self.model, "nonoccurrence_array", None) is not None and ids:
            scores += self.model.nonoccurrence_array[ids].sum()
        return scores

    def top(self, query: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k best rows (score order) among those `mask` admits, with their BM25 scores; rows that
        share no word with the query follow with score 0, as bm25s returns them."""
        scores = self.scores(query)
        if mask is not None:
            scores[~mask] = -np.inf
        return _top(scores, k)


def _top(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype="int64"), np.zeros(0, dtype="float32")
    rows = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    rows = rows[np.lexsort((rows, -scores[rows]))]
    rows = rows[scores[rows] > -np.inf]  # rows a filter excluded
    return rows, scores[rows]


class FaissUnitStore:
    """Units of an opened build: vectors and texts memory-mapped, studies read on demand, metadata
    filters applied inside the search."""

    def __init__(self, folder: Path, studies: StudyTable, description: dict):
        import faiss

        self.folder, self.studies, self.description = folder, studies, description
        self.vectors = flat_vectors(folder / VECTORS)
        self.rows, self.dimension = self.vectors.shape
        self._units = np.load(folder / UNITS, mmap_mode="r")
        self.texts = Texts(folder)
        if len(self._units) != self.rows or len(self.texts) != self.rows:
            raise StoreDamaged(f"{VECTORS} holds {self.rows} vectors, {UNITS} {len(self._units)} units and "
                               f"{TEXTS} {len(self.texts)} texts")
        self._counts = studies.table["count"]
        if int(self._counts.sum()) != self.rows:
            raise StoreDamaged(f"{STUDY_TABLE} counts {int(self._counts.sum())} units, the store {self.rows}")
        self.kind = description.get("index", "flat")
        if self.kind == "ivf":
            self.ann = faiss.read_index(str(folder / ANN), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
            if self.ann.ntotal != self.rows or self.ann.d != self.dimension:
                raise StoreDamaged(f"{ANN} holds {self.ann.ntotal} vectors of dimension {self.ann.d}")
            self.nprobe = int(description.get("nprobe", NPROBE))
            self.rerank = int(description.get("rerank", RERANK))
        else:
            self.ann = faiss.read_index(str(folder / VECTORS), faiss.IO_FLAG_MMAP_IFC) if self.rows else None

    # --- rows ---

    def unit(self, row: int) -> UnitId:
        study, role, position = self._units[row]
        return UnitId(self.studies.ids[study], ROLES[role], int(position))

    def text(self, row: int) -> str:
        return self.texts[row]

    def score(self, row: int, query: np.ndarray) -> float:
        return float(self.vectors[row] @ query)

    def row_of(self, unit: UnitId) -> int | None:
        number = self.studies.number(unit.study_id)
        if number is None:
            return None
        first, end = self.studies.rows(number)
        units = self._units[first:end]
        found = np.flatnonzero((units["role"] == ROLES.index(unit.role)) & (units["position"] == unit.position))
        return first + int(found[0]) if len(found) else None

    def row_mask(self, admits) -> np.ndarray | None:
        """The rows a filter admits: a Filters-like object with `study_mask(StudyTable)` is evaluated on
        the study columns at once; any other callable is asked about every study (reads every record)."""
        if admits is None:
            return None
        if hasattr(admits, "study_mask"):
            studies = admits.study_mask(self.studies)
        else:
            studies = np.fromiter((bool(admits(self.studies[sid])) for sid in self.studies.ids), dtype=bool,
                                  count=len(self.studies))
        return np.repeat(studies, self._counts)

    # --- search ---

    def nearest(self, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k rows most similar to the query (cosine, best first) among those `mask` admits."""
        import faiss

        query = np.ascontiguousarray(query, dtype="float32").reshape(1, -1)
        admitted = self.rows if mask is None else int(np.count_nonzero(mask))
        k = min(k, admitted)
        if k <= 0:
            return np.zeros(0, dtype="int64"), np.zeros(0, dtype="float32")
        if mask is not None and (admitted <= EXACT_ROWS or admitted * 8 <= self.rows and self.kind == "flat"):
            return self._exact(np.flatnonzero(mask), query[0], k)
        bitmap = selector = None
        if mask is not None:
            bitmap = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
        if self.kind == "flat":
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
            scores, rows = self.ann.search(query, k, params=params)
            keep = rows[0] >= 0
            return rows[0][keep].astype("int64"), scores[0][keep]
        params = faiss.SearchParametersIVF()
        share = admitted / self.rows
        params.nprobe = min(self.ann.nlist, math.ceil(self.nprobe / share))  # as many admitted rows as unfiltered
        if selector is not None:
            params.sel = selector
        _, rows = self.ann.search(query, max(k, self.rerank), params=params)
        rows = rows[0][rows[0] >= 0].astype("int64")
        return self._exact(np.sort(rows), query[0], k)

    def _exact(self, rows: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self.vectors[rows] @ query if len(rows) else np.zeros(0, dtype="float32")
        top, top_scores = _top(scores, k)
        return rows[top], top_scores

    def search(self, query, k, admits=None):
        """The k units closest to the query among the studies `admits` lets through."""
        rows, scores = self.nearest(query, k, self.row_mask(admits))
        return [ScoredUnit(self.unit(r), self.text(r), float(s)) for r, s in zip(rows, scores)]

    def units(self, study_id, role, query):
        """A study's units of one role, most similar to the query first."""
        number = self.studies.number(study_id)
        if number is None:
            return []
        first, end = self.studies.rows(number)
        units = self._units[first:end]
        offsets = np.flatnonzero(units["role"] == ROLES.index(role))
        if not len(offsets):
            return []
        scores = self.vectors[first + offsets[0]:first + offsets[-1] + 1] @ query
        found = [ScoredUnit(UnitId(study_id, role, int(units["position"][o])), self.text(first + int(o)),
                            float(scores[o - offsets[0]])) for o in offsets]
        return sorted(found, key=lambda x: -x.score)

    def study_rows(self, study_id: str) -> tuple[int, int]:
        number = self.studies.number(study_id)
        return (0, 0) if number is None else self.studies.rows(number)

    def best(self, study_id, query):
        first, end = self.study_rows(study_id)
        return float(np.max(self.vectors[first:end] @ query)) if end > first else 0.0

    def best_unit(self, key: str, query: np.ndarray) -> float:
        """Similarity of one stored unit (by the id the retrievers return) to the query."""
        row = self.row_of(UnitId.parse(key))
        if row is None:
            raise KeyError(key)
        return self.score(row, query)
