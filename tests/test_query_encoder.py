"""Questions encoded by ONNX Runtime (assistant/query_encoder.py): the same vectors as torch, a damaged
export never used, and an `ask` that imports neither torch nor transformers."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from assistant import embed, query_encoder
from conftest import CORPUS, ROOT

TEXTS = ["Does pacing help people with ME/CFS?", "", "  spaces around  ", "x " * 2000,
         "ÄÖÜ émigré naïve 漢字", "IL-6 (p < 0.01) was 2.5-fold higher [3]."]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path / "cache"))
    embed.forget_query_encoder()
    yield tmp_path / "cache"
    embed.forget_query_encoder()


@pytest.mark.slow
def test_the_export_gives_torchs_vectors_and_tokens(cache):
    from assistant.chunk import embed_text, study_units
    from assistant.parse import load_corpus

    assert query_encoder.load() is None  # nothing exported yet: torch encodes
    assert query_encoder.export() is True
    fast, torch_model = query_encoder.load(), embed.embedding_model()
    assert isinstance(fast, query_encoder.OnnxEncoder)
    texts = TEXTS + [embed_text(s, t) for s in load_corpus([CORPUS]).studies[:12] for _, t in study_units(s)]
    for start in range(0, len(texts), 7):  # small batches with padding, as questions come
        batch = texts[start:start + 7]
        assert np.abs(fast.encode(batch) - torch_model.encode(batch)).max() < 1e-6
        ids = torch_model.tokenizer(batch, padding=True, truncation="longest_first", max_length=256)["input_ids"]
        assert [e.ids for e in fast.tokenizer.encode_batch(batch)] == ids
    assert isinstance(embed.query_encoder(), query_encoder.OnnxEncoder)  # embed_texts now uses it
    assert np.abs(embed.embed_texts(TEXTS[:3]) - torch_model.encode(TEXTS[:3])).max() < 1e-6


@pytest.mark.slow
def test_a_damaged_or_foreign_export_is_never_used(cache):
    assert query_encoder.export() is True
    onnx_file, probe_file = query_encoder._files("")
    good = onnx_file.read_bytes()
    onnx_file.write_bytes(good[: len(good) // 2])  # truncated
    assert query_encoder.load() is None
    onnx_file.write_bytes(good)
    np.save(probe_file, np.ones((len(query_encoder.PROBE), 384), dtype="float32"))  # vectors it does not give
    assert query_encoder.load() is None
    embed.forget_query_encoder()
    expected = embed.embedding_model().encode(TEXTS[:2])
    assert np.abs(embed.embed_texts(TEXTS[:2]) - expected).max() < 1e-6  # torch answered instead
    stale = onnx_file.with_name("query-encoder-another-model.onnx")
    stale.write_bytes(b"an export of another model")
    assert query_encoder.export() is True and query_encoder.load() is not None  # exported again
    assert not stale.exists()  # the other model's export went with it


def test_a_model_folder_of_another_layout_is_not_exported(tmp_path, cache):
    (tmp_path / "modules.json").write_text("[]")
    assert query_encoder.export(str(tmp_path)) is False and query_encoder.load(str(tmp_path)) is None
    assert not cache.exists() or not list(cache.glob("query-encoder-*"))


@pytest.mark.slow
def test_ask_in_a_new_process_loads_neither_torch_nor_transformers(corpus_index):
    """After `index` (which exports the encoder), answering needs onnxruntime, not torch: the cold start
    bench (bench/cold_start_bench.py) measures what that saves."""
    from assistant.vector_cache import warm

    warm(corpus_index)  # what `index` does at its end: the gates' vectors and the export
    probe = ("import sys, json; from assistant.cli import main\n"
             "try:\n    main(['ask', 'Does pacing help?', '--json', '--index', sys.argv[1]])\n"
             "except SystemExit:\n    pass\n"
             "print(json.dumps({m: m in sys.modules for m in ('torch', 'transformers', 'sentence_transformers')}))")
    out = subprocess.run([sys.executable, "-c", probe, str(corpus_index.index_dir)], capture_output=True, text=True,
                         cwd=ROOT, env=dict(os.environ), timeout=300)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    answer = json.loads("\n".join(out.stdout.strip().splitlines()[:-1]))
    assert answer["status"] == "answered" and answer["sources"]
    assert loaded == {"torch": False, "transformers": False, "sentence_transformers": False}
