"""The index under faults: one writer at a time, readers during swaps, damaged files repaired by `index`.

Most tests use a fake embedder (hashed bag of words, 64 dimensions, instant) so that builds take a
second; the last one goes through the real model."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from assistant import index as index_module
from assistant.cli import main
from assistant.index import (BUILDS, LOCK, MANIFEST, POINTER, RETIRED, VECTORS, IndexBusy, IndexMissing,
                             build_index, live_build, writer_lock)
from assistant.retrieve import Library
from assistant.settings import Settings
from conftest import CORPUS, ROOT

FILES = ["2013_meeus_mitochondria_oxidative_stress.txt", "2025_cheng_gut_microbiota_scfa.txt",
         "2026_davenport_two_day_cpet.txt", "2025_young_solriamfetol_fatigue.txt",
         "2025_gan_gut_mycobiome_age.txt"]
FAKE = "fake-bag-of-words"
DIM = 64
QUESTION = "Does mitochondrial dysfunction cause ME/CFS?"
TESTS = Path(__file__).resolve().parent


def fake_embed(texts, setting="", batch_size=64):
    """Unit vectors from hashed words: deterministic, instant, and good enough to retrieve by."""
    delay = float(os.environ.get("ATLAS_FAKE_EMBED_DELAY", "0"))
    if delay and texts:
        time.sleep(delay)
    gate = os.environ.get("ATLAS_FAKE_EMBED_GATE")  # embedding waits until this file exists
    while gate and texts and not os.path.exists(gate):
        time.sleep(0.05)
    out = np.zeros((len(texts), DIM), dtype="float32")
    for row, text in enumerate(texts):
        out[row, 0] = 1e-3
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            out[row, int(hashlib.md5(word.encode()).hexdigest()[:6], 16) % DIM] += 1.0
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def use_fake_embedder():
    """For a child process: build with the fake embedder (the parent uses monkeypatch)."""
    index_module.embed_texts = fake_embed
    index_module.embedding_model = lambda *args, **kwargs: None
    if os.environ.get("ATLAS_TEST_KEEP_SECONDS"):
        index_module.KEEP_SECONDS = float(os.environ["ATLAS_TEST_KEEP_SECONDS"])


# A child process: `index` through the CLI, or a loop of builds over alternating corpora.
RUNNER = f"""
import sys, time
from pathlib import Path
sys.path.insert(0, {str(TESTS)!r})
import test_robust_index as t
t.use_fake_embedder()
if sys.argv[1] == "loop":
    from assistant.index import build_index
    from assistant.settings import Settings
    settings = Settings(index_dir=Path(sys.argv[2]), embedding_model={FAKE!r})
    corpora, rounds = [Path(p) for p in sys.argv[4:]], int(sys.argv[3])
    for n in range(rounds):
        build_index([corpora[n % len(corpora)]], settings, progress=False)
    print(rounds, "builds")
else:
    from assistant.cli import main
    sys.exit(main(sys.argv[1:]))
"""


def child(*args, delay=0.0, keep=None, gate=None, **popen):
    env = dict(os.environ, ATLAS_EMBEDDING_MODEL=FAKE, ATLAS_FAKE_EMBED_DELAY=str(delay))
    if gate is not None:
        env["ATLAS_FAKE_EMBED_GATE"] = str(gate)
    if keep is not None:
        env["ATLAS_TEST_KEEP_SECONDS"] = str(keep)
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    return subprocess.Popen([sys.executable, "-c", RUNNER, *map(str, args)], cwd=ROOT, env=env, text=True,
                            **popen)


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(index_module, "embed_texts", fake_embed)
    monkeypatch.setattr(index_module, "embedding_model", lambda *args, **kwargs: None)


@pytest.fixture
def small_corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in FILES:
        shutil.copy(CORPUS / name, folder / name)
    return folder


def fake_settings(index_dir):
    return Settings(index_dir=index_dir, embedding_model=FAKE)


def answers(index_dir, question=QUESTION):
    """Open the index as a reader does and retrieve for one question: the studies found."""
    library = Library(index_dir)
    return [hit.study.id for hit in library.retrieve(question, fake_embed([question])[0])]


def texts_of(index_dir):
    """The embedded text of every chunk of the live build, in FAISS order."""
    from assistant.chunk import chunk_study
    from assistant.parse import load_corpus

    manifest = json.loads((live_build(index_dir) / MANIFEST).read_text())
    paths = sorted({s.source_path for s in Library(index_dir).studies.values()})
    nodes = [n for study in load_corpus([Path(p) for p in paths]).studies for n in chunk_study(study)]
    by_hash = {index_module.sha(t): t for t in (n.get_content(metadata_mode="embed") for n in nodes)}
    return [by_hash[h] for h in manifest["chunk_hashes"]]


def stored_vectors(index_dir):
    import faiss

    build = live_build(index_dir)
    manifest = json.loads((build / MANIFEST).read_text())
    return manifest, faiss.read_index(str(build / VECTORS)).reconstruct_n(0, len(manifest["chunk_hashes"]))


# --- one writer at a time --------------------------------------------------------------------------

def test_second_writer_waits_and_says_who_holds_the_lock(fake, small_corpus, tmp_path):
    index_dir, gate, log = tmp_path / "index", tmp_path / "gate", tmp_path / "second.err"
    first = child("index", small_corpus, "--index", index_dir, "--json", gate=gate)  # embeds once `gate` exists
    deadline = time.time() + 120
    while not ((index_dir / LOCK).exists() and (index_dir / LOCK).read_text()):  # the first holds the lock
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.05)
    with open(log, "w") as err:
        second = child("index", small_corpus, "--index", index_dir, "--json", stderr=err)
        while "waiting" not in log.read_text():
            assert second.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.05)
        gate.touch()
        out1, err1 = first.communicate(timeout=120)
        out2, _ = second.communicate(timeout=120)
    err2 = log.read_text()
    assert first.returncode == 0 and second.returncode == 0, (err1, err2)
    assert f"waiting: another `atlas-assistant index` (pid {first.pid}, since" in err2
    one, two = json.loads(out1.splitlines()[-1]), json.loads(out2.splitlines()[-1])
    assert one["embedded_chunks"] == one["chunks"] and two["embedded_chunks"] == 0  # the second reused
    assert len(answers(index_dir)) == 5
    assert (index_dir / LOCK).read_text() == ""  # nobody holds it now


@pytest.mark.parametrize("rounds", [3])
def test_concurrent_builds_leave_a_readable_index_and_exit_codes_tell_the_truth(fake, small_corpus, tmp_path,
                                                                                rounds):
    other = tmp_path / "other"
    shutil.copytree(small_corpus, other)
    (other / FILES[0]).unlink()
    index_dir = tmp_path / "index"
    for n in range(rounds):
        procs = [child("index", corpus, "--index", index_dir, delay=0.5) for corpus in (small_corpus, other)]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        assert [code for code, _ in results] == [0, 0], results
        library = Library(index_dir)  # whichever finished last is live, complete and verified
        assert len(library.studies) in (4, 5)
        names = {p.name for p in (index_dir / BUILDS).iterdir()}
        assert not any(name.endswith(".partial") for name in names)
        assert not list(index_dir.glob(f"{POINTER}.tmp-*"))


def test_a_writer_that_cannot_get_the_lock_in_time_fails_with_exit_2(fake, small_corpus, tmp_path, capsys):
    index_dir = tmp_path / "index"
    build_index([small_corpus], fake_settings(index_dir), progress=False)
    before = live_build(index_dir)
    with writer_lock(index_dir):
        with pytest.raises(IndexBusy, match=f"pid {os.getpid()}, since .* left as it is"):
            build_index([small_corpus], fake_settings(index_dir), progress=False, lock_timeout=0.3)
    assert "waiting: another `atlas-assistant index`" in capsys.readouterr().err
    assert live_build(index_dir) == before


def test_readers_during_swaps_never_fail(fake, small_corpus, tmp_path):
    """A writer rebuilds over and over (keeping only the build it replaced) while a reader opens the
    index and answers: no open may fail."""
    other = tmp_path / "other"
    shutil.copytree(small_corpus, other)
    (other / FILES[0]).unlink()
    index_dir = tmp_path / "index"
    build_index([small_corpus], fake_settings(index_dir), progress=False)
    writer = child("loop", index_dir, 8, small_corpus, other, keep=0)
    opens, failures, seen = 0, [], set()
    while writer.poll() is None:
        try:
            seen.add(live_build(index_dir).name)
            assert answers(index_dir)
        except IndexMissing as err:
            failures.append(str(err))
        opens += 1
    assert writer.returncode == 0, writer.stderr.read()
    print(f"{opens} opens during {len(seen)} builds, {len(failures)} failed")
    assert not failures and opens >= 5 and len(seen) >= 3, (opens, len(seen), failures[:3])
    # with KEEP_SECONDS 0 only the live build and the one it replaced remain
    assert len(list((index_dir / BUILDS).iterdir())) == 2


def test_replaced_builds_stay_for_readers_then_go(fake, small_corpus, tmp_path, monkeypatch):
    index_dir = tmp_path / "index"
    settings = fake_settings(index_dir)
    names = []
    for _ in range(4):
        build_index([small_corpus], settings, progress=False)
        names.append(live_build(index_dir).name)
    kept = {p.name for p in (index_dir / BUILDS).iterdir()}
    assert kept == set(names)  # all replaced within KEEP_SECONDS
    assert all((index_dir / BUILDS / n / RETIRED).is_file() for n in names[:-1])
    monkeypatch.setattr(index_module, "KEEP_SECONDS", 0.0)
    build_index([small_corpus], settings, progress=False)
    assert {p.name for p in (index_dir / BUILDS).iterdir()} == {names[-1], live_build(index_dir).name}


# --- checksums, norms, damage and repair -----------------------------------------------------------

def flip_bytes(path, count=50, seed=1):
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for pos in rng.integers(len(data) // 4, len(data), count):  # past the header, among the vectors
        data[pos] ^= 0xFF
    path.write_bytes(bytes(data))


def damage(index_dir, kind):
    build = live_build(index_dir)
    vectors = build / VECTORS
    if kind == "faiss truncated":
        vectors.write_bytes(vectors.read_bytes()[: vectors.stat().st_size // 2])
    elif kind == "faiss empty":
        vectors.write_bytes(b"")
    elif kind == "faiss bad header":
        vectors.write_bytes(b"XXXX" + vectors.read_bytes()[4:])
    elif kind == "faiss flipped bytes":
        flip_bytes(vectors)
    elif kind == "faiss missing":
        vectors.unlink()
    elif kind == "manifest unreadable":
        (build / MANIFEST).write_text("{not json")
    elif kind == "manifest missing":
        (build / MANIFEST).unlink()
    elif kind == "docstore garbage":  # the unit texts
        (build / "texts.bin").write_text("{not json")
    elif kind == "bm25 missing":
        shutil.rmtree(build / "bm25")
    elif kind == "studies truncated":
        (build / "studies.jsonl").write_bytes((build / "studies.jsonl").read_bytes()[:100])
    elif kind == "builds is a file":
        shutil.rmtree(index_dir / BUILDS)
        (index_dir / BUILDS).write_text("not a folder")
    elif kind == "build folder missing":
        shutil.rmtree(build)
    elif kind == "CURRENT garbage":
        (index_dir / POINTER).write_bytes(b"\xff\xfe../../etc")
    elif kind == "CURRENT is a folder":
        (index_dir / POINTER).unlink()
        (index_dir / POINTER).mkdir()
        (index_dir / POINTER / "x").write_text("x")
    else:
        raise AssertionError(kind)


KINDS = ["faiss truncated", "faiss empty", "faiss bad header", "faiss flipped bytes", "faiss missing",
         "manifest unreadable", "manifest missing", "docstore garbage", "bm25 missing", "studies truncated",
         "builds is a file", "build folder missing", "CURRENT garbage", "CURRENT is a folder"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_damage_is_detected_and_repaired_by_index(fake, small_corpus, tmp_path, kind, capsys,
                                                               monkeypatch):
    index_dir = tmp_path / "index"
    settings = fake_settings(index_dir)
    build_index([small_corpus], settings, progress=False)
    expected = answers(index_dir)
    damage(index_dir, kind)
    with pytest.raises(IndexMissing, match="rebuild it with `atlas-assistant index`|no index at"):
        answers(index_dir)
    monkeypatch.setenv("ATLAS_EMBEDDING_MODEL", FAKE)
    code = main(["index", str(small_corpus), "--index", str(index_dir), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert answers(index_dir) == expected  # `ask` works again, with the same studies
    manifest, vectors = stored_vectors(index_dir)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)  # no damaged vector carried over
    assert np.allclose(vectors, fake_embed(texts_of(index_dir)), atol=1e-5)
    assert (index_dir / BUILDS).is_dir() and (index_dir / POINTER).is_file()


def test_damaged_live_build_reuses_the_intact_build_before_it(fake, small_corpus, tmp_path):
    index_dir = tmp_path / "index"
    settings = fake_settings(index_dir)
    first = build_index([small_corpus], settings, progress=False)
    entry = small_corpus / FILES[1]
    entry.write_text(entry.read_text().replace("Observed Findings\n",
                                               "Observed Findings\nA new finding about butyrate in stool\n", 1))
    build_index([small_corpus], settings, progress=False)
    damaged = live_build(index_dir).name
    flip_bytes(live_build(index_dir) / VECTORS)
    repaired = build_index([small_corpus], settings, progress=False)
    assert repaired.embedded_chunks == 1 and repaired.reused_chunks == first.chunks  # only the new chunk
    assert any("does not match its checksum" in w for w in repaired.warnings)
    assert any("reused from the earlier build" in w for w in repaired.warnings)
    assert not (index_dir / BUILDS / damaged).exists()  # a damaged build is not kept
    assert answers(index_dir)


def test_vectors_without_unit_norm_are_never_reused(fake, small_corpus, tmp_path):
    """A build from before checksums (no `files` in its manifest) whose vectors were altered: the norm
    check catches what no checksum can."""
    import faiss

    index_dir = tmp_path / "index"
    settings = fake_settings(index_dir)
    first = build_index([small_corpus], settings, progress=False)
    build = live_build(index_dir)
    manifest = json.loads((build / MANIFEST).read_text())
    del manifest["files"]
    (build / MANIFEST).write_text(json.dumps(manifest))
    stored = faiss.read_index(str(build / VECTORS))
    vectors = stored.reconstruct_n(0, stored.ntotal)
    vectors[:10] *= 62.0
    altered = faiss.IndexFlatIP(vectors.shape[1])
    altered.add(vectors)
    faiss.write_index(altered, str(build / VECTORS))
    rebuilt = build_index([small_corpus], settings, progress=False)
    assert rebuilt.embedded_chunks == 10 and rebuilt.reused_chunks == first.chunks - 10
    assert any("10 vectors" in w and "not unit length" in w for w in rebuilt.warnings)
    _, vectors = stored_vectors(index_dir)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_stale_partial_and_temporary_files_are_cleaned(fake, small_corpus, tmp_path):
    index_dir = tmp_path / "index"
    settings = fake_settings(index_dir)
    build_index([small_corpus], settings, progress=False)
    (index_dir / BUILDS / "20200101-000000-1-1.partial").mkdir()
    (index_dir / BUILDS / "20200101-000000-1-1.partial" / "docstore.json").write_text("{}")
    (index_dir / BUILDS / "20200101-000000-2-2").mkdir()  # half removed: no manifest
    (index_dir / f"{POINTER}.tmp-12345").write_text("x")
    (index_dir / BUILDS / "stray-file").write_text("x")
    assert answers(index_dir)  # none of it troubles a reader
    build_index([small_corpus], settings, progress=False)
    left = sorted(p.name for p in (index_dir / BUILDS).iterdir())
    assert len(left) == 2 and not any("2020" in n or "stray" in n for n in left)
    assert not list(index_dir.glob(f"{POINTER}.tmp-*"))


def test_manifest_holds_a_checksum_for_every_file(fake, small_corpus, tmp_path):
    index_dir = tmp_path / "index"
    build_index([small_corpus], fake_settings(index_dir), progress=False)
    build = live_build(index_dir)
    manifest = json.loads((build / MANIFEST).read_text())
    files = {p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file()} - {MANIFEST}
    assert set(manifest["files"]) == files and VECTORS in files and "studies.jsonl" in files and "texts.bin" in files
    assert all(len(digest) == 64 for digest in manifest["files"].values())


@pytest.mark.slow
def test_flipped_bytes_through_the_real_model_are_repaired(small_corpus, tmp_path, capsys):
    """The real model end to end: damage found by `ask`, repaired by `index`, and `ask` answers again."""
    index_dir = str(tmp_path / "index")
    assert main(["index", str(small_corpus), "--index", index_dir, "--json"]) == 0
    capsys.readouterr()
    flip_bytes(live_build(Path(index_dir)) / VECTORS)
    assert main(["ask", QUESTION, "--index", index_dir]) == 2
    assert "does not match its checksum" in capsys.readouterr().err
    assert main(["index", str(small_corpus), "--index", index_dir, "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["embedded_chunks"] == summary["chunks"] and "full rebuild" in captured.err
    assert main(["ask", QUESTION, "--index", index_dir, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert answer["status"] == "answered" and answer["sources"]


def test_a_build_that_fails_while_writing_leaves_nothing_behind(fake, small_corpus, tmp_path, monkeypatch):
    import errno

    from assistant import store

    index_dir = tmp_path / "index"
    settings = fake_settings(index_dir)
    build_index([small_corpus], settings, progress=False)
    before = live_build(index_dir)

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "write_bm25", disk_full)  # after the texts and vectors were written
    with pytest.raises(OSError, match="No space left"):
        build_index([small_corpus], settings, progress=False)
    assert [p.name for p in (index_dir / BUILDS).iterdir()] == [before.name]
    assert live_build(index_dir) == before and answers(index_dir)
    assert (index_dir / LOCK).read_text() == ""  # the lock was let go


def test_an_index_folder_that_is_a_file_is_a_clear_error(fake, small_corpus, tmp_path, capsys, monkeypatch):
    (tmp_path / "index").write_text("not a folder")
    monkeypatch.setenv("ATLAS_EMBEDDING_MODEL", FAKE)
    code = main(["index", str(small_corpus), "--index", str(tmp_path / "index")])
    assert code == 2 and "is a file, not an index folder" in capsys.readouterr().err
