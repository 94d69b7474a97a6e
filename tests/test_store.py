"""The unit store at scale, on synthetic studies and vectors (no model, a few seconds): vectors
memory-mapped, filters applied inside the store, the index type chosen by size (with recall against a
flat search), texts and study records read on demand, and an index of the earlier format."""
import json
import sys

import numpy as np
import pytest

from assistant import index as index_module
from assistant import store as store_module
from assistant.chunk import embed_text, study_units
from assistant.index import MANIFEST, IndexMissing, build_index, live_build, write_library
from assistant.retrieve import Filters, Library
from assistant.settings import Settings
from assistant.store import ANN, VECTORS, Role, flat_vectors
from assistant.study import Pem, Section, Study
from conftest import ROOT

DIM = 32
TYPES = ("rct", "cohort", "case-control", "review")
WORDS = ("fatigue exercise mitochondria immune sleep pain cortisol gut microbiome lactate oxygen heart "
         "brain cognition orthostatic inflammation antibody virus muscle metabolism").split()


def synthetic(n_studies: int, seed: int = 0) -> tuple[list[Study], np.ndarray]:
    """Studies of 2-6 units each, and clustered unit vectors (a unit near one of 40 topics)."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((40, DIM)).astype("float32")
    studies = []
    for i in range(n_studies):
        words = rng.choice(WORDS, 3, replace=False)
        sections = [Section("Summary", Role.SUMMARY, [f"A study of {words[0]} and {words[1]} number {i}."]),
                    Section("Observed", Role.OBSERVED, [f"Finding {j} on {rng.choice(WORDS)} in {words[2]}."
                                                        for j in range(int(rng.integers(1, 5)))]),
                    Section("Not proven", Role.NOT_PROVEN, [f"It does not show that {words[0]} causes it."])]
        studies.append(Study(id=f"synth:{i}", title=f"Study {i} of {words[0]}", year=int(rng.integers(1995, 2027)),
                             study_type=TYPES[i % len(TYPES)], pem=Pem.REQUIRED if i % 3 == 0 else Pem.UNKNOWN,
                             sections=sections))
    n = sum(len(study_units(s)) for s in studies)
    vectors = topics[rng.integers(0, len(topics), n)] + 0.35 * rng.standard_normal((n, DIM)).astype("float32")
    return studies, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def brute(vectors: np.ndarray, query: np.ndarray, k: int, rows: np.ndarray | None = None) -> list[int]:
    rows = np.arange(len(vectors)) if rows is None else rows
    scores = vectors[rows] @ query
    return [int(r) for r in rows[np.argsort(-scores, kind="stable")[:k]]]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    studies, vectors = synthetic(300)
    index_dir = tmp_path_factory.mktemp("store") / "index"
    write_library(index_dir, studies, vectors, "synthetic")
    return index_dir, studies, vectors


def test_vectors_are_memory_mapped_and_faiss_reads_the_file(small):
    import faiss

    index_dir, studies, vectors = small
    library = Library(index_dir)
    assert isinstance(library.store.vectors, np.memmap) and not library.store.vectors.flags.writeable
    assert np.array_equal(np.asarray(library.store.vectors), vectors)
    flat = faiss.read_index(str(live_build(index_dir) / VECTORS))  # the file is a plain FAISS IndexFlatIP
    assert flat.ntotal == len(vectors) and np.array_equal(flat.reconstruct_n(0, flat.ntotal), vectors)
    assert library.manifest["store"]["index"] == "flat" and not (live_build(index_dir) / ANN).exists()


def test_texts_and_study_records_are_read_on_demand(small):
    index_dir, studies, _ = small
    library = Library(index_dir)
    assert library.studies.record.cache_info().currsize == 0  # opening read no study record
    assert len(library.studies) == 300 and list(library.studies)[:2] == ["synth:0", "synth:1"]
    assert library.studies["synth:7"] == studies[7] and "synth:7" in library.studies and "x" not in library.studies
    assert library.studies.record.cache_info().currsize == 1
    units = [(s, u, t) for s in studies for u, t in study_units(s)]
    for row in (0, 1, len(units) // 2, len(units) - 1):
        study, unit, text = units[row]
        assert library.store.unit(row) == unit and library.store.text(row) == text
        assert library.store.row_of(unit) == row
    manifest = json.loads((live_build(index_dir) / MANIFEST).read_text())
    assert manifest["chunk_hashes"][0] == index_module.sha(embed_text(units[0][0], units[0][2]))
    assert manifest["studies"]["synth:7"] == index_module.sha(json.dumps(studies[7].to_dict(), sort_keys=True, default=str))
    assert "chunk_hashes" not in library.manifest and library.manifest["store"]["units"] == len(units)


def test_units_and_best_of_a_study_are_its_rows(small):
    index_dir, studies, vectors = small
    library = Library(index_dir)
    query = vectors[10]
    first, end = library.store.study_rows("synth:5")
    observed = library.store.units("synth:5", Role.OBSERVED, query)
    assert [u.id for u in observed] == sorted((u.id for u in observed), key=lambda u: -float(vectors[library.store.row_of(u)] @ query))
    assert {u.id.position for u in observed} == set(range(len(studies[5].section(Role.OBSERVED).items)))
    assert library.store.best("synth:5", query) == pytest.approx(float(np.max(vectors[first:end] @ query)))
    assert library.store.units("nope", Role.OBSERVED, query) == [] and library.store.best("nope", query) == 0.0


@pytest.mark.parametrize("filters", [Filters(year_from=2015), Filters(year_to=2000), Filters(study_types=("rct",)),
                                     Filters(pem_required=True), Filters(study_ids=("synth:3", "synth:9")),
                                     Filters(year_from=2010, year_to=2020, study_types=("cohort", "review"))])
@pytest.mark.parametrize("path", ["exact", "selector"])
def test_filters_are_applied_inside_the_store(small, monkeypatch, filters, path):
    """The store returns the k best admitted units, whether it scores only the admitted rows or lets
    FAISS skip the others (an IDSelector), the same as a brute-force search over the admitted rows."""
    index_dir, studies, vectors = small
    if path == "selector":
        monkeypatch.setattr(store_module, "EXACT_ROWS", 0)
    library = Library(index_dir)
    admitted_studies = {s.id for s in studies if filters.admits(s)}
    mask = library.store.row_mask(filters)
    assert np.array_equal(mask, library.store.row_mask(lambda s: filters.admits(s)))  # columns = records
    admitted = np.flatnonzero(mask)
    assert {library.store.unit(r).study_id for r in admitted} == admitted_studies
    for q in (0, 17, 400):
        rows, scores = library.store.nearest(vectors[q], 10, mask)
        assert list(rows) == brute(vectors, vectors[q], 10, admitted)
        assert np.allclose(scores, vectors[rows] @ vectors[q], atol=1e-5)
        found = library.store.search(vectors[q], 10, filters)
        assert [u.id for u in found] == [library.store.unit(r) for r in rows]
        hits = library.retrieve("fatigue exercise", vectors[q], filters, top_k=10)
        assert hits and {h.study.id for h in hits} <= admitted_studies
        assert len(hits) == min(10, len(admitted_studies))  # the filter does not starve the result
    bm25_rows, _ = library.bm25.top("fatigue exercise immune", 50, mask)
    assert len(bm25_rows) == min(50, len(admitted)) and mask[bm25_rows].all()


def test_bm25_ranks_as_llama_index_bm25_retriever(small):
    from llama_index.retrievers.bm25 import BM25Retriever

    from assistant.chunk import chunk_study

    index_dir, studies, _ = small
    library = Library(index_dir)
    nodes = [n for s in studies for n in chunk_study(s)]
    reference = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=20)
    for question in ("Does exercise worsen fatigue?", "mitochondria and lactate", "number 17"):
        expected = [(r.node.node_id, round(r.score, 4)) for r in reference.retrieve(question) if r.score > 0]
        rows, scores = library.bm25.top(question, 20)
        got = [(library.store.unit(r).key(), round(float(s), 4)) for r, s in zip(rows, scores) if s > 0]
        assert [s for _, s in got] == sorted((s for _, s in expected), reverse=True)  # the same scores
        cut = got[-1][1] if len(got) == 20 else -1  # ties at the cut may differ in which unit is kept
        assert {u for u, s in got if s > cut} == {u for u, s in expected if s > cut}


def test_index_type_is_chosen_by_size_with_recall_against_flat(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "FLAT_LIMIT", 2000)
    studies, vectors = synthetic(1500, seed=1)
    assert len(vectors) > 2000
    write_library(tmp_path / "index", studies, vectors, "synthetic")
    library = Library(tmp_path / "index")
    assert library.manifest["store"]["index"] == "ivf" and (live_build(tmp_path / "index") / ANN).is_file()
    assert library.store.ann.nlist == library.manifest["store"]["nlist"] == store_module.ivf_lists(len(vectors))
    rng = np.random.default_rng(2)
    queries = vectors[rng.integers(0, len(vectors), 50)] + 0.2 * rng.standard_normal((50, DIM)).astype("float32")
    recall = np.mean([len(set(library.store.nearest(q, 10)[0]) & set(brute(vectors, q, 10))) / 10 for q in queries])
    assert recall >= 0.9, recall
    monkeypatch.setattr(store_module, "EXACT_ROWS", 0)  # a filter over the IVF index (IDSelector, wider nprobe)
    mask = library.store.row_mask(Filters(study_types=("rct",)))
    admitted = np.flatnonzero(mask)
    filtered = [library.store.nearest(q, 10, mask)[0] for q in queries]
    assert all(mask[rows].all() and len(rows) == 10 for rows in filtered)
    recall = np.mean([len(set(rows) & set(brute(vectors, q, 10, admitted))) / 10 for rows, q in zip(filtered, queries)])
    assert recall >= 0.9, recall


def test_an_index_of_the_earlier_format_asks_for_a_rebuild_that_embeds_nothing(tmp_path, monkeypatch):
    """A format-1 build (llama-index JSON storage): `Library` names the fix, `index` reuses its vectors."""
    sys.path.insert(0, str(ROOT / "bench"))
    from legacy_store import write_legacy
    from test_robust_index import FAKE, fake_embed

    from assistant.index import BUILDS, POINTER
    from assistant.parse import load_corpus

    monkeypatch.setattr(index_module, "embed_texts", fake_embed)
    monkeypatch.setattr(index_module, "embedding_model", lambda *args, **kwargs: None)
    corpus = ROOT / "corpus"
    studies = load_corpus([corpus / "2013_meeus_mitochondria_oxidative_stress.txt"]).studies
    texts = [embed_text(s, t) for s in studies for _, t in study_units(s)]
    index_dir = tmp_path / "index"
    old = index_dir / BUILDS / "20250101-000000-1-1"
    old.mkdir(parents=True)
    write_legacy(old, studies, fake_embed(texts), FAKE)
    manifest = json.loads((old / MANIFEST).read_text())
    manifest.update(chunking_version=index_module.CHUNKING_VERSION, chunk_hashes=[index_module.sha(t) for t in texts])
    (old / MANIFEST).write_text(json.dumps(manifest))
    (index_dir / POINTER).write_text(old.name)
    with pytest.raises(IndexMissing, match=r"earlier version .*format 1.* rebuild it with `atlas-assistant index`"):
        Library(index_dir)
    summary = build_index([corpus / "2013_meeus_mitochondria_oxidative_stress.txt"],
                          Settings(index_dir=index_dir, embedding_model=FAKE), progress=False)
    assert summary.embedded_chunks == 0 and summary.reused_chunks == len(texts)
    assert Library(index_dir).manifest["format"] == store_module.FORMAT


def test_a_store_whose_parts_disagree_is_a_clear_error(small, tmp_path):
    """Files that match their checksums but not each other (a build written by a broken writer)."""
    import shutil

    index_dir, studies, vectors = small
    copy = tmp_path / "index"
    shutil.copytree(index_dir, copy)
    build = live_build(copy)
    offsets = np.load(build / "texts.npy")
    np.save(build / "texts.npy", offsets[:-1])
    manifest = json.loads((build / MANIFEST).read_text())
    del manifest["files"]  # as if written so
    (build / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexMissing, match="cannot be read .* rebuild it with `atlas-assistant index`"):
        Library(copy)
    assert flat_vectors(build / VECTORS).shape == vectors.shape


def test_bm25_pruning_of_common_words_keeps_the_exact_top_k(tmp_path, monkeypatch):
    """MaxScore: with the words in more than 1/COMMON_SHARE of units looked up only for rows that can
    still make the top k, the top k are those of scoring every row, filtered or not."""
    studies, vectors = synthetic(600, seed=3)
    write_library(tmp_path / "index", studies, vectors, "synthetic")
    library = Library(tmp_path / "index")
    bm25 = library.bm25
    monkeypatch.setattr(store_module, "COMMON_SHARE", 4)  # "study", "of", a few topic words are common here
    pruned = []
    original = bm25._rest_for_candidates
    monkeypatch.setattr(bm25, "_rest_for_candidates", lambda *a: pruned.append(original(*a)) or pruned[-1])
    for question in ("study of fatigue number 17", "finding 2 on cortisol in sleep", "It does not show that gut causes it",
                     "Study 101 of exercise", "lactate oxygen heart number 5", "study study of of fatigue"):
        for mask in (None, library.store.row_mask(Filters(study_types=("rct", "cohort")))):
            scores = bm25.scores(question)
            if mask is not None:
                scores[~mask] = -np.inf
            rows, top = bm25.top(question, 10, mask)
            expected = np.sort(scores)[::-1][:10]
            assert np.allclose(top, expected, atol=1e-5), question
            assert np.allclose(scores[rows], top, atol=1e-5)
    assert sum(found is not None for found in pruned) >= 3  # the pruned path was taken


def test_large_files_are_checksummed_in_blocks_and_damage_is_still_found(tmp_path, monkeypatch):
    """Files above CHECK_BLOCK are checked in blocks (CRC-32) on every core; a flipped byte, a file cut
    short or grown, and a doctored block list are each found, and the message is the one `index`
    repairs."""
    monkeypatch.setattr(index_module, "CHECK_BLOCK", 4096)
    studies, vectors = synthetic(200, seed=4)
    index_dir = tmp_path / "index"
    write_library(index_dir, studies, vectors, "synthetic")
    build = live_build(index_dir)
    manifest = json.loads((build / MANIFEST).read_text())
    spec = manifest["blocks"][VECTORS]
    assert spec["size"] == (build / VECTORS).stat().st_size and len(spec["digests"]) == -(-spec["size"] // 4096)
    assert all(d.startswith("crc32:") and len(d) == 14 for d in spec["digests"])
    assert set(manifest["blocks"]) <= set(manifest["files"]) and all(len(d) == 64 for d in manifest["files"].values())
    Library(index_dir)  # intact: opens
    original = (build / VECTORS).read_bytes()
    for damaged in (original[:3000] + bytes([original[3000] ^ 0xFF]) + original[3001:],  # one byte
                    original[:-10], original + b"\0" * 10):  # cut short, grown
        (build / VECTORS).write_bytes(damaged)
        with pytest.raises(IndexMissing, match=f"{VECTORS} does not match its checksum.* rebuild it"):
            Library(index_dir)
    (build / VECTORS).write_bytes(original)
    manifest["blocks"][VECTORS]["digests"][0] = "crc32:00000000"
    (build / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexMissing, match="does not match its checksum"):
        Library(index_dir)
