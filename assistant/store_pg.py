"""The shared store: a library in Postgres + pgvector through llama-index's PGVectorStore, so several
`serve` / `ask` processes (on one machine or many) answer from one library. Chosen by the settings
`store = "postgres"` and `store_url`; the embedded FAISS index (retrieve.Library) stays the default.
The reading surface is the same as retrieve.Library's: `studies`, `manifest`, `store` (a UnitStore)
and `retrieve`, plus `refresh`.

Layout, in the schema `atlas` of the database the URL names:
    generations      one row per finished build: its name, manifest (model, dimension, chunking version,
                     chunk hashes and node ids in order) and its study records; `retired_at` once
                     another build replaced it
    live             one row: the generation readers answer from
    data_units_<g>   PGVectorStore's table for generation g: unit text, metadata (study, role, position,
                     year, type, PEM), the vector (pgvector) and a full-text tsvector of title and text
                     (GIN). Retrieval is hybrid: pgvector nearest units and Postgres full-text search,
                     fused by reciprocal rank just as the FAISS store fuses dense and BM25. Filters are
                     SQL conditions inside both searches.

Writing: a build holds an advisory lock (one writer at a time; the lock goes with the writer's
connection, so a killed build never leaves it held), writes a new table beside the live one, then in
one transaction inserts its generation row and moves `live`. A build killed before that commit leaves
the previous library live, and the next build drops its half-written table. A replaced generation stays
KEEP_SECONDS for readers that read `live` just before the move.

Reading: before each question a reader looks at `live` (`refresh`) and reopens when it moved, so every
server sees a re-index without a restart. Only this module and settings know the connection URL; what
is shown or logged is `safe_url`, with any password replaced by ***.
"""
from __future__ import annotations

import json
import re
import secrets
import sys
import time
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import unquote

import numpy as np

from .chunk import CHUNKING_VERSION, chunk_study
from .embed import embedding_model, model_name
from .index import (KEEP_SECONDS, NORM_TOLERANCE, EmptyCorpus, IndexBusy, IndexMissing, IndexSummary,
                    _embed_with_progress, _previous_vectors, sha)
from .parse import load_corpus
from .prompts import table
from .pubmed_sync import library_last_sync
from .retrieve import Evidence, Filters, StudyHit
from .settings import Settings
from .store import ScoredUnit, UnitId
from .study import STUDY_TYPES, Pem, Study

SCHEMA = "atlas"
UNITS = "units_"  # PGVectorStore prefixes data_: a generation's table is atlas.data_units_<name>
LOCK_KEY = 0x61746C6173  # the writers' advisory lock ("atlas")
TEXT_SEARCH = "english"  # the Postgres text search configuration of the full-text side
CACHED_STUDIES = 4096  # studies whose units (texts and vectors) a reader keeps in memory
WRITE_BATCH = 2000  # units per insert transaction
NAME = re.compile(r"^g[0-9a-z_]{1,40}$")


class StoreUnavailable(IndexMissing):
    """The shared store cannot be used: no URL, a bad URL, the server unreachable or failing.
    The message is one line and never holds a password."""


def text(key: str, **values) -> str:
    for section in ("errors", "notes"):
        if key in table("store")[section]:
            return table("store")[section][key].format(**values)
    raise KeyError(key)


def safe_url(url: str) -> str:
    """The connection URL as it may be shown: any password (in the URL or its query) as ***."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url.strip())
        hidden = {k: "***" for k in parsed.query if "password" in k.lower()}
        if hidden:
            parsed = parsed.update_query_dict(hidden)
        return unquote(parsed.render_as_string(hide_password=True))  # ?host=/run/postgresql, not %2F
    except Exception:  # not a URL at all: show it without anything that looks like a secret
        masked = re.sub(r":[^@\s]*@", ":***@", url.strip())
        return re.sub(r"(password=)[^&\s]*", r"\1***", masked, flags=re.I)[:200]


def _reason(err: BaseException) -> str:
    """The driver's own words for a database error, on one line."""
    orig = getattr(err, "orig", None) or err
    words = " ".join(str(orig).split()) or type(orig).__name__
    return words if len(words) <= 300 else words[:297] + "..."


class Database:
    """Engines on the URL (psycopg2 for all work; the asyncpg engine only because PGVectorStore wants
    one) and the SQL of the generations. Connecting is checked at once."""

    def __init__(self, url: str):
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError
        from sqlalchemy.ext.asyncio import create_async_engine

        url = (url or "").strip()
        if not url:
            raise StoreUnavailable(text("no_url"))
        self.where = safe_url(url)
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreUnavailable(text("bad_url", where=self.where)) from None
        if parsed.get_backend_name() not in ("postgresql", "postgres") or parsed.drivername.count("+") > 1:
            raise StoreUnavailable(text("bad_url", where=self.where))
        self.engine = create_engine(parsed.set(drivername="postgresql+psycopg2"), pool_pre_ping=True,
                                    connect_args={"connect_timeout": 10, "application_name": "atlas-assistant"})
        self.async_engine = create_async_engine(parsed.set(drivername="postgresql+asyncpg"))
        with self.errors("unreachable"):
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")

    @contextmanager
    def errors(self, kind: str = "failed") -> Iterator[None]:
        """Database errors as StoreUnavailable with one line that names the server, not its password."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            yield
        except SQLAlchemyError as err:
            raise StoreUnavailable(text(kind, where=self.where, reason=_reason(err))) from None

    def close(self) -> None:
        self.engine.dispose()

    def sql(self, statement: str, params: dict | None = None, conn=None):
        """Rows of one statement (in `conn`'s transaction when given, else in its own)."""
        from sqlalchemy import text as sql_text

        if conn is None:
            with self.errors(), self.engine.begin() as own:
                return self.sql(statement, params, own)
        result = conn.execute(sql_text(statement), params or {})
        return result.all() if result.returns_rows else []

    # --- reading --------------------------------------------------------------------------------

    def live(self) -> str | None:
        """The live generation's name; None when the store holds no library."""
        with self.errors(), self.engine.connect() as conn:
            if conn.exec_driver_sql(f"SELECT to_regclass('{SCHEMA}.live')").scalar() is None:
                return None
            return conn.exec_driver_sql(f"SELECT generation FROM {SCHEMA}.live").scalar()

    def generation(self, name: str) -> tuple[dict, list] | None:
        rows = self.sql(f"SELECT manifest, studies FROM {SCHEMA}.generations WHERE name = :name", {"name": name})
        return (rows[0][0], rows[0][1]) if rows else None

    @staticmethod
    def table(name: str) -> str:
        if not NAME.match(name):
            raise StoreUnavailable(f"the Postgres store names a generation that is not one of ours ({name[:40]!r})")
        return f'{SCHEMA}."data_{UNITS}{name}"'

    def vector_store(self, name: str, dimension: int, setup: bool = False):
        """llama-index's PGVectorStore over one generation's table (hybrid: vectors and full text)."""
        from llama_index.vector_stores.postgres import PGVectorStore

        self.table(name)
        return PGVectorStore(table_name=UNITS + name, schema_name=SCHEMA, hybrid_search=True,
                             text_search_config=TEXT_SEARCH, embed_dim=dimension, use_jsonb=True, cache_ok=True,
                             perform_setup=setup, initialization_fail_on_error=True,
                             engine=self.engine, async_engine=self.async_engine)

    def vectors(self, name: str, study_ids: list[str] | None = None) -> list[tuple]:
        """(node id, text, vector) of a generation's units, of some studies or all."""
        where = "WHERE metadata_->>'study_id' = ANY(:ids)" if study_ids is not None else ""
        rows = self.sql(f"SELECT node_id, text, vector_send(embedding) FROM {self.table(name)} {where}",
                        {"ids": study_ids} if study_ids is not None else None)
        # pgvector's binary form: dimension and a reserved word (2 bytes each), then big-endian float4
        return [(node_id, unit_text, np.frombuffer(bytes(raw), dtype=">f4", offset=4).astype("float32"))
                for node_id, unit_text, raw in rows]

    # --- writing (under the writer lock) --------------------------------------------------------

    @contextmanager
    def writer_lock(self, timeout: float | None = None,
                    announce: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> Iterator[float]:
        """One writer at a time: a session advisory lock on a connection held for the build; a
        second writer says so and waits (at most `timeout` s, then IndexBusy). Yields the wait."""
        with self.errors():
            conn = self.engine.connect()
        started = time.monotonic()
        try:
            with self.errors():
                try_lock = lambda: conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({LOCK_KEY})").scalar()  # noqa: E731
                got = try_lock()
                if not got:
                    announce(text("waiting", where=self.where))
                while not got:
                    if timeout is not None and time.monotonic() - started > timeout:
                        raise IndexBusy(text("busy", where=self.where, seconds=timeout))
                    time.sleep(0.2)
                    got = try_lock()
                conn.commit()
            yield time.monotonic() - started
        finally:
            conn.invalidate()  # closes the session, which releases the lock whatever happened
            conn.close()

    def setup(self) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
        except SQLAlchemyError as err:
            raise StoreUnavailable(text("no_vector", where=self.where, reason=_reason(err))) from None
        with self.errors(), self.engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            conn.exec_driver_sql(f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.generations (
                name text PRIMARY KEY, manifest jsonb NOT NULL, studies jsonb NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(), retired_at timestamptz)""")
            conn.exec_driver_sql(f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.live (
                one boolean PRIMARY KEY DEFAULT true CHECK (one),
                generation text NOT NULL REFERENCES {SCHEMA}.generations (name),
                switched_at timestamptz NOT NULL DEFAULT now())""")

    def tidy(self) -> list[str]:
        """Drop tables no generation owns (builds killed before going live) and generations replaced
        more than KEEP_SECONDS ago, except the newest replaced one. Returns what was removed."""
        removed = []
        with self.errors(), self.engine.begin() as conn:
            live = conn.exec_driver_sql(f"SELECT generation FROM {SCHEMA}.live").scalar()
            ages = dict(self.sql(f"SELECT name, EXTRACT(EPOCH FROM now() - retired_at) FROM {SCHEMA}.generations",
                                 conn=conn))
            owned = {f"data_{UNITS}{name}" for name in ages}
            for (name,) in self.sql("SELECT tablename FROM pg_tables WHERE schemaname = :schema AND "
                                    "starts_with(tablename, :prefix)", {"schema": SCHEMA, "prefix": f"data_{UNITS}"},
                                    conn=conn):
                if name not in owned:
                    conn.exec_driver_sql(f'DROP TABLE IF EXISTS {SCHEMA}."{name}"')
                    removed.append(f"removed the half-written build {name} (its `index` stopped before it went live)")
            retired = {n: float(age) for n, age in ages.items() if n != live and age is not None}
            newest = min(retired, key=lambda n: retired[n], default=None)
            for name, age in retired.items():
                if name != newest and age > KEEP_SECONDS:
                    self.sql(f"DELETE FROM {SCHEMA}.generations WHERE name = :name", {"name": name}, conn=conn)
                    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.table(name)}")
        return removed

    def publish(self, name: str, manifest: dict, studies: list[dict]) -> None:
        """The switch, in one transaction: the new generation's row, the old one retired, `live` moved."""
        with self.errors(), self.engine.begin() as conn:
            self.sql(f"INSERT INTO {SCHEMA}.generations (name, manifest, studies) "
                     "VALUES (:name, CAST(:manifest AS jsonb), CAST(:studies AS jsonb))",
                     {"name": name, "manifest": json.dumps(manifest), "studies": json.dumps(studies, default=str)},
                     conn=conn)
            self.sql(f"UPDATE {SCHEMA}.generations SET retired_at = now() WHERE name <> :name "
                     f"AND name IN (SELECT generation FROM {SCHEMA}.live)", {"name": name}, conn=conn)
            self.sql(f"INSERT INTO {SCHEMA}.live (one, generation) VALUES (true, :name) ON CONFLICT (one) "
                     "DO UPDATE SET generation = EXCLUDED.generation, switched_at = now()", {"name": name}, conn=conn)


# --- reading -------------------------------------------------------------------------------------

class PostgresUnitStore:
    """The UnitStore of one generation: units fetched per study in one query and kept (a generation
    never changes), scored against the query vector here exactly as the FAISS store scores them."""

    def __init__(self, db: Database, name: str, studies: dict[str, Study], numbers: dict[str, int]):
        self.db, self.name, self.studies, self.numbers = db, name, studies, numbers
        self._cache: OrderedDict[str, tuple[list[UnitId], list[str], np.ndarray]] = OrderedDict()

    def prefetch(self, study_ids) -> None:
        """Fetch the units of the studies not yet in memory, in one query."""
        missing = [s for s in dict.fromkeys(study_ids) if s not in self._cache]
        if missing:
            found: dict[str, list] = {s: [] for s in missing}
            for node_id, unit_text, vector in self.db.vectors(self.name, missing):
                unit = UnitId.parse(node_id)
                found[unit.study_id].append((unit, unit_text, vector))
            for study_id, rows in found.items():
                rows.sort(key=lambda r: (r[0].role.value, r[0].position))  # the FAISS store's order
                vectors = np.asarray([r[2] for r in rows], dtype="float32").reshape(len(rows), -1)
                self._cache[study_id] = ([r[0] for r in rows], [r[1] for r in rows], vectors)
        for study_id in study_ids:
            self._cache.move_to_end(study_id)
        while len(self._cache) > CACHED_STUDIES:
            self._cache.popitem(last=False)

    def _units(self, study_id: str):
        self.prefetch([study_id])
        return self._cache[study_id]

    def search(self, query, k, admits=None):
        """The k units closest to the query among the studies `admits` lets through (in the database)."""
        numbers = None if admits is None else [n for sid, n in self.numbers.items() if admits(self.studies[sid])]
        if numbers == [] or k < 1:
            return []
        where = "WHERE (metadata_->>'study_n')::int = ANY(:numbers)" if numbers is not None else ""
        rows = self.db.sql(f"SELECT node_id, text, 1 - (embedding <=> CAST(:q AS vector)) FROM "
                           f"{self.db.table(self.name)} {where} ORDER BY embedding <=> CAST(:q AS vector) LIMIT :k",
                           {"q": str(np.asarray(query, dtype="float32").tolist()), "numbers": numbers, "k": int(k)})
        return [ScoredUnit(UnitId.parse(node_id), unit_text, float(score)) for node_id, unit_text, score in rows]

    def units(self, study_id, role, query):
        """A study's units of one role, most similar to the query first."""
        ids, texts, vectors = self._units(study_id)
        rows = [i for i, unit in enumerate(ids) if unit.role == role]
        if not rows:
            return []
        scores = vectors[rows] @ query
        return sorted((ScoredUnit(ids[i], texts[i], float(s)) for i, s in zip(rows, scores)), key=lambda x: -x.score)

    def best(self, study_id, query):
        _, _, vectors = self._units(study_id)
        return float(np.max(vectors @ query)) if len(vectors) else 0.0

    def best_unit(self, key: str, query: np.ndarray) -> float:
        """Similarity of one stored unit (by the id the retrievers return) to the query."""
        unit = UnitId.parse(key)
        ids, _, vectors = self._units(unit.study_id)
        return float(vectors[ids.index(unit)] @ query)


NOTHING = object()  # filters no study passes


class PostgresLibrary:
    """An opened library in the shared store, read like retrieve.Library."""

    def __init__(self, url: str, candidates: int = 50):
        self.db = Database(url)
        self.candidates = candidates
        self.generation: str | None = None
        name = self.db.live()
        if name is None:
            raise StoreUnavailable(text("no_library", where=self.db.where))
        self._open(name)

    def close(self) -> None:
        self.db.close()

    def refresh(self) -> bool:
        """Reopen on the live generation when a build moved it since the last look; True when it did."""
        name = self.db.live()
        if name is None:
            raise StoreUnavailable(text("no_library", where=self.db.where))
        if name == self.generation:
            return False
        self._open(name)
        return True

    def _open(self, name: str) -> None:
        from llama_index.core import VectorStoreIndex
        from llama_index.core.embeddings import MockEmbedding

        found = self.db.generation(name)
        if found is None:  # replaced and removed between the two reads: read `live` again
            again = self.db.live()
            found = self.db.generation(again) if again else None
            if again is None or found is None:
                raise StoreUnavailable(text("no_library", where=self.db.where))
            name = again
        manifest, records = found
        if not manifest.get("chunk_hashes"):
            raise StoreUnavailable(text("empty", where=self.db.where))
        studies = {d["id"]: Study.from_dict(d) for d in records}
        numbers = {d["id"]: n for n, d in enumerate(records)}
        dimension = manifest.get("dimension") or 384
        vector_store = self.db.vector_store(name, dimension)
        # Questions arrive with their vector computed, so the index never embeds anything itself.
        index = VectorStoreIndex.from_vector_store(vector_store, embed_model=MockEmbedding(embed_dim=dimension))
        # Swap everything at once, so a reader never mixes two generations.
        self.manifest, self.studies, self._numbers, self._index = manifest, studies, numbers, index
        self.store = PostgresUnitStore(self.db, name, studies, numbers)
        self.generation = name
        self._plain: dict | None = None

    def _metadata_filters(self, filters: Filters):
        """The filters as SQL conditions on the units' metadata (inside both searches); NOTHING when
        no study can pass; None without filters. Only known values reach the SQL."""
        from llama_index.core.vector_stores import FilterOperator as Op, MetadataFilter, MetadataFilters

        if not filters.active:
            return None
        parts: list[MetadataFilter | MetadataFilters] = []
        if filters.year_from:
            parts.append(MetadataFilter(key="year", operator=Op.GTE, value=int(filters.year_from)))
        if filters.year_to:  # a study without a year is never "up to" a year
            parts += [MetadataFilter(key="year", operator=Op.LTE, value=int(filters.year_to)),
                      MetadataFilter(key="year", operator=Op.GT, value=0)]
        if filters.study_types:
            known = [t for t in filters.study_types if t in STUDY_TYPES]
            if not known:
                return NOTHING
            parts.append(MetadataFilter(key="study_type", operator=Op.IN, value=known))
        if filters.pem_required:
            parts.append(MetadataFilter(key="pem", operator=Op.EQ, value=Pem.REQUIRED.value))
        if filters.study_ids:
            numbers = [self._numbers[s] for s in filters.study_ids if s in self._numbers]
            if not numbers:
                return NOTHING
            parts.append(MetadataFilter(key="study_n", operator=Op.IN, value=numbers))
        return MetadataFilters(filters=parts)

    def _retrievers(self, metadata_filters) -> dict:
        from llama_index.core.llms import MockLLM
        from llama_index.core.retrievers import QueryFusionRetriever, VectorIndexRetriever
        from llama_index.core.retrievers.fusion_retriever import FUSION_MODES
        from llama_index.core.vector_stores.types import VectorStoreQueryMode

        if metadata_filters is None and self._plain is not None:
            return self._plain
        k = self.candidates
        dense = VectorIndexRetriever(self._index, similarity_top_k=k, filters=metadata_filters)
        words = VectorIndexRetriever(self._index, similarity_top_k=k, filters=metadata_filters,
                                     vector_store_query_mode=VectorStoreQueryMode.TEXT_SEARCH)
        fused = QueryFusionRetriever([dense, words], llm=MockLLM(), mode=FUSION_MODES.RECIPROCAL_RANK,
                                     similarity_top_k=k, num_queries=1, use_async=False)
        found = {"dense": dense, "bm25": words, "fused": fused}  # "bm25": the keyword side, by its usual name
        if metadata_filters is None:
            self._plain = found
        return found

    def retrieve(self, question: str, query_vector: np.ndarray, filters: Filters = Filters(),
                 top_k: int = 5, per_study: int = 6, method: str = "fused") -> list[StudyHit]:
        """Studies ranked for the question, as retrieve.Library.retrieve ranks them."""
        from llama_index.core.schema import QueryBundle

        metadata_filters = self._metadata_filters(filters)
        if metadata_filters is NOTHING:
            return []
        bundle = QueryBundle(query_str=question, embedding=np.asarray(query_vector).tolist())
        with self.db.errors():
            results = self._retrievers(metadata_filters)[method].retrieve(bundle)
        self.store.prefetch([r.node.metadata["study_id"] for r in results])
        hits: dict[str, StudyHit] = {}
        for result in results:
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
        return sorted(hits.values(), key=lambda h: h.rank_score, reverse=True)[:top_k]


# --- building ------------------------------------------------------------------------------------

def _unit_norm(vector: np.ndarray) -> bool:
    norm = float(np.linalg.norm(np.asarray(vector, dtype="float64")))
    return np.isfinite(norm) and abs(norm - 1.0) <= NORM_TOLERANCE


def _reusable(db: Database, model: str, index_dir: Path) -> tuple[dict[str, np.ndarray], str | None, list[str]]:
    """Vectors to reuse keyed by chunk hash, why none (a full rebuild), and notes. From the live
    generation; when the store has none yet, from the FAISS index at index_dir (switching stores
    embeds nothing again)."""
    live = db.live()
    found = db.generation(live) if live else None
    if live is None or found is None:
        seeded = _previous_vectors(index_dir, model).vectors
        return seeded, None, [text("seeded", index_dir=index_dir)] if seeded else []
    manifest = found[0]
    if manifest.get("model") != model:
        return {}, f"the embedding model changed ({manifest.get('model')} -> {model})", []
    if manifest.get("chunking_version") != CHUNKING_VERSION:
        return {}, f"the chunking changed (version {manifest.get('chunking_version')} -> {CHUNKING_VERSION})", []
    by_node = {node_id: np.asarray(vector, dtype="float32") for node_id, _, vector in db.vectors(live)}
    pairs = zip(manifest.get("node_ids", []), manifest.get("chunk_hashes", []))
    return {h: by_node[n] for n, h in pairs if n in by_node and _unit_norm(by_node[n])}, None, []


def build_postgres(paths: list[Path], settings: Settings, progress: bool = True,
                   lock_timeout: float | None = None) -> IndexSummary:
    """`index` into the shared store: a new generation, live in one transaction at the end."""
    from llama_index.core.schema import MetadataMode

    started = time.perf_counter()
    db = Database(settings.store_url)
    try:
        load = load_corpus(paths, settings.max_file_bytes)
        if not load.studies:
            raise EmptyCorpus("no study could be read from " + ", ".join(map(str, paths))
                              + ("; " + "; ".join(str(p) for p in load.errors[:3]) if load.errors else "")
                              + ". " + text("left_as_is", where=db.where))
        summary = IndexSummary(studies=len(load.studies), skipped=load.skipped,
                               warnings=[str(p) for p in load.problems if p.severity == "warning"])
        nodes = [node for study in load.studies for node in chunk_study(study)]
        texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]
        hashes = [sha(t) for t in texts]
        model = model_name(settings.embedding_model)
        with db.writer_lock(timeout=lock_timeout) as waited:
            summary.waited_seconds = round(waited, 3)
            db.setup()
            summary.warnings += db.tidy()
            old, summary.full_rebuild_reason, notes = _reusable(db, model, Path(settings.index_dir))
            summary.warnings += notes
            todo = [i for i, h in enumerate(hashes) if h not in old]
            if todo:
                load_started = time.perf_counter()
                embedding_model(settings.embedding_model, settings.embed_batch_size)
                summary.model_load_seconds = time.perf_counter() - load_started
            fresh = dict(zip((hashes[i] for i in todo),
                             _embed_with_progress([texts[i] for i in todo], settings, progress)))
            numbers = {study.id: n for n, study in enumerate(load.studies)}
            for node, h in zip(nodes, hashes):
                node.embedding = (fresh[h] if h in fresh else old[h]).tolist()
                # The study's number in this generation: what filters by study id compare (safe SQL).
                node.metadata["study_n"] = numbers[node.metadata["study_id"]]
                node.excluded_embed_metadata_keys = [*node.excluded_embed_metadata_keys, "study_n"]
                node.excluded_llm_metadata_keys = [*node.excluded_llm_metadata_keys, "study_n"]
            summary.chunks, summary.embedded_chunks = len(nodes), len(todo)
            summary.reused_chunks = len(nodes) - len(todo)
            dimension = len(nodes[0].embedding or []) if nodes else 0
            manifest = {
                "model": model, "dimension": dimension,
                "chunking_version": CHUNKING_VERSION, "chunk_hashes": hashes,
                "node_ids": [node.node_id for node in nodes],
                "studies": {s.id: sha(json.dumps(s.to_dict(), sort_keys=True, default=str)) for s in load.studies},
                "skipped": summary.skipped, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "last_sync": library_last_sync(load.studies),  # of the PubMed library folders read
            }
            name = f"g{time.strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(4)}"
            _write_generation(db, name, nodes, dimension or 384)
            db.publish(name, manifest, [s.to_dict() for s in load.studies])
            summary.warnings += db.tidy()
    finally:
        db.close()
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _write_generation(db: Database, name: str, nodes, dimension: int) -> None:
    """Fill a new generation's table beside the live one; nothing live is touched. Full-text search
    sees the title and the text, as BM25 does in the FAISS store."""
    table_name = db.table(name)
    vector_store = db.vector_store(name, dimension, setup=True)
    try:
        with db.errors():
            vector_store.add([])  # creates the table
            with db.engine.begin() as conn:  # vectors inline in the row, not TOASTed: an exact scan reads no side table
                conn.exec_driver_sql(f"ALTER TABLE {table_name} ALTER COLUMN embedding SET STORAGE PLAIN")
            for start in range(0, len(nodes), WRITE_BATCH):
                vector_store.add(nodes[start:start + WRITE_BATCH])
            with db.engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {table_name} DROP COLUMN text_search_tsv")
                conn.exec_driver_sql(
                    f"ALTER TABLE {table_name} ADD COLUMN text_search_tsv tsvector GENERATED ALWAYS AS "
                    f"(to_tsvector('{TEXT_SEARCH}', coalesce(metadata_->>'title', '') || ' ' || text)) STORED")
                conn.exec_driver_sql(f'CREATE INDEX "{UNITS}{name}_tsv" ON {table_name} USING gin (text_search_tsv)')
                conn.exec_driver_sql(f"""CREATE INDEX "{UNITS}{name}_study" ON {table_name} ((metadata_->>'study_id'))""")
                conn.exec_driver_sql(f"ANALYZE {table_name}")
    except BaseException:  # Ctrl-C, a lost connection: no half-written table stays behind when we can help it
        try:
            with db.engine.begin() as conn:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table_name}")
        except Exception:
            pass  # the next build's tidy drops it
        raise
