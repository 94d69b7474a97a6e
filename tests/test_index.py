"""Index builds on disk: incremental rebuilds, atomic swaps, a build killed midway, the manifest."""
import json
import shutil
import signal
import subprocess
import sys
import threading
import time

import jsonschema
import pytest

from assistant.cli import main
from assistant.index import build_index, live_build
from assistant.retrieve import Library
from assistant.settings import Settings
from conftest import CORPUS, ROOT
from test_robust_index import FAKE, fake, fake_embed  # noqa: F401  (fake: the instant embedder fixture)

FILES = ["2013_meeus_mitochondria_oxidative_stress.txt", "2025_cheng_gut_microbiota_scfa.txt",
         "2026_davenport_two_day_cpet.txt", "2025_young_solriamfetol_fatigue.txt",
         "2025_gan_gut_mycobiome_age.txt"]


@pytest.fixture
def small_corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in FILES:
        shutil.copy(CORPUS / name, folder / name)
    return folder


def test_incremental_rebuilds(fake, small_corpus, tmp_path):
    settings = Settings(index_dir=tmp_path / "index", embedding_model=FAKE)
    first = build_index([small_corpus], settings, progress=False)
    assert first.studies == 5 and first.embedded_chunks == first.chunks > 50 and first.reused_chunks == 0

    unchanged = build_index([small_corpus], settings, progress=False)
    assert unchanged.embedded_chunks == 0 and unchanged.reused_chunks == first.chunks

    entry = small_corpus / FILES[1]
    text = entry.read_text()
    entry.write_text(text.replace("Observed Findings\n", "Observed Findings\nA newly added finding about butyrate levels in stool\n", 1))
    edited = build_index([small_corpus], settings, progress=False)
    assert edited.embedded_chunks == 1 and edited.chunks == first.chunks + 1

    (small_corpus / FILES[2]).unlink()
    removed = build_index([small_corpus], settings, progress=False)
    assert removed.studies == 4 and removed.embedded_chunks == 0
    library = Library(settings.index_dir)
    assert not any("two-day" in s.title.lower() or "two day" in s.title.lower() for s in library.studies.values())
    question = "Do ME/CFS and long COVID patients recover differently on a second exercise test a day later?"
    hits = library.retrieve(question, fake_embed([question])[0])
    assert all(h.study.source_path.split("/")[-1] != FILES[2] for h in hits)
    # the build each rebuild replaced stays for readers (index.KEEP_SECONDS); older ones go
    assert len(list((settings.index_dir / "builds").iterdir())) <= 4


def test_model_or_chunking_change_rebuilds_everything_and_says_why(fake, small_corpus, tmp_path):
    settings = Settings(index_dir=tmp_path / "index", embedding_model=FAKE)
    build_index([small_corpus], settings, progress=False)
    manifest_path = live_build(settings.index_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["chunking_version"] = 0
    manifest_path.write_text(json.dumps(manifest))
    rebuilt = build_index([small_corpus], settings, progress=False)
    assert rebuilt.reused_chunks == 0 and "chunking changed (version 0 -> 1)" in rebuilt.full_rebuild_reason


@pytest.mark.slow
def test_manifest_records_model_dimension_version_and_hashes(corpus_index):
    manifest = json.loads((live_build(corpus_index.index_dir) / "manifest.json").read_text())
    assert manifest["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest["dimension"] == 384 and manifest["chunking_version"] == 1
    assert len(manifest["studies"]) >= 50 and len(manifest["chunk_hashes"]) > 500


@pytest.mark.slow
def test_build_killed_midway_leaves_previous_index_loadable(small_corpus, tmp_path):
    index_dir = tmp_path / "index"
    build_index([small_corpus], Settings(index_dir=index_dir), progress=False)
    before = set(Library(index_dir).studies)
    # A bigger corpus needs minutes of embedding: kill the build while it embeds.
    proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "index", str(CORPUS), "--index", str(index_dir)],
                            cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    seen = bytearray()

    def read_progress():
        for byte in iter(lambda: proc.stderr.read(1), b""):
            seen.extend(byte)

    threading.Thread(target=read_progress, daemon=True).start()
    deadline = time.time() + 120
    while b"embedding chunks" not in seen and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    assert proc.poll() is None, "the build ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert set(Library(index_dir).studies) == before  # the old index still loads, unchanged
    after = build_index([small_corpus], Settings(index_dir=index_dir), progress=False)
    assert after.embedded_chunks == 0  # and the next build reuses it
    left = {p.name for p in (index_dir / "builds").iterdir()}  # no half-written build is left
    assert live_build(index_dir).name in left and len(left) == 2 and not any(n.endswith(".partial") for n in left)


def test_index_command_json_summary_and_skips(fake, tmp_path, small_corpus, capsys, index_summary_schema, monkeypatch):
    monkeypatch.setenv("ATLAS_EMBEDDING_MODEL", FAKE)
    (small_corpus / "broken.txt").write_text("Observed Findings\nsomething\n")
    code = main(["index", str(small_corpus), "--index", str(tmp_path / "index"), "--json"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    jsonschema.validate(summary, index_summary_schema)
    assert code == 0 and summary["studies"] == 5
    assert summary["skipped"] == [{"file": str(small_corpus / "broken.txt"), "line": 1,
                                   "reason": summary["skipped"][0]["reason"]}]
    assert "no title" in summary["skipped"][0]["reason"]
    assert "skipped" in captured.err and "broken.txt:1" in captured.err


def test_broken_or_empty_index_is_a_clear_error(fake, small_corpus, tmp_path):
    from assistant.index import EmptyCorpus, IndexMissing

    index_dir = tmp_path / "index"
    build_index([small_corpus], Settings(index_dir=index_dir, embedding_model=FAKE), progress=False)
    (live_build(index_dir) / "texts.bin").write_text("{not json")  # the unit texts (the docstore)
    with pytest.raises(IndexMissing, match="damaged .*texts.bin does not match its checksum.* rebuild it with `atlas-assistant index`"):
        Library(index_dir)
    build_index([small_corpus], Settings(index_dir=tmp_path / "index2", embedding_model=FAKE), progress=False)
    before = live_build(tmp_path / "index2")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmptyCorpus, match="no study could be read .* left as it was"):
        build_index([empty], Settings(index_dir=tmp_path / "index2", embedding_model=FAKE), progress=False)
    assert live_build(tmp_path / "index2") == before and len(Library(tmp_path / "index2").studies) == 5
