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
import os
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np

from .study import Pem, Role, Section, Study

SEPARATOR = "::"
FORMAT = 2  # of a build's files; builds of format 1 (llama-index JSON storage) must be rebuilt
VECTORS = "vectors.faiss"
ANN = "ann.faiss"
UNITS = "units.npy"
TEXTS, TEXT_OFFSETS = "texts.bin", "texts.npy"
STUDY_RECORDS, STUDY_TABLE, STUDY_IDS = "studies.jsonl", "studies.npy", "study_ids.json"
BM25_DIR = "bm25"
BM25_BOUNDS = "term_max.npy"  # in bm25/: each word's highest score in any unit (for MaxScore pruning)
FLAT_LIMIT = 200_000  # units: a flat (exact) search below, an IVF index above
NPROBE = 32  # IVF lists searched for an unfiltered query
RERANK = 100  # IVF candidates re-scored with the exact vectors
COMMON_SHARE = 10  # before adding a word in more than 1/10 of the units, BM25 tries to prune (MaxScore)
EXACT_ROWS = 2_000  # a filter that admits at most this many rows is scored row by row (else FAISS skips
                    # the others with an IDSelector: its cost follows the admitted rows, not all rows)
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
    with _no_gc():  # millions of small objects: the cyclic collector would rescan them again and again
        return _write_store(folder, studies, vectors, dimension, say)


@contextmanager
def _no_gc():
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _write_store(folder: Path, studies: Iterable[Study], vectors: np.ndarray, dimension: int,
                 say: Callable[[str], None]) -> dict:
    import hashlib
    from array import array

    from .chunk import embed_text, study_units

    folder.mkdir(parents=True, exist_ok=True)
    types: dict[str, int] = {}
    table, chunk_hashes, study_hashes = [], [], {}
    unit_study, unit_role, unit_position, offsets = array("i"), array("b"), array("i"), array("q", [0])
    words = Words()
    role_code = {role: code for code, role in enumerate(ROLES)}
    pem_code = {pem: code for code, pem in enumerate(PEMS)}
    with open(folder / TEXTS, "wb") as texts, open(folder / STUDY_RECORDS, "wb") as records:
        for number, study in enumerate(studies):
            if study.id in study_hashes:
                raise ValueError(f"study {study.id} is given twice")
            record = json.dumps(_record(study), sort_keys=True, default=str)
            study_hashes[study.id] = hashlib.sha256(record.encode("utf-8")).hexdigest()[:16]
            start = records.tell()
            records.write(record.encode("utf-8") + b"\n")
            units = study_units(study)
            table.append((len(unit_study), len(units), study.year or 0, types.setdefault(study.study_type, len(types)),
                          pem_code[study.pem], start, records.tell() - 1))
            title = words.ids(study.title) if units else []
            for unit, text in units:
                data = text.encode("utf-8")
                texts.write(data)
                offsets.append(offsets[-1] + len(data))
                unit_study.append(number)
                unit_role.append(role_code[unit.role])
                unit_position.append(unit.position)
                full = embed_text(study, text)
                chunk_hashes.append(hashlib.sha256(full.encode("utf-8")).hexdigest()[:16])
                # "title: text" splits into the title's words and the unit's (": " is never in a word)
                words.add(title + words.ids(text) if study.title else words.ids(text))
    n = len(unit_study)
    if len(vectors) != n:
        raise ValueError(f"{len(vectors)} vectors for {n} units")
    unit_table = np.zeros(n, dtype=UNIT_DTYPE)
    unit_table["study"], unit_table["role"], unit_table["position"] = unit_study, unit_role, unit_position
    np.save(folder / UNITS, unit_table)
    np.save(folder / TEXT_OFFSETS, np.frombuffer(offsets, dtype="int64").astype("<i8"))
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
        write_bm25(folder / BM25_DIR, words)
    return {"chunk_hashes": chunk_hashes, "studies": study_hashes, "store": description}


def _record(study: Study) -> dict:
    """`study.to_dict()` without dataclasses.asdict's deep copies (which cost seconds per 10,000
    studies); the same JSON."""
    record = {f.name: getattr(study, f.name) for f in fields(Study)}
    record["authors"] = list(study.authors)
    record["sections"] = [{f.name: getattr(section, f.name) for f in fields(Section)} for section in study.sections]
    return record


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


class _Numbered(dict):
    """word -> number, a new word getting the next number."""

    def __missing__(self, word: str) -> int:
        self[word] = number = len(self)
        return number


class Words:
    """Words of the texts to index, as bm25s.tokenize finds them (lower case, `TOKEN_PATTERN`, English
    stopwords dropped), kept as numbers in flat arrays rather than a list per text. Stopwords are
    numbered -1 and dropped when the index is written (a word lookup per word, all in C)."""

    def __init__(self):
        import re
        from array import array

        from bm25s.stopwords import STOPWORDS_EN

        self._split = re.compile(TOKEN_PATTERN).findall
        self.vocabulary = _Numbered((word, -1) for word in STOPWORDS_EN)
        self.flat, self.lengths = array("i"), array("i")

    def ids(self, text: str) -> list[int]:
        return list(map(self.vocabulary.__getitem__, self._split(text.lower())))

    def add(self, ids: list[int]) -> None:
        self.flat.extend(ids)
        self.lengths.append(len(ids))


def write_bm25(folder: Path, words: Words, k1: float = 1.5, b: float = 0.75) -> None:
    """The BM25 index of the embedded texts in bm25s's files (`bm25s.BM25.load` reads it): the scores
    bm25s.BM25(method="lucene").index(bm25s.tokenize(texts, stopwords="en", stemmer=English)) gives,
    as llama-index's BM25Retriever builds it, computed over whole arrays (bm25s scores text by text
    in Python, minutes for a million units)."""
    import bm25s
    import Stemmer

    raw = [word for word, number in words.vocabulary.items() if number >= 0]
    stems = Stemmer.Stemmer("english").stemWords(raw)
    vocabulary = {stem: i for i, stem in enumerate(dict.fromkeys(stems))}
    stem_of = np.full(len(words.vocabulary), -1, dtype="int64")
    stem_of[[words.vocabulary[word] for word in raw]] = [vocabulary[stem] for stem in stems]
    counts = np.frombuffer(words.lengths, dtype="int32").astype("int64")
    n, v = len(counts), len(vocabulary)
    flat = np.frombuffer(words.flat, dtype="int32") if len(words.flat) else np.zeros(0, dtype="int32")
    docs = np.repeat(np.arange(n, dtype="int64"), counts)
    kept = flat >= 0  # stopwords are -1
    terms, docs = stem_of[flat[kept]], docs[kept]
    lengths = np.bincount(docs, minlength=n)  # words per unit, stopwords not counted
    pairs, tf = np.unique(docs * max(v, 1) + terms, return_counts=True)  # (unit, term), by unit then term
    pair_doc, pair_term = pairs // max(v, 1), pairs % max(v, 1)
    df = np.bincount(pair_term, minlength=v)
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype("float32")  # lucene
    length_norm = (k1 * ((1 - b) + b * lengths / max(lengths.mean(), 1e-9))).astype("float32") if n else lengths
    tf = tf.astype("float32")
    scores = idf[pair_term] * (tf / (length_norm[pair_doc] + tf))
    order = np.argsort(pair_term, kind="stable")  # by term, then unit
    model = bm25s.BM25(k1=k1, b=b, method="lucene")
    model.scores = {"data": scores[order].astype("float32"), "indices": pair_doc[order].astype("int32"),
                    "indptr": np.concatenate([[0], np.cumsum(df)]).astype("int64"), "num_docs": n}
    vocabulary[""] = v  # as bm25s's index(create_empty_token=True)
    model.vocab_dict, model.nonoccurrence_array = vocabulary, None
    model.save(str(folder), show_progress=False)
    bounds = np.zeros(v, dtype="float32")
    present = df > 0
    if len(scores):
        bounds[present] = np.maximum.reduceat(model.scores["data"], model.scores["indptr"][:-1][present])
    np.save(folder / BM25_BOUNDS, bounds)


# --- reading -------------------------------------------------------------------------------------

class _File:
    """Byte ranges of a file read with os.pread. Scattered reads go through pread rather than a
    mapping: the page cache maps whole large folios (measured 1.2 MB of resident memory for each
    1.5 KB vector read through numpy.memmap), so a few hundred scattered reads per question would
    make every mapped file resident; a pread leaves nothing behind."""

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size

    def read(self, start: int, end: int) -> bytes:
        data = os.pread(self.fd, end - start, start)
        if len(data) != end - start:
            raise StoreDamaged(f"a file of the store ends at {self.size} bytes, before {end}")
        return data

    def __del__(self):
        try:
            os.close(self.fd)
        except (OSError, AttributeError):
            pass


def _npy_offset(path: Path) -> tuple[int, np.dtype, tuple]:
    """Where the data of a .npy file starts, its dtype and shape."""
    with open(path, "rb") as handle:
        major, _ = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(handle)
        if fortran:
            raise StoreDamaged(f"{path.name} is not in C order")
        return handle.tell(), dtype, shape


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
    """Unit texts by row, read from the file on demand (the offsets, 8 bytes a unit, are in memory)."""

    def __init__(self, folder: Path):
        self._offsets = np.load(folder / TEXT_OFFSETS)
        self._data = _File(folder / TEXTS)
        if self._data.size != int(self._offsets[-1]):
            raise StoreDamaged(f"{TEXTS} holds {self._data.size} bytes, its offsets {int(self._offsets[-1])}")

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, row: int) -> str:
        return self._data.read(int(self._offsets[row]), int(self._offsets[row + 1])).decode("utf-8")


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
        self._records = _File(folder / STUDY_RECORDS)
        self.record = lru_cache(maxsize=cache)(self._read)

    def _read(self, number: int) -> Study:
        start, end = int(self.table["start"][number]), int(self.table["end"][number])
        return Study.from_dict(json.loads(self._records.read(start, end)))

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
    """bm25s over the units: its vocabulary and parameters loaded by bm25s (mmap=True), each query
    word's postings read from the score arrays on demand; filters are applied to the scores."""

    def __init__(self, folder: Path, rows: int):
        import bm25s
        import Stemmer

        self._tokenize = bm25s.tokenize
        self.model = bm25s.BM25.load(str(folder), mmap=True, load_corpus=False, show_progress=False)
        self.stemmer = Stemmer.Stemmer("english")
        self.rows = rows
        self._indptr = np.asarray(self.model.scores["indptr"], dtype="int64")
        self._postings = []
        for name in ("data", "indices"):
            start, dtype, shape = _npy_offset(folder / f"{name}.csc.index.npy")
            if len(shape) != 1 or shape[0] != self._indptr[-1]:
                raise StoreDamaged(f"{BM25_DIR}/{name}.csc.index.npy holds {shape}, its index {self._indptr[-1]}")
            self._postings.append((_File(folder / f"{name}.csc.index.npy"), start, dtype))
        docs = self.model.scores.get("num_docs")
        if docs is not None and int(docs) != rows:
            raise StoreDamaged(f"{BM25_DIR} indexes {docs} units, the store {rows}")
        self._bounds = None
        if (folder / BM25_BOUNDS).is_file() and getattr(self.model, "nonoccurrence_array", None) is None:
            self._bounds = np.load(folder / BM25_BOUNDS)
            if len(self._bounds) != len(self._indptr) - 1:
                raise StoreDamaged(f"{BM25_DIR}/{BM25_BOUNDS} has {len(self._bounds)} words, the index "
                                   f"{len(self._indptr) - 1}")

    def words(self, query: str) -> list[int]:
        """The query's words in the index (each time it occurs), tokenised as BM25Retriever does."""
        words = self._tokenize(query, stemmer=self.stemmer, token_pattern=TOKEN_PATTERN, return_ids=False,
                               show_progress=False)[0]
        return [t for t in self.model.get_tokens_ids(words) if t < len(self._indptr) - 1]

    def postings(self, token: int) -> tuple[np.ndarray, np.ndarray]:
        """A word's (scores, rows), rows ascending."""
        first, end = int(self._indptr[token]), int(self._indptr[token + 1])
        (data_file, data_start, data_type), (rows_file, rows_start, rows_type) = self._postings
        return (self._read(data_file, data_start, data_type, first, end),
                self._read(rows_file, rows_start, rows_type, first, end))

    def scores(self, query: str) -> np.ndarray:
        """Every row's BM25 score for the query."""
        ids = self.words(query)
        scores = np.zeros(self.rows, dtype="float32")
        for token in ids:  # each token's postings name each unit once, so a plain += is exact
            data, indices = self.postings(token)
            scores[indices] += data
        if getattr(self.model, "nonoccurrence_array", None) is not None and ids:
            scores += self.model.nonoccurrence_array[ids].sum()
        return scores

    @staticmethod
    def _read(file: _File, offset: int, dtype: np.dtype, first: int, end: int) -> np.ndarray:
        size = dtype.itemsize
        return np.frombuffer(file.read(offset + first * size, offset + end * size), dtype=dtype)

    def top(self, query: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k best rows (score order) among those `mask` admits, with their BM25 scores; rows that
        share no word with the query follow with score 0, as bm25s returns them.

        Words are added rarest first, and before each common word (in more than 1/COMMON_SHARE of
        the units) the search checks whether it can stop adding whole postings (MaxScore): when the
        k-th best score so far is above what the remaining words could add to any row together
        (their highest scores, summed), only rows within that reach of the k-th can still make the
        top k, and the remaining words are looked up for those rows alone. In a million units "me"
        and "cfs" each name half of them, the rarer words a few thousand."""
        ids = self.words(query)
        counts: dict[int, int] = {}
        for token in ids:
            counts[token] = counts.get(token, 0) + 1
        df = {t: int(self._indptr[t + 1] - self._indptr[t]) for t in counts}
        order = sorted(counts, key=lambda t: df[t])
        bounds = self._bounds
        reach = float(sum(bounds[t] * counts[t] for t in order)) if bounds is not None else np.inf
        scores = np.zeros(self.rows, dtype="float32")
        for i, token in enumerate(order):
            if bounds is not None and df[token] * COMMON_SHARE > self.rows:
                found = self._rest_for_candidates(scores, order[i:], counts, reach, k, mask)
                if found is not None:
                    return found
            data, indices = self.postings(token)
            for _ in range(counts[token]):  # a word the query repeats counts again, as in bm25s
                scores[indices] += data
            if bounds is not None:
                reach -= float(bounds[token] * counts[token])
        if getattr(self.model, "nonoccurrence_array", None) is not None and ids:
            scores += self.model.nonoccurrence_array[ids].sum()
        if mask is not None:
            scores[~mask] = -np.inf
        return _top(scores, k)

    def _rest_for_candidates(self, scores: np.ndarray, rest: list[int], counts: dict[int, int], reach: float,
                             k: int, mask: np.ndarray | None):
        """The top k when the words in `rest` can no longer lift a row that is not yet within `reach`
        of the k-th best score; None when they still can."""
        touched = np.flatnonzero(scores > 0)
        if mask is not None:
            touched = touched[mask[touched]]
        if len(touched) < k:
            return None
        kth = float(np.partition(scores[touched], len(touched) - k)[len(touched) - k])
        if kth <= reach:
            return None
        candidates = touched[scores[touched] >= kth - reach]
        partial = scores[candidates]
        for token in rest:
            data, indices = self.postings(token)
            at = np.minimum(np.searchsorted(indices, candidates), len(indices) - 1)
            found = indices[at] == candidates
            for _ in range(counts[token]):
                partial[found] += data[at[found]]
        top, top_scores = _top(partial, k)
        return candidates[top], top_scores


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
        self.vectors = flat_vectors(folder / VECTORS)  # a numpy.memmap for whole-array use: nothing is copied
        self.rows, self.dimension = self.vectors.shape
        self._file = _File(folder / VECTORS)  # rows for numpy are read with pread (see _File)
        units = np.load(folder / UNITS)  # 9 bytes a unit
        self._study, self._role, self._position = units["study"], units["role"], units["position"]
        self.texts = Texts(folder)
        if len(units) != self.rows or len(self.texts) != self.rows:
            raise StoreDamaged(f"{VECTORS} holds {self.rows} vectors, {UNITS} {len(units)} units and "
                               f"{TEXTS} {len(self.texts)} texts")
        self._counts = studies.table["count"]
        if int(self._counts.sum()) != self.rows:
            raise StoreDamaged(f"{STUDY_TABLE} counts {int(self._counts.sum())} units, the store {self.rows}")
        self.kind = description.get("index", "flat")
        self.ann: Any  # a FAISS index over the mapped file: IVF above FLAT_LIMIT units, else the flat one
        if self.kind == "ivf":
            self.ann = faiss.read_index(str(folder / ANN), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
            if self.ann.ntotal != self.rows or self.ann.d != self.dimension:
                raise StoreDamaged(f"{ANN} holds {self.ann.ntotal} vectors of dimension {self.ann.d}")
            self.nprobe = int(description.get("nprobe", NPROBE))
            self.rerank = int(description.get("rerank", RERANK))
        else:
            self.ann = faiss.read_index(str(folder / VECTORS), faiss.IO_FLAG_MMAP_IFC) if self.rows else None
        self._ranked: dict = {}  # (study, query) -> its units by role, ranked: gather asks role by role

    # --- rows ---

    def study_number(self, row: int) -> int:
        """The number (in StudyTable order) of the study a row belongs to."""
        return int(self._study[row])

    def unit(self, row: int) -> UnitId:
        return UnitId(self.studies.ids[self._study[row]], ROLES[self._role[row]], int(self._position[row]))

    def text(self, row: int) -> str:
        return self.texts[row]

    def score(self, row: int, query: np.ndarray) -> float:
        return float(self.read_rows(row, row + 1)[0] @ query)

    def read_rows(self, first: int, end: int) -> np.ndarray:
        """The vectors of rows first..end-1, read from the file."""
        size = 4 * self.dimension
        data = self._file.read(FLAT_HEADER + first * size, FLAT_HEADER + end * size)
        return np.frombuffer(data, dtype="<f4").reshape(end - first, self.dimension)

    def gather_rows(self, rows: np.ndarray | list[int]) -> np.ndarray:
        """The vectors of any rows, in their order: one read per run of consecutive rows."""
        rows = np.asarray(rows, dtype="int64")
        if not len(rows):
            return np.zeros((0, self.dimension), dtype="float32")
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        parts = [self.read_rows(int(run[0]), int(run[-1]) + 1) for run in np.split(ordered, breaks)]
        out = np.empty((len(rows), self.dimension), dtype="float32")
        out[order] = np.concatenate(parts)
        return out

    def scores(self, rows: np.ndarray | list[int], query: np.ndarray) -> np.ndarray:
        """Cosine of each row's vector to the query (rows in any order)."""
        return self.gather_rows(rows) @ query

    def row_of(self, unit: UnitId) -> int | None:
        number = self.studies.number(unit.study_id)
        if number is None:
            return None
        first, end = self.studies.rows(number)
        found = np.flatnonzero((self._role[first:end] == ROLES.index(unit.role))
                               & (self._position[first:end] == unit.position))
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
        if mask is not None and admitted <= EXACT_ROWS:
            return self._exact(np.flatnonzero(mask), query[0], k)
        bitmap = selector = None
        if mask is not None:
            bitmap = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
        with _one_thread():
            if self.kind == "flat":
                params = None
                if selector is not None:
                    params = faiss.SearchParameters()
                    params.sel = selector
                scores, rows = self.ann.search(query, k, params=params)
                keep = rows[0] >= 0
                return rows[0][keep].astype("int64"), scores[0][keep]
            params = faiss.SearchParametersIVF()
            share = admitted / self.rows
            # About as many admitted rows as an unfiltered search sees, up to three quarters of the lists
            # (all of them cost three times as much as three quarters on FAISS 1.15); on the bench's
            # 1.3M units a 2 % filter then keeps recall@10 at 0.99 (a quarter of the lists: 0.75).
            params.nprobe = min(max(self.nprobe, self.ann.nlist * 3 // 4), math.ceil(self.nprobe / share))
            if selector is not None:
                params.sel = selector
            _, rows = self.ann.search(query, max(k, self.rerank), params=params)
        rows = rows[0][rows[0] >= 0].astype("int64")
        return self._exact(np.sort(rows), query[0], k)

    def _exact(self, rows: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        top, top_scores = _top(self.scores(rows, query), k)
        return rows[top], top_scores

    def search(self, query, k, admits=None):
        """The k units closest to the query among the studies `admits` lets through."""
        rows, scores = self.nearest(query, k, self.row_mask(admits))
        return [ScoredUnit(self.unit(r), self.text(r), float(s)) for r, s in zip(rows, scores)]

    def units(self, study_id, role, query):
        """A study's units of one role, most similar to the query first."""
        key = (study_id, np.asarray(query, dtype="float32").tobytes())
        ranked = self._ranked.get(key)
        if ranked is None:
            ranked = self._rank_study(study_id, query)
            if len(self._ranked) >= 256:
                self._ranked.pop(next(iter(self._ranked)))
            self._ranked[key] = ranked
        return list(ranked.get(role, ()))

    def _rank_study(self, study_id: str, query: np.ndarray) -> dict[Role, list[ScoredUnit]]:
        first, end = self.study_rows(study_id)
        if end <= first:
            return {}
        scores = self.read_rows(first, end) @ query
        ranked: dict[Role, list[ScoredUnit]] = {}
        for offset in np.argsort(-scores, kind="stable"):  # ties keep the order of positions
            row = first + int(offset)
            role = ROLES[self._role[row]]
            ranked.setdefault(role, []).append(ScoredUnit(UnitId(study_id, role, int(self._position[row])),
                                                          self.text(row), float(scores[offset])))
        return ranked

    def study_rows(self, study_id: str) -> tuple[int, int]:
        number = self.studies.number(study_id)
        return (0, 0) if number is None else self.studies.rows(number)

    def best(self, study_id, query):
        first, end = self.study_rows(study_id)
        return float(np.max(self.read_rows(first, end) @ query)) if end > first else 0.0

    def best_unit(self, key: str, query: np.ndarray) -> float:
        """Similarity of one stored unit (by the id the retrievers return) to the query."""
        row = self.row_of(UnitId.parse(key))
        if row is None:
            raise KeyError(key)
        return self.score(row, query)


class _one_thread:
    """FAISS searches one query on one thread: OpenMP's other threads only spin-wait (and on a shared
    2-core machine they wait for a neighbour's process), measured 19 ms against 27 ms at 128k units."""

    def __enter__(self):
        import faiss

        self.before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)

    def __exit__(self, *exc):
        import faiss

        faiss.omp_set_num_threads(self.before)
        return False
