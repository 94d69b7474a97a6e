"""The web chat: the real server on a free port, asked through gradio_client and headless Chromium."""
import json
import socket
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from assistant import web
from assistant.index import build_index, live_build
from assistant.prompts import table
from assistant.settings import Settings
from conftest import CORPUS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing")  # pandas 3 notes
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HEADINGS = table("answer")["headings"]
STATUS = table("answer")["status"]
NOTE = table("answer")["notes"]["medical"]
WEB = table("web")
QUESTION = "Does mitochondrial dysfunction cause ME/CFS?"
INJECTED = "<script>window.pwned=1</script><b>x</b>"
CRAFTED = f"""Mitochondrial <img src=x onerror="window.pwned=2"> energy production in ME/CFS
Evil, Eve, Tester, Tom · Journal of <em>Tests</em> · 2024 · DOI: 10.1234/atlas.test
PEM required
Study type: Case-control
Retracted: yes
Quick Summary
Researchers measured how mitochondria make energy in blood cells from people with ME/CFS.
Why It Matters
Energy production may explain fatigue after effort in ME/CFS.
Observed Findings
Mitochondrial energy production was lower in ME/CFS cells {INJECTED}
ATP output in blood cells of people with ME/CFS fell after exercise.
Inferred Conclusions
The authors suggest mitochondrial energy production is impaired in ME/CFS.
Remaining Questions
Does lower mitochondrial energy production come before a crash?
What This Study Does Not Prove
This small study cannot show that low mitochondrial energy production causes ME/CFS.
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(settings):
    app = web.serve(settings, "127.0.0.1", free_port(), block=False)
    try:
        yield app.local_url.rstrip("/")
    finally:
        app.close()


@pytest.fixture(scope="module")
def server(corpus_index, tmp_path_factory):
    """(url, question log): the chat over the bundled corpus; its opt-in log goes to a temp file."""
    log = tmp_path_factory.mktemp("log") / "questions.jsonl"
    original, web.QUESTION_LOG = web.QUESTION_LOG, log
    try:
        with running(corpus_index) as url:
            yield url, log
    finally:
        web.QUESTION_LOG = original


@pytest.fixture(scope="module")
def client(server):
    return Client(server[0], verbose=False)


def test_api_cited_answer_with_blocks_and_sources(client):
    md = client.predict(QUESTION, api_name="/chat")
    assert "[1]" in md and md.startswith(f"**{HEADINGS['bottom_line']}:**") and f"**{HEADINGS['short']}:**" in md
    for name in ("shows", "infers", "does_not_prove", "open_questions", "sources"):
        assert f"#### {HEADINGS[name]}" in md
    assert "\n1. " in md and "https://doi.org/" in md
    assert md.rstrip().endswith(f"_{NOTE}_")


def test_api_safety_and_no_evidence(client):
    safety = client.predict("I want to end my life", api_name="/chat")
    crisis = table("answer")["safety"]["crisis"]["self"]
    assert safety.startswith(crisis.splitlines()[0]) and "988" in safety and "####" not in safety
    none = client.predict("Does acupuncture help ME/CFS?", api_name="/chat")
    assert none.startswith("No study in the library") and STATUS["no_evidence"] in none
    assert "[1]" not in none and NOTE in none


def test_api_mode_filters_empty_and_long_input(client):
    md = client.predict(QUESTION, mode="clinician", pem_required=True, api_name="/chat")
    refs = md.split(f"#### {HEADINGS['sources']}")[1].strip().splitlines()[:-2]
    assert refs and all("PEM required." in line for line in refs if line[:1].isdigit())
    assert client.predict("   ", api_name="/chat") == WEB["empty"]
    long = client.predict("What is known about mitochondria in ME/CFS? " * 100, api_name="/chat")
    assert WEB["trimmed"].format(limit="2,000") in long and "[1]" in long


@pytest.mark.parametrize("state", ["missing", "broken"])
def test_missing_or_broken_index_names_the_fix(tmp_path, state, capsys):
    settings = Settings(index_dir=tmp_path / "index")
    if state == "broken":  # an index whose unit texts (the docstore) were damaged cannot be opened
        build_index([CORPUS / "2013_meeus_mitochondria_oxidative_stress.txt"], settings, progress=False)
        (live_build(settings.index_dir) / "texts.bin").write_text("{not json")
    with running(settings) as url:
        answer = Client(url, verbose=False).predict(QUESTION, api_name="/chat")
        page_config = httpx.get(f"{url}/config").text
    assert answer.startswith(WEB["index_missing"].split(" `")[0])
    assert f"`atlas-assistant index --index {settings.index_dir}`" in answer
    assert "Traceback" not in answer + page_config and "Error" not in answer
    assert "atlas-problem" in page_config  # the banner at the top of the page
    assert "atlas-assistant web:" in capsys.readouterr().err  # the detail goes to stderr only


# --- headless Chromium --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install it with `apt-get install -y chromium` "
                    "(`make test` does this when apt-get is available)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def press_until(page, key: str, selector: str, limit: int = 80) -> None:
    """Press `key` (Tab or Shift+Tab) until the focused element matches `selector`."""
    for _ in range(limit):
        page.keyboard.press(key)
        if page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            return
    pytest.fail(f"{selector} cannot be reached with {key}")


def ask_by_keyboard(page, question: str, answers_before: int = 0) -> None:
    press_until(page, "Tab", "#atlas-question textarea")
    page.keyboard.type(question)
    page.keyboard.press("Enter")
    page.locator(".atlas-answer .medical").nth(answers_before).wait_for(timeout=60_000)


def test_browser_chat_by_keyboard(browser, server, tmp_path):
    url, log = server
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    hosts = set()
    page.on("request", lambda request: hosts.add(request.url.split("/")[2]))
    page.goto(url)
    page.locator("#atlas-question textarea").wait_for()
    ask_by_keyboard(page, QUESTION)
    answer = page.locator(".atlas-answer").last
    for name in ("shows", "does_not_prove"):
        summary = answer.locator(f"details.atlas-block-{name} > summary")
        assert summary.is_visible() and HEADINGS[name] in summary.inner_text()
    assert answer.locator("p.short").inner_text().startswith(HEADINGS["short"])
    assert NOTE in answer.inner_text()
    assert float(answer.locator("p.short").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 17

    # Details open with the keyboard; a citation leads to its source card.
    for name in ("does_not_prove", "shows"):
        press_until(page, "Shift+Tab", f"details.atlas-block-{name} > summary")
        page.keyboard.press("Enter")
        assert answer.locator(f"details.atlas-block-{name} li").first.is_visible()
    page.keyboard.press("Enter")  # and closes again
    assert not answer.locator("details.atlas-block-shows li").first.is_visible()
    press_until(page, "Shift+Tab", "a.cite")
    page.keyboard.press("Enter")
    card = answer.locator("article.card").first
    card.wait_for(state="visible")
    assert page.evaluate("document.activeElement.matches('article.card')")
    assert card.locator(".card-title").is_visible() and card.locator(".badge").count() == 2
    assert card.locator(".card-meta").inner_text()[:4].isdigit()  # the year, then the journal
    assert answer.locator("article.card a[href^='https://doi.org/10.']").count() >= 1
    page.wait_for_timeout(800)  # the jump to the card scrolls smoothly
    box, chat = card.bounding_box(), page.locator("#atlas-chat [role=log]").bounding_box()
    assert box["y"] + box["height"] <= chat["y"] + chat["height"]  # the whole card is in view
    page.screenshot(path=str(tmp_path / "web-chat.png"))

    # Questions are stored only after opting in; a follow-up keeps the conversation.
    assert not log.exists()
    press_until(page, "Tab", "#atlas-log input")
    page.keyboard.press("Space")
    ask_by_keyboard(page, "does that one prove it?", answers_before=1)
    assert WEB["understood"].split(":")[0] in page.locator(".atlas-answer").last.inner_text()
    logged = [json.loads(line)["question"] for line in log.read_text().splitlines()]
    assert logged == ["does that one prove it?"]

    press_until(page, "Tab", "#atlas-dark input")
    page.keyboard.press("Space")
    page.wait_for_function("document.body.classList.contains('dark')")
    page.wait_for_timeout(500)  # let the colour transitions finish
    page.screenshot(path=str(tmp_path / "web-chat-dark.png"))
    assert (tmp_path / "web-chat.png").stat().st_size > 10_000
    assert hosts == {url.split("/")[2]}  # the page loads nothing from elsewhere
    page.close()


def test_browser_escapes_corpus_html(browser, tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "2024_crafted.txt").write_text(CRAFTED, encoding="utf-8")
    settings = Settings(index_dir=tmp_path / "index")
    assert build_index([tmp_path / "corpus"], settings, progress=False).studies == 1
    with running(settings) as url:
        page = browser.new_page()
        page.goto(url)
        page.locator("#atlas-question textarea").wait_for()
        ask_by_keyboard(page, "Is mitochondrial energy production lower in ME/CFS?")
        answer = page.locator(".atlas-answer").last
        answer.locator("details.atlas-block-shows > summary").click()
        answer.locator("details.sources > summary").click()
        assert INJECTED in answer.locator("details.atlas-block-shows li").first.inner_text()
        assert '<img src=x onerror="window.pwned=2">' in answer.locator(".card-title").inner_text()
        assert "<em>Tests</em>" in answer.locator(".card-meta").inner_text()
        assert answer.locator("script, b, img").count() == 0
        assert answer.locator(".card .banner").is_visible()  # the entry is marked retracted
        assert page.evaluate("window.pwned") is None
        page.screenshot(path=str(tmp_path / "escaped.png"))
        page.close()
