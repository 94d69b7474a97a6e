"""The embedder and the on-disk cache of the gate's fixed vectors."""
import json
import threading

import numpy as np
import pytest

from assistant import vector_cache
from assistant.embed import MeanPoolingEncoder, embed_texts, model_path
from conftest import CORPUS

TEXTS = ["Does pacing help people with ME/CFS?", "Post-exertional malaise after a two-day exercise test.",
         "x", "A much longer sentence " * 40]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


class Counting:
    def __init__(self):
        self.calls = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        vectors = np.random.default_rng(len(texts)).normal(size=(len(texts), 8)).astype("float32")
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_fixed_vectors_are_embedded_once_then_read(cache):
    embed = Counting()
    first = vector_cache.fixed_vectors("scope-in", ["a", "b"], embed, "fake-model")
    again = vector_cache.fixed_vectors("scope-in", ["a", "b"], embed, "fake-model")
    assert len(embed.calls) == 1 and np.array_equal(first, again) and again.dtype == np.float32
    assert [p.name.split("-")[:2] for p in cache.iterdir()] == [["scope", "in"]]


def test_other_texts_another_model_or_a_damaged_file_embed_again(cache):
    embed = Counting()
    vector_cache.fixed_vectors("scope-in", ["a", "b"], embed, "fake-model")
    vector_cache.fixed_vectors("scope-in", ["a", "b", "c"], embed, "fake-model")  # the prompts changed
    assert len(embed.calls) == 2 and len(list(cache.glob("scope-in-*.npy"))) == 1  # the old file went
    vector_cache.fixed_vectors("scope-in", ["a", "b", "c"], embed, "another-model")
    assert len(embed.calls) == 3
    (path,) = cache.glob("scope-in-*.npy")
    path.write_bytes(path.read_bytes()[:-40])  # truncated
    vector_cache.fixed_vectors("scope-in", ["a", "b", "c"], embed, "another-model")
    np.save(path, np.full((3, 8), 5.0, dtype="float32"))  # readable, but not unit vectors
    vector_cache.fixed_vectors("scope-in", ["a", "b", "c"], embed, "another-model")
    assert len(embed.calls) == 5


def test_an_unwritable_cache_only_costs_the_embedding(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(blocked / "cache"))
    embed = Counting()
    assert vector_cache.fixed_vectors("safety-calm", ["a"], embed).shape == (1, 8)
    assert vector_cache.fixed_vectors("safety-calm", ["a"], embed).shape == (1, 8)
    assert len(embed.calls) == 2


def test_only_the_mean_pooling_layout_runs_without_sentence_transformers(tmp_path):
    from pathlib import Path

    packaged = Path(model_path())
    assert MeanPoolingEncoder.layout_fits(packaged) == 256  # MiniLM: max_seq_length 256
    for name in ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"):
        (tmp_path / name).write_text((packaged / name).read_text())
    (tmp_path / "1_Pooling").mkdir()
    pooling = json.loads((packaged / "1_Pooling" / "config.json").read_text())
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    assert MeanPoolingEncoder.layout_fits(tmp_path) == 256
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling | {"pooling_mode_cls_token": True}))
    assert MeanPoolingEncoder.layout_fits(tmp_path) is None  # CLS pooling: sentence-transformers runs it
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (tmp_path / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"query": "query: "}}))
    assert MeanPoolingEncoder.layout_fits(tmp_path) is None  # a prompt prefix: sentence-transformers runs it
    (tmp_path / "modules.json").unlink()
    assert MeanPoolingEncoder.layout_fits(tmp_path) is None


@pytest.mark.slow
def test_vectors_match_sentence_transformers_on_corpus_chunks():
    """The index holds sentence-transformers' vectors; the encoder gives the same, long texts included."""
    from sentence_transformers import SentenceTransformer

    from assistant.chunk import embed_text, study_units
    from assistant.parse import load_corpus

    texts = [embed_text(s, t) for s in load_corpus([CORPUS]).studies for _, t in study_units(s)]
    # A third of the chunks (every study among them; all of them took 84 s of a CI run) and the odd cases.
    texts = texts[::3] + TEXTS + ["", "  spaces around  ", "x " * 2000, "ÄÖÜ émigré naïve 漢字"]
    expected = SentenceTransformer(model_path(), device="cpu").encode(texts, batch_size=64, normalize_embeddings=True)
    assert np.abs(embed_texts(texts) - expected).max() < 1e-6


@pytest.mark.slow
def test_vectors_match_llama_index_huggingface_embedding():
    """Indexes built before embed.py called sentence-transformers directly hold the same vectors."""
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    reference = HuggingFaceEmbedding(model_name=model_path(), embed_batch_size=64, normalize=True, device="cpu")
    expected = np.asarray(reference.get_text_embedding_batch(TEXTS), dtype="float32")
    assert np.allclose(embed_texts(TEXTS), expected, atol=1e-6)
    assert np.allclose(embed_texts(TEXTS * 3)[:4], expected, atol=1e-5)  # a large batch, all threads


@pytest.fixture(params=["switching", "pinned"])
def threads_mode(request, monkeypatch):
    """embed_texts as the CLI runs it (one thread per small batch, switched per call) and as the
    server runs it (pin_threads(1) once)."""
    import torch

    from assistant import embed

    before = torch.get_num_threads()
    if request.param == "pinned":
        embed.pin_threads(1)
    yield request.param
    monkeypatch.setattr(embed, "_pinned", None)
    torch.set_num_threads(before)


@pytest.mark.slow
def test_concurrent_encodes_give_the_same_vectors(threads_mode):
    """A server encodes several questions at once: the model and its tokenizer are shared."""
    import torch

    threads_before = torch.get_num_threads()
    expected = embed_texts(TEXTS)
    results, errors = [], []

    def work():
        try:
            for _ in range(10):
                results.append(embed_texts(TEXTS))
        except Exception as err:  # noqa: BLE001 - any error fails the test below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 60
    assert all(np.allclose(r, expected, atol=1e-5) for r in results)
    assert torch.get_num_threads() == threads_before  # the switching left the count as it found it
