"""Stage 3, index: embed chunks into a FAISS index through llama-index, incrementally and atomically.

Layout of the index folder:
    CURRENT            the name of the live build (replaced atomically, so readers never see a half build)
    LOCK               held (flock) by the one `index` that may write here; says which process holds it
    builds/<name>/     the unit store (store.py: FAISS vectors, an IVF index for large libraries, unit
                       texts, study records, bm25/, all read memory-mapped or on demand),
                       manifest.json (format, model, dimension, chunking version, per-study content
                       hash, per-chunk text hash in FAISS order, the store's index type, sha256 of every
                       other file of the build, or for a file above 64 MB the CRC-32 of each 64 MB
                       block, checked on every core); RETIRED (when a build stopped being live)

A rebuild reuses the vector of every chunk whose embedded text is unchanged, so an unchanged corpus
embeds nothing and an edited entry embeds only its changed chunks. A model or chunking change
rebuilds everything, and says why. Vectors are reused only from a build whose files match their
checksums and only if they are unit vectors; a damaged build is never reused, and the build before it
serves instead when it is intact.

Writers take the lock; readers never do. The build that finished moves CURRENT, then removes what is
no longer needed: the build it replaced stays (a reader may have read CURRENT just before the move),
as does any build replaced less than KEEP_SECONDS ago; older builds, damaged builds, half-written
`.partial` folders and temporary files go. A reader re-reads CURRENT once when a build changes under it.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
import zlib
from contextlib import contextmanager
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from tqdm import tqdm

from .chunk import CHUNKING_VERSION, embed_text, study_units
from .embed import embed_texts, embedding_model, model_name
from .pubmed_sync import library_last_sync
from .settings import Settings
from .store import FORMAT, VECTORS, StoreDamaged, flat_vectors, write_store
from .study import Study

POINTER = "CURRENT"
LOCK = "LOCK"
BUILDS = "builds"
MANIFEST = "manifest.json"
RETIRED = "RETIRED"
LEGACY_VECTORS = "default__vector_store.json"  # the FAISS file of a format-1 build (llama-index storage)
PARTIAL = ".partial"
TEMP_PREFIX = f"{POINTER}.tmp-"
KEEP_SECONDS = 600.0  # a replaced build outlives any reader that read CURRENT before the move
NORM_TOLERANCE = 1e-3  # |norm - 1| of a reusable vector (stored vectors are normalised float32)


class EmptyCorpus(ValueError):
    """Nothing to index: the live index is kept rather than replaced by an empty one."""


class IndexMissing(Exception):
    """No usable index at the given folder; the message says which command builds one."""


class IndexBusy(IndexMissing):
    """Another `index` holds the lock and did not finish within the time allowed."""


class BuildDamaged(ValueError):
    """A build whose files do not match its manifest; the message names the file and what is wrong."""


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
    waited_seconds: float = 0.0  # for the lock held by another `index`

    def contract(self) -> dict:
        """The `index --json` object (shared/contracts/index-summary.schema.json)."""
        keys = ("studies", "chunks", "embedded_chunks", "reused_chunks", "skipped", "seconds")
        return {k: getattr(self, k) for k in keys}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- reading -------------------------------------------------------------------------------------

def _pointer(index_dir: Path) -> str | None:
    """The build CURRENT names; None when there is no CURRENT; BuildDamaged when it cannot be read."""
    path = index_dir / POINTER
    try:
        name = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except NotADirectoryError:  # the index folder itself is a file
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise BuildDamaged(f"{POINTER} cannot be read ({type(err).__name__})") from None
    if not name or "/" in name or name in (".", "..") or name.endswith(PARTIAL):
        raise BuildDamaged(f"{POINTER} does not name a build ({name[:40]!r})")
    return name


def _loads(text: bytes):
    """json.loads, through orjson when it is installed (gradio brings it): a large library's manifest
    lists a million chunk hashes: 0.6 s through json, 0.35 s through orjson (measured under load)."""
    try:
        import orjson
    except ImportError:
        return json.loads(text)
    return orjson.loads(text)


def read_manifest(build: Path) -> dict:
    """The manifest of a build, checked for the keys a reader needs."""
    try:
        manifest = _loads((build / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise BuildDamaged(f"{build.name}/{MANIFEST} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise BuildDamaged(f"{build.name}/{MANIFEST} cannot be read ({type(err).__name__})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("chunk_hashes"), list) \
            or not isinstance(manifest.get("files", {}), dict):
        raise BuildDamaged(f"{build.name}/{MANIFEST} lacks the chunk list or the file checksums")
    return manifest


CHECK_BLOCK = 64 << 20  # files larger than this are checksummed (and verified) in blocks of this size


def _block_digest(path: Path, number: int, block: int) -> str:
    """The CRC-32 of one block of a file ("crc32:" and 8 hex digits; b"" past its end). CRC-32 runs
    at twice sha256's speed here (1.6 against 0.87 GB/s) and finds damage, which is what these
    checksums are for: a truncated or cut copy, flipped bits, a half-written file. Neither it nor
    sha256 would stop a deliberate edit: the manifest sits beside the files it describes."""
    value = 0
    with open(path, "rb") as handle:
        handle.seek(number * block)
        left = block
        while left:
            data = handle.read(min(4 << 20, left))
            if not data:
                break
            value = zlib.crc32(data, value)
            left -= len(data)
    return f"crc32:{value:08x}"


def _parallel(jobs: list[Callable[[], str]]) -> list[str | OSError]:
    """Run hashing jobs on every core (hashlib lets go of the GIL); a job that cannot read its file
    gives its error instead."""
    from concurrent.futures import ThreadPoolExecutor

    def run(job):
        try:
            return job()
        except OSError as err:
            return err

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return list(pool.map(run, jobs))


def _checksums(folder: Path, rels: list[str]) -> tuple[list[str | OSError], dict[str, dict]]:
    """The checksum of each file, and the block checksums of files above CHECK_BLOCK bytes. A large
    library's files add up to gigabytes and the vectors alone to two, so a large file is checked in
    blocks that every core shares (`_block_digest`): its checksum in `files` is then the sha256 of its
    block digests (joined), and `blocks` keeps its size and the digests."""
    sizes = {rel: _size(folder / rel) for rel in rels}
    jobs: list[Callable[[], str]] = []
    owners: list[str] = []
    for rel in rels:
        count = -(-sizes[rel] // CHECK_BLOCK) if sizes[rel] > CHECK_BLOCK else 0
        if count:
            jobs += [partial(_block_digest, folder / rel, n, CHECK_BLOCK) for n in range(count)]
            owners += [rel] * count
        else:
            jobs.append(partial(file_sha256, folder / rel))
            owners.append(rel)
    results = _parallel(jobs)
    found: dict[str, list] = {}
    for rel, result in zip(owners, results):
        found.setdefault(rel, []).append(result)
    digests: list[str | OSError] = []
    blocks: dict[str, dict] = {}
    for rel in rels:
        parts = found[rel]
        error = next((r for r in parts if isinstance(r, OSError)), None)
        if error is not None:
            digests.append(error)
        elif sizes[rel] > CHECK_BLOCK:
            blocks[rel] = {"size": sizes[rel], "block": CHECK_BLOCK, "digests": parts}
            digests.append(hashlib.sha256("".join(parts).encode()).hexdigest())
        else:
            digests.append(parts[0])
    return digests, blocks


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def verify_build(build: Path) -> dict:
    """The manifest of a build whose every file matches its sha256; BuildDamaged names what does not.
    Builds written before checksums existed (no `files` in the manifest) pass on their manifest alone."""
    if not build.is_dir():
        raise BuildDamaged(f"build {build.name} is missing")
    manifest = read_manifest(build)
    files, blocks = manifest.get("files", {}), manifest.get("blocks", {})
    if not isinstance(blocks, dict):
        raise BuildDamaged(f"{build.name}/{MANIFEST} has unreadable block checksums")
    jobs: list[Callable[[], str]] = []
    owners: list[tuple[str, int | None]] = []
    for rel in files:
        spec = blocks.get(rel)
        if isinstance(spec, dict) and isinstance(spec.get("digests"), list) and spec.get("block"):
            jobs += [partial(_block_digest, build / rel, n, int(spec["block"])) for n in range(len(spec["digests"]))]
            owners += [(rel, n) for n in range(len(spec["digests"]))]
        else:
            jobs.append(partial(file_sha256, build / rel))
            owners.append((rel, None))
    checked: list[str | OSError | None] = list(_parallel(jobs))
    for (rel, n), actual in zip(owners, checked):
        if isinstance(actual, FileNotFoundError):
            raise BuildDamaged(f"{build.name}/{rel} is missing")
        if isinstance(actual, OSError):
            raise BuildDamaged(f"{build.name}/{rel} cannot be read ({type(actual).__name__})")
        if n is None:
            expected = files[rel]
        else:
            spec = blocks[rel]
            expected = spec["digests"][n]
            if n == 0 and (_size(build / rel) != spec.get("size")
                           or hashlib.sha256("".join(spec["digests"]).encode()).hexdigest() != files[rel]):
                actual = None  # its size or its block list is not what the build wrote
        if actual != expected:
            raise BuildDamaged(f"{build.name}/{rel} does not match its checksum "
                               f"({_size(build / rel)} bytes)")
    return manifest


def live_build(index_dir: Path, verify: bool = True) -> Path | None:
    """The live build folder, its files verified against their checksums; None when there is no index.
    A damaged live build raises IndexMissing naming the damage and the fix. When CURRENT moved while
    the build was being checked (a rebuild swapped it), the new build is read once more."""
    found = _live(index_dir, verify)
    return found[0] if found else None


def open_live(index_dir: Path) -> tuple[Path, dict] | None:
    """The live build and its manifest, every file verified (as `live_build`); None when there is no index."""
    found = _live(index_dir, True)
    return (found[0], found[1] or {}) if found else None  # verified, so the manifest is always there


def _live(index_dir: Path, verify: bool) -> tuple[Path, dict | None] | None:
    index_dir = Path(index_dir)
    for attempt in (1, 2):
        try:
            name = _pointer(index_dir)
            if name is None:
                return None
            build = index_dir / BUILDS / name
            manifest = None
            if verify:
                manifest = verify_build(build)
            elif not (build / MANIFEST).is_file():
                raise BuildDamaged(f"build {name} is missing")
            return build, manifest
        except BuildDamaged as err:
            try:
                moved = _pointer(index_dir) != name
            except BuildDamaged:
                moved = False
            if attempt == 1 and moved:
                continue
            raise IndexMissing(f"the index at {index_dir}/ is damaged ({err}); "
                               "rebuild it with `atlas-assistant index`") from None
    return None  # not reached


# --- the writer lock -----------------------------------------------------------------------------

def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def writer_lock(index_dir: Path, timeout: float | None = None,
                announce: Callable[[str], None] = _say) -> Iterator[float]:
    """Hold the index folder's lock (flock on LOCK) for one writer. A second writer says who holds it
    and waits (at most `timeout` seconds, then IndexBusy); yields the seconds spent waiting. The lock
    goes with the process, so a killed writer never leaves it held."""
    if index_dir.exists() and not index_dir.is_dir():
        raise IndexMissing(f"{index_dir} is a file, not an index folder; choose another --index")
    path = index_dir / LOCK
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise IndexMissing(f"cannot write the index at {index_dir}/ ({err.strerror or err}); "
                           "nothing was changed") from None
    started = time.monotonic()
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = _holder(path)
            announce(f"waiting: {holder} is writing the index at {index_dir}/; this build starts when "
                     "it finishes (Ctrl-C to stop waiting)")
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as again:
                    if again.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                if timeout is not None and time.monotonic() - started > timeout:
                    state = "the index was left as it is" if _pointer_exists(index_dir) else "no index was created"
                    raise IndexBusy(f"{holder} is still writing the index at {index_dir}/ after "
                                    f"{timeout:.0f} s; {state}") from None
                time.sleep(0.1)
        waited = time.monotonic() - started
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}\n".encode(), 0)
        try:
            yield waited
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _pointer_exists(index_dir: Path) -> bool:
    return (index_dir / POINTER).is_file()


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return f"another `atlas-assistant index` ({text})" if text else "another `atlas-assistant index`"


# --- housekeeping (only under the lock) ----------------------------------------------------------

def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _tidy(index_dir: Path, damaged: set[str] | frozenset[str] = frozenset(), now: float | None = None) -> list[str]:
    """Make the folder layout sound and drop what no reader needs; returns what was repaired.
    Runs only under the writer lock, so every `.partial` and temporary file here is stale."""
    repairs = []
    builds = index_dir / BUILDS
    if (builds.exists() or builds.is_symlink()) and not builds.is_dir():
        _remove(builds)
        repairs.append(f"removed {builds}, which was not a folder")
    builds.mkdir(exist_ok=True)
    pointer = index_dir / POINTER
    if pointer.is_dir() and not pointer.is_symlink():
        _remove(pointer)
        repairs.append(f"removed the folder {pointer}, which should be a file")
    for tmp in index_dir.glob(TEMP_PREFIX + "*"):
        _remove(tmp)
    try:
        current = _pointer(index_dir)
    except BuildDamaged:
        current = None
    now = time.time() if now is None else now
    retired: dict[Path, float] = {}
    for entry in builds.iterdir():
        if entry.name == current and entry.is_dir():
            continue
        if entry.name.endswith(PARTIAL) or not entry.is_dir() or entry.name in damaged \
                or not (entry / MANIFEST).is_file():
            _remove(entry)  # half-written, half-removed, damaged or stray
            continue
        try:
            retired[entry] = (entry / RETIRED).stat().st_mtime
        except OSError:
            _remove(entry)  # finished but never live (its writer died before the swap)
    newest = max(retired, key=lambda entry: retired[entry], default=None)
    for entry, when in retired.items():
        if entry != newest and now - when > KEEP_SECONDS:
            _remove(entry)
    return repairs


# --- reusing vectors -----------------------------------------------------------------------------

@dataclass
class Reuse:
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    reason: str | None = None  # why nothing could be reused (a full rebuild)
    damaged: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)


def _candidates(index_dir: Path) -> tuple[list[Path], str | None]:
    """Builds to take vectors from, the live one first, then replaced ones newest first."""
    builds = index_dir / BUILDS
    try:
        current = _pointer(index_dir)
        problem = None
    except BuildDamaged as err:
        current, problem = None, str(err)
    others = []
    if builds.is_dir():
        for entry in builds.iterdir():
            if entry.is_dir() and entry.name != current and not entry.name.endswith(PARTIAL):
                try:
                    others.append(((entry / RETIRED).stat().st_mtime, entry))
                except OSError:
                    pass
    ordered = [builds / current] if current else []
    ordered += [entry for _, entry in sorted(others, reverse=True)]
    return ordered, problem


def _load_vectors(build: Path, manifest: dict) -> tuple[dict[str, np.ndarray], int]:
    """Chunk hash -> vector of a verified build, and how many vectors failed the unit-norm check.
    Reads a format-1 build's vectors too, so upgrading the index embeds nothing again."""
    hashes = manifest["chunk_hashes"]
    if not hashes:
        return {}, 0
    name = VECTORS if manifest.get("format", 1) >= 2 else LEGACY_VECTORS
    path = build / name
    if path.stat().st_size < 64:
        raise BuildDamaged(f"{build.name}/{name} is too short to hold vectors")
    try:
        if name == VECTORS:
            vectors = flat_vectors(path)
        else:
            import faiss

            faiss_index = faiss.read_index(str(path))
            vectors = faiss_index.reconstruct_n(0, faiss_index.ntotal)
    except StoreDamaged as err:
        raise BuildDamaged(f"{build.name}/{err}") from None
    except Exception as err:  # faiss raises RuntimeError for any malformed file
        raise BuildDamaged(f"{build.name}/{name} cannot be read ({type(err).__name__})") from None
    if vectors.shape != (len(hashes), manifest.get("dimension")):
        raise BuildDamaged(f"{build.name}/{name} holds {vectors.shape[0]} vectors of dimension "
                           f"{vectors.shape[1]}, the manifest {len(hashes)} of {manifest.get('dimension')}")
    good = np.zeros(len(hashes), dtype=bool)
    for start in range(0, len(hashes), 65536):
        with np.errstate(all="ignore"):
            norms = np.linalg.norm(np.asarray(vectors[start:start + 65536], dtype="float64"), axis=1)
        good[start:start + 65536] = np.isfinite(norms) & (np.abs(norms - 1.0) <= NORM_TOLERANCE)
    reusable = {h: vectors[i] for i, (h, ok) in enumerate(zip(hashes, good)) if ok}
    return reusable, int((~good).sum())


def _previous_vectors(index_dir: Path, model: str) -> Reuse:
    """Vectors of the live build (or, when it is damaged, of the build before it) keyed by chunk text
    hash, or why none can be reused. Never raises: whatever cannot be read is embedded again."""
    reuse = Reuse()
    candidates, problem = _candidates(index_dir)
    if problem:
        reuse.warnings.append(f"the index pointer was damaged ({problem}); it is rewritten")
    live = True
    for build in candidates:
        try:
            manifest = verify_build(build)
            if manifest.get("model") != model:
                why = f"the embedding model changed ({manifest.get('model')} -> {model})"
            elif manifest.get("chunking_version") != CHUNKING_VERSION:
                why = (f"the chunking changed (version {manifest.get('chunking_version')} -> "
                       f"{CHUNKING_VERSION})")
            else:
                why = None
            if why:
                if live:
                    reuse.reason = why
                    return reuse
                continue
            vectors, bad = _load_vectors(build, manifest)
        except (BuildDamaged, OSError, KeyError, TypeError, ValueError, MemoryError) as err:
            detail = str(err) if isinstance(err, BuildDamaged) else f"{build.name}: {type(err).__name__}: {err}"
            reuse.damaged.add(build.name)
            reuse.warnings.append(f"damaged build, not reused: {detail}")
            live = False
            continue
        if bad:
            reuse.warnings.append(f"{bad} vectors of build {build.name} are not unit length; "
                                  "their chunks are embedded again")
        if not live:
            reuse.warnings.append(f"vectors reused from the earlier build {build.name}")
        reuse.vectors = vectors
        return reuse
    if reuse.damaged:
        reuse.reason = "no intact earlier build to reuse vectors from (" + "; ".join(
            w.split(": ", 1)[1] for w in reuse.warnings if w.startswith("damaged build")) + ")"
    return reuse


# --- building ------------------------------------------------------------------------------------

def build_index(paths: list[Path], settings: Settings, progress: bool = True,
                lock_timeout: float | None = None) -> IndexSummary:
    if settings.store == "postgres":  # the shared store writes generations of its own
        from .store_pg import build_postgres

        return build_postgres(paths, settings, progress, lock_timeout)
    started = time.perf_counter()
    index_dir = Path(settings.index_dir)
    from .parse import load_corpus  # the parsers load to build, not to answer

    load = load_corpus(paths, settings.max_file_bytes)
    if not load.studies:
        state = ("was left as it was" if live_build_name(index_dir) else "was not created (no index yet)")
        raise EmptyCorpus("no study could be read from " + ", ".join(map(str, paths))
                          + ("; " + "; ".join(str(p) for p in load.errors[:3]) if load.errors else "")
                          + f". The index at {index_dir}/ {state}.")
    summary = IndexSummary(studies=len(load.studies), skipped=load.skipped,
                           warnings=[str(p) for p in load.problems if p.severity == "warning"])
    texts = [embed_text(study, text) for study in load.studies for _, text in study_units(study)]
    hashes = [sha(t) for t in texts]
    model = model_name(settings.embedding_model)

    with writer_lock(index_dir, timeout=lock_timeout) as waited:
        summary.waited_seconds = round(waited, 3)
        summary.warnings += _tidy(index_dir)
        reuse = _previous_vectors(index_dir, model)
        old = reuse.vectors
        summary.full_rebuild_reason = reuse.reason
        summary.warnings += reuse.warnings

        todo = [i for i, h in enumerate(hashes) if h not in old]
        if todo:
            load_started = time.perf_counter()
            embedding_model(settings.embedding_model, settings.embed_batch_size)
            summary.model_load_seconds = time.perf_counter() - load_started
        fresh = _embed_with_progress([texts[i] for i in todo], settings, progress)
        new = dict(zip((hashes[i] for i in todo), fresh))
        vectors = (np.array([new[h] if h in new else old[h] for h in hashes], dtype="float32") if hashes
                   else np.zeros((0, 0), dtype="float32"))
        summary.chunks = len(texts)
        summary.embedded_chunks = len(todo)
        summary.reused_chunks = len(texts) - len(todo)

        build = _write_build(index_dir, load.studies, vectors, {
            "model": model, "dimension": vectors.shape[1] if len(hashes) else 0,
            "chunking_version": CHUNKING_VERSION, "chunk_hashes": hashes,
            "studies": {s.id: sha(json.dumps(s.to_dict(), sort_keys=True, default=str)) for s in load.studies},
            "skipped": summary.skipped, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "last_sync": library_last_sync(load.studies),  # of the PubMed library folders read (None: never)
        })
        _swap_live(index_dir, build)
        summary.warnings += _tidy(index_dir, damaged=reuse.damaged)
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def live_build_name(index_dir: Path) -> str | None:
    """The name CURRENT holds, unchecked (None when absent or unreadable)."""
    try:
        return _pointer(Path(index_dir))
    except BuildDamaged:
        return None


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


def _write_build(index_dir: Path, studies: list[Study], vectors: np.ndarray, manifest: dict,
                 say: Callable[[str], None] = lambda message: None) -> Path:
    """Write a complete build beside the live one; nothing live is touched here. The manifest, written
    last, holds the sha256 of every other file, so a build is only as good as its files."""
    builds = index_dir / BUILDS
    builds.mkdir(parents=True, exist_ok=True)
    build = builds / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.perf_counter_ns() % 10**6}"
    partial = build.with_name(build.name + PARTIAL)
    try:
        written = write_store(partial, studies, vectors, manifest["dimension"] or 384, say)
        if manifest.setdefault("chunk_hashes", written["chunk_hashes"]) != written["chunk_hashes"]:
            raise AssertionError("the store's units are not the chunks that were embedded")
        manifest.update(format=FORMAT, studies=written["studies"], store=written["store"])
        say("checksums")
        rels = sorted(path.relative_to(partial).as_posix() for path in partial.rglob("*") if path.is_file())
        digests, blocks = _checksums(partial, rels)
        if any(isinstance(digest, OSError) for digest in digests):
            raise next(digest for digest in digests if isinstance(digest, OSError))
        manifest["files"] = dict(zip(rels, digests))
        if blocks:
            manifest["blocks"] = blocks
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1))
        partial.rename(build)
    except BaseException:  # disk full, Ctrl-C: nothing half-written stays behind
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return build


def write_library(index_dir: Path, studies: list[Study], vectors: np.ndarray, model: str,
                  lock_timeout: float | None = None, say: Callable[[str], None] = lambda message: None) -> Path:
    """Make a library live from studies whose unit vectors are already known, one row per unit in the
    order of `chunk.study_units` (an array or a numpy.memmap): the lock, the checksummed build and the
    atomic swap of `build_index`, without reading a corpus or embedding (bench/scale_bench.py)."""
    index_dir = Path(index_dir)
    with writer_lock(index_dir, timeout=lock_timeout):
        _tidy(index_dir)
        build = _write_build(index_dir, studies, vectors, {
            "model": model, "dimension": int(vectors.shape[1]), "chunking_version": CHUNKING_VERSION,
            "skipped": [], "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, say)
        _swap_live(index_dir, build)
        _tidy(index_dir)
    return build


def _swap_live(index_dir: Path, build: Path) -> None:
    """Point CURRENT at the new build in one atomic rename and mark the build it replaced as retired
    (it stays for readers that read CURRENT just before; _tidy removes it later)."""
    previous = live_build_name(index_dir)
    tmp = index_dir / f"{TEMP_PREFIX}{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(build.name)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, index_dir / POINTER)
    if previous and previous != build.name and (index_dir / BUILDS / previous).is_dir():
        (index_dir / BUILDS / previous / RETIRED).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
