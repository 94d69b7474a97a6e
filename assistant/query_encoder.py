"""Questions encoded by ONNX Runtime: the same model, the same vectors, without torch.

An answer encodes two or three short texts, and with torch that was a third of its CPU time and most of
a cold start (importing torch and transformers). `index` and `serve` export the model's transformer to
ONNX once (`export`), into the cache folder (vector_cache.cache_dir), beside a probe: a few texts and
the vectors torch gave them. Later processes encode small batches with onnxruntime and the model
folder's own tokenizer.json (`load`): no torch or transformers import, the vectors equal to torch's
within 1e-6 (tests/test_query_encoder.py), about 0.55x the CPU per question (docs/PERFORMANCE.md).

A file is used only when onnxruntime loads it and it reproduces the probe vectors; anything else
(no file, another model, a damaged file, no onnxruntime) means torch, as before: never an error.
Only the Transformer -> mean Pooling -> Normalize layout (embed.MeanPoolingEncoder) is exported."""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .embed import MeanPoolingEncoder, model_path

PROBE = ["Does pacing help people with ME/CFS?", "post-exertional malaise",
         "Natural killer cell function was lower in patients than in healthy controls (p < 0.01)."]
TOLERANCE = 1e-5
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


class OnnxEncoder:
    """Unit vectors from an exported transformer: tokenizer.json, one ONNX Runtime thread, mean pooling."""

    def __init__(self, onnx_file: Path, folder: Path, max_length: int):
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        # A question is a tiny batch: one thread is as fast, and answers run side by side on the cores.
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]") or 0)
        self.dimension = int(self.session.get_outputs()[0].shape[-1])

    def get_embedding_dimension(self) -> int:
        return self.dimension

    def encode(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        feed = {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings],
                "token_type_ids": [e.type_ids for e in encodings]}
        hidden = self.session.run(None, {name: np.asarray(feed[name], dtype="int64") for name in self.inputs})[0]
        mask = np.asarray(feed["attention_mask"], dtype="float32")[..., None]
        pooled = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
        return (pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)).astype("float32")


def _files(setting: str) -> tuple[Path, Path]:
    from .vector_cache import cache_dir, model_fingerprint

    key = hashlib.sha256(("onnx-query-encoder\0" + model_fingerprint(setting)).encode("utf-8")).hexdigest()[:32]
    return cache_dir() / f"query-encoder-{key}.onnx", cache_dir() / f"query-encoder-probe-{key}.npy"


def _layout(setting: str) -> tuple[Path, int] | None:
    try:
        folder = Path(model_path(setting))
    except ImportError:
        return None
    max_length = MeanPoolingEncoder.layout_fits(folder)
    return None if max_length is None or not (folder / "tokenizer.json").is_file() else (folder, max_length)


def load(setting: str = "") -> OnnxEncoder | None:
    """The exported encoder when it is there and gives the probe's vectors; else None (use torch)."""
    layout = _layout(setting)
    onnx_file, probe_file = _files(setting)
    if layout is None or not onnx_file.is_file():
        return None
    try:
        encoder = OnnxEncoder(onnx_file, *layout)
        expected = np.load(probe_file, allow_pickle=False)
        if expected.shape == (len(PROBE), encoder.dimension) and np.abs(encoder.encode(PROBE) - expected).max() <= TOLERANCE:
            return encoder
    except Exception:  # noqa: BLE001 - no onnxruntime, a damaged or foreign file: torch answers instead
        pass
    return None


def export(setting: str = "") -> bool:
    """Export the model for `load` unless a working export is there already. True when one is there
    after the call. Never raises: without it questions are encoded by torch, only more slowly."""
    from .embed import forget_query_encoder, query_encoder

    if _layout(setting) is None:
        return False
    if query_encoder(setting) is not None:  # loaded once per process, here and for the questions
        return True
    try:
        _write(*_files(setting), setting)
    except Exception:  # noqa: BLE001 - no onnx package, a read-only cache, an exporter problem
        return False
    forget_query_encoder()  # this process looked before the file was there
    return query_encoder(setting) is not None


def _write(onnx_file: Path, probe_file: Path, setting: str) -> None:
    import torch

    from .embed import embedding_model
    from .vector_cache import write_npy

    model = embedding_model(setting)
    if not isinstance(model, MeanPoolingEncoder):
        raise TypeError("only the mean-pooling layout is exported")

    class LastHidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    sample = model.tokenizer(PROBE, padding=True, return_tensors="pt")
    onnx_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=onnx_file.parent, prefix=".query-encoder-", suffix=".onnx")
    os.close(fd)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on the model's Python branches
            torch.onnx.export(LastHidden(model.model).eval(), tuple(sample[name] for name in INPUTS), tmp,
                              input_names=INPUTS, output_names=["last_hidden_state"], opset_version=17,
                              dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*INPUTS, "last_hidden_state"]},
                              dynamo=False)
        # The probe first (atomically, older probes dropped): a model file is never there without one.
        write_npy(probe_file.parent, probe_file, "query-encoder-probe", model.encode(PROBE))
        os.replace(tmp, onnx_file)
    finally:
        Path(tmp).unlink(missing_ok=True)
    for old in onnx_file.parent.glob("query-encoder-*.onnx"):  # another model's export (~90 MB)
        if old != onnx_file:
            old.unlink(missing_ok=True)
