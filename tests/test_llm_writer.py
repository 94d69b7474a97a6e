"""The LLM writer behind the Writer seam: a fake OpenAI-compatible server on 127.0.0.1 returns scripted
completions, and each case's outcome (kept, dropped, fallback) is asserted. No real model, no network.

Fast tests cover the client, the stream readers and the settings; the verifier's tests run through the
real embedding model on the bundled corpus (marked slow), with sentences from evals/llm_verifier.jsonl,
written and labelled by someone who had not read the verifier."""
from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from assistant.llm import ChatClient, LLMError
from assistant.llm_writer import BOTTOM, SHORT, JsonSentences, LLMWriter, TextSentences
from assistant.settings import Settings, SettingsError, load_settings
from fake_openai import FakeOpenAI, Reply, completion

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "evals" / "llm_verifier.jsonl"


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def llm_settings(url: str, **more) -> Settings:
    return Settings(**{"backend": "openai", "llm_base_url": url, "llm_model": "fake-model", "llm_timeout": 3.0, **more})


# ---- the client and the stream readers (no model) ----

def test_client_whole_and_streamed(server):
    client = ChatClient(llm_settings(server.url))
    server.script("hello there", "streamed reply text")
    assert client.complete([{"role": "user", "content": "hi"}], {}) == "hello there"
    assert "".join(client.stream([{"role": "user", "content": "hi"}], {})) == "streamed reply text"
    whole, streamed = (r["body"] for r in server.requests)
    assert whole["stream"] is False and streamed["stream"] is True
    assert whole["temperature"] == 0.0 and whole["model"] == "fake-model"
    assert whole["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize("fmt,expected", [("json_schema", "json_schema"), ("json_object", "json_object"), ("text", None)])
def test_response_format_per_setting(server, fmt, expected):
    server.script("x")
    ChatClient(llm_settings(server.url, llm_format=fmt)).complete([], {"type": "object"})
    body = server.requests[0]["body"]
    assert (body.get("response_format") or {}).get("type") == expected


def test_api_key_only_from_environment_and_never_in_errors(server, monkeypatch):
    monkeypatch.setenv("ATLAS_LLM_API_KEY", "sk-secret-123")
    server.script(Reply(status=500))
    with pytest.raises(LLMError) as err:
        ChatClient(llm_settings(server.url)).complete([], {})
    assert server.requests[0]["auth"] == "Bearer sk-secret-123"
    assert "sk-secret" not in str(err.value) and "HTTP 500" in str(err.value)
    assert "sk-secret" not in repr(load_settings())


def test_timeout_unreachable_and_not_json(server):
    server.script(Reply("late", delay=2.0))
    with pytest.raises(LLMError, match="did not answer within"):
        ChatClient(llm_settings(server.url, llm_timeout=0.5)).complete([], {})
    with pytest.raises(LLMError, match="cannot reach"):
        ChatClient(llm_settings("http://127.0.0.1:9/v1")).complete([], {})


def test_settings_need_a_server_for_openai(monkeypatch):
    monkeypatch.setenv("ATLAS_BACKEND", "openai")
    with pytest.raises(SettingsError, match="llm_base_url and llm_model"):
        load_settings()
    monkeypatch.setenv("ATLAS_LLM_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("ATLAS_LLM_MODEL", "llama3.2")
    assert load_settings().llm_model == "llama3.2"
    with pytest.raises(SettingsError, match="llm_format"):
        load_settings({"llm_format": "xml"})


def test_json_reader_streams_sentences_across_cut_pieces():
    text = completion("Verdict here. It helped some \"people\" [1].", ["One finding [2].", "Two [1]. Three [3]."])
    reader, got = JsonSentences(), []
    for i in range(0, len(text), 5):
        got += list(reader.feed(text[i:i + 5]))
    got += list(reader.close())
    assert got == [(BOTTOM, "Verdict here."), (BOTTOM, 'It helped some "people" [1].'),
                   (SHORT, "One finding [2]."), (SHORT, "Two [1]."), (SHORT, "Three [3].")]


@pytest.mark.parametrize("bad", ['{"bottom_line": "cut off', "Sure! Here is the answer.", '{"bottom_line": 3, "answer": []}'])
def test_json_reader_rejects_malformed_replies(bad):
    reader = JsonSentences()
    list(reader.feed(bad))
    with pytest.raises(LLMError):
        list(reader.close())


def test_text_reader_first_line_is_the_bottom_line():
    reader = TextSentences()
    got = list(reader.feed("Bottom line: A [1].\n- B [2]. C [1].\nD [3]")) + list(reader.close())
    assert got == [(BOTTOM, "A [1]."), (SHORT, "B [2]."), (SHORT, "C [1]."), (SHORT, "D [3]")]


# ---- through the real model and the bundled corpus ----

def evidence_for(assistant, question: str, mode: str = "patient"):
    """The evidence set the engine would give the writer for a question."""
    from assistant.compose import LIMITS
    from assistant.evidence import gather, verdict
    from assistant.understand import understand

    understood = understand(question)
    search = assistant._embed([understood.search_text])[0]
    hits = assistant.library.retrieve(understood.search_text, search, top_k=assistant.settings.top_k)
    evidence = gather(understood, search, hits, assistant.library.store, LIMITS[mode].studies)
    return evidence, verdict(evidence)


@pytest.fixture(scope="module")
def scripts():
    if not SCRIPTS.exists():
        pytest.skip(f"{SCRIPTS} is missing")
    lines = [json.loads(line) for line in SCRIPTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines


def writer_for(assistant, server) -> LLMWriter:
    settings = replace(assistant.settings, **vars(llm_settings(server.url)) | {"index_dir": assistant.settings.index_dir})
    return LLMWriter(settings, assistant._embed)


@pytest.mark.slow
def test_no_backend_makes_no_network_call(assistant, monkeypatch):
    """With the default settings an answer opens no socket at all."""
    attempts = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: attempts.append(address))
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: attempts.append(address))
    answer = assistant.ask("does low dose naltrexone actually work?")
    assert answer.writer == "extractive" and answer.bottom_line
    assert attempts == []


@pytest.mark.slow
def test_server_failures_fall_back_to_the_deterministic_answer(assistant, server):
    evidence, verdict = evidence_for(assistant, "does low dose naltrexone actually work?")
    deterministic = assistant.writer.write(evidence, verdict, "patient")
    writer = writer_for(assistant, server)
    writer.settings = replace(writer.settings, llm_timeout=0.5)
    cases = {"HTTP 500": Reply(status=500), "did not": Reply(completion("x", []), delay=2.0),
             "not the JSON": Reply('{"bottom_line": "There is only early evidence'),
             "lacks a text": Reply('{"bottom_line": ["a"], "answer": "b"}')}
    for why, reply in cases.items():
        server.script(reply)
        writer.client = ChatClient(writer.settings)
        written = writer.write(evidence, verdict, "patient")
        assert written.writer == "fallback" and why in written.why_fallback
        assert (written.bottom_line, written.short_answer) == (deterministic.bottom_line, deterministic.short_answer)
