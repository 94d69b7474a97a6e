"""Several questions answered at once by one shared engine: the same answers as one at a time, in the
engine and through the web API (the server answers web.WORKERS questions side by side). Nothing here
is timed: bench/web_load_bench.py measures throughput."""
import json
import threading

import httpx
import pytest

from assistant import web
from conftest import ROOT
from test_web import running

QUESTIONS = [json.loads(line)["question"] for line in (ROOT / "evals" / "questions.jsonl").read_text().splitlines()[:24]]


def comparable(answer) -> dict:
    contract = answer.contract()
    contract.pop("timings_ms")
    return contract


def in_threads(work, items, threads=6):
    """work(item) for every item, spread over `threads` threads; (results by item, errors)."""
    results, errors, lock = {}, [], threading.Lock()
    queue = list(items)

    def run():
        while True:
            with lock:
                if not queue:
                    return
                item = queue.pop()
            try:
                value = work(item)
                with lock:
                    results.setdefault(item, []).append(value)
            except Exception as err:  # noqa: BLE001 - every error fails the test
                with lock:
                    errors.append(repr(err))

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return results, errors


@pytest.mark.slow
def test_engine_answers_the_same_when_asked_from_many_threads(assistant):
    from assistant.embed import pin_threads

    expected = {q: comparable(assistant.ask(q)) for q in QUESTIONS}
    pin_threads(1)  # as the server runs it
    try:
        results, errors = in_threads(lambda q: comparable(assistant.ask(q)), QUESTIONS * 2)
    finally:
        import torch

        from assistant import embed

        embed._pinned = None
        torch.set_num_threads(max(1, torch.get_num_threads()))
    assert errors == []
    assert {q: len(r) for q, r in results.items()} == {q: 2 for q in QUESTIONS}
    for question, answers in results.items():
        assert all(a == expected[question] for a in answers), question


def api_answer(url: str, question: str) -> str:
    """One answer through Gradio's HTTP API: POST the call, then read its event stream."""
    with httpx.Client(timeout=120) as http:
        event = http.post(f"{url}/gradio_api/call/chat",
                          json={"data": [question, "patient", None, None, None, False]}).json()["event_id"]
        stream = http.get(f"{url}/gradio_api/call/chat/{event}").text
    lines = stream.strip().splitlines()
    assert lines[-2] == "event: complete", stream[:300]
    return json.loads(lines[-1].removeprefix("data: "))[0]


@pytest.mark.slow
def test_web_api_answers_concurrent_callers_like_one_caller(corpus_index):
    assert web.WORKERS >= 2 and web.ANSWERING["concurrency_limit"] == web.WORKERS
    questions = QUESTIONS[:12]
    with running(corpus_index) as url:
        expected = {q: api_answer(url, q) for q in questions}
        results, errors = in_threads(lambda q: api_answer(url, q), questions * 3, threads=12)
    assert errors == []
    for question, answers in results.items():
        assert answers == [expected[question]] * 3, question
