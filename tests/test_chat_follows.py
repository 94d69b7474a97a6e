"""The chat follows the conversation (issue 13, item 7), in headless Chromium at 1280 px and 390 px:
each new answer is shown from its first line unless the reader scrolled up, then a "new answer" button
below the panel leads to it; Gradio's scroll-down button (which covered text) is gone; no autofocus
jump; each notice in its own bubble; no public-link hint in the console; filters that leave nothing are
named. Screenshots go to a temporary folder, or to ATLAS_SCREENSHOTS (`ATLAS_SCREENSHOTS=docs` refreshes
the ones in docs/)."""
import os
import re
from pathlib import Path

import pytest
from gradio_client import Client

from assistant import web
from assistant.prompts import table
from test_web import browser, free_port, running  # noqa: F401  (browser: the headless Chromium fixture)

WEB = table("web")
FIRST = "Does pacing help people with ME/CFS?"
SECOND = "What happens in the body after exertion in ME/CFS?"

GEOMETRY = """() => {
  const panel = document.querySelector('#atlas-chat [role=log]');
  const bots = document.querySelectorAll('#atlas-chat .message-row.bot-row');
  const last = bots[bots.length - 1];
  const box = (e) => e ? e.getBoundingClientRect().toJSON() : null;
  const gradioDown = document.querySelector('#atlas-chat button[aria-label="Scroll down"]');
  const ours = document.querySelector('#atlas-new-answer');
  return {panel: box(panel), last: box(last), bots: bots.length, scrollTop: panel.scrollTop,
          atBottom: panel.scrollHeight - panel.scrollTop - panel.clientHeight < 4,
          gradioDown: !!(gradioDown && gradioDown.offsetParent), button: ours && !ours.hidden ? box(ours) : null,
          lastText: last ? last.innerText : '', innerHeight: window.innerHeight, scrollY: window.scrollY,
          focused: document.activeElement && document.activeElement.tagName};
}"""


@pytest.fixture(scope="module")
def url(corpus_index):
    with running(corpus_index) as address:
        yield address


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("ATLAS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def ask(page, question: str) -> dict:
    answers = page.locator(".atlas-answer .medical").count()
    box = page.locator("#atlas-question textarea")
    box.click()
    box.fill(question)
    page.keyboard.press("Enter")
    page.locator(".atlas-answer .medical").nth(answers).wait_for(timeout=120_000)
    page.wait_for_timeout(400)  # the scroll happens on the next frame
    return page.evaluate(GEOMETRY)


def starts_at_top_of_panel(g: dict) -> bool:
    return 0 <= g["last"]["top"] - g["panel"]["top"] <= 30


@pytest.mark.slow
def test_desktop_follows_each_answer_and_offers_a_button_when_the_reader_scrolled_up(browser, url, shots):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url)
    page.locator("#atlas-question textarea").wait_for()
    g = ask(page, FIRST)
    assert starts_at_top_of_panel(g), g  # the answer from its first line, not its end
    assert not g["gradioDown"] and g["button"] is None

    page.mouse.move(g["panel"]["left"] + 200, g["panel"]["top"] + 200)  # the reader scrolls up to reread
    page.mouse.wheel(0, -20_000)
    page.wait_for_timeout(600)
    g = ask(page, SECOND)
    assert g["scrollTop"] < 5, g  # left where the reader was
    assert g["button"] is not None and g["button"]["top"] >= g["panel"]["bottom"], g  # below the panel, not over it
    assert not g["gradioDown"]
    assert page.locator("#atlas-new-answer").inner_text() == WEB["new_answer"]
    page.screenshot(path=str(shots / "web-chat-new-answer.png"))

    page.locator("#atlas-new-answer").click()
    page.wait_for_timeout(400)
    g = page.evaluate(GEOMETRY)
    assert starts_at_top_of_panel(g) and g["button"] is None, g
    assert "Bottom line" in g["lastText"].split("\n")[0]

    # An empty question: its notice in a bubble of its own, not merged into the answer above.
    page.locator("#atlas-question textarea").fill("   ")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelectorAll('#atlas-chat .message-row.bot-row').length === 3")
    page.wait_for_timeout(400)
    g = page.evaluate(GEOMETRY)
    assert g["lastText"].strip() == WEB["empty"], g["lastText"]
    assert page.locator("#atlas-chat .message-row.bot-row").nth(1).locator(".medical").count() == 1
    page.close()


@pytest.mark.slow
def test_phone_view_starts_at_the_answer_and_nothing_jumps_on_load(browser, url, shots):  # noqa: F811
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, has_touch=True)
    page.goto(url)
    page.locator("#atlas-question textarea").wait_for()
    page.wait_for_timeout(500)
    g = page.evaluate(GEOMETRY)
    assert g["scrollY"] == 0 and g["focused"] != "TEXTAREA", g  # no autofocus: the intro stays in view
    g = ask(page, FIRST)
    top = g["last"]["top"]
    assert 0 <= top <= 40, g  # the view starts at the answer's first line
    bottom_line = page.locator(".atlas-answer .bottom-line").last.bounding_box()
    assert 0 <= bottom_line["y"] and bottom_line["y"] + bottom_line["height"] <= g["innerHeight"]
    assert not g["gradioDown"]
    page.screenshot(path=str(shots / "web-chat-phone.png"))
    page.close()


def test_serve_prints_one_line_and_no_public_link_hint(corpus_index, capsys):
    app = web.serve(corpus_index, "127.0.0.1", free_port(), block=False)
    try:
        out = capsys.readouterr().out
    finally:
        app.close()
    assert "share=True" not in out and "public link" not in out
    assert re.search(r"Atlas Assistant is running at http://127\.0\.0\.1:\d+/? \(this machine only\)", out), out


def test_filters_that_leave_no_study_are_named_with_the_count_without_them(url):
    client = Client(url, verbose=False)
    md = client.predict(FIRST, year_from=2010, year_to=2012, pem_required=True, api_name="/chat")
    assert re.search(r"No study that matches your filters \(2010 to 2012; only studies that required PEM\) looks at "
                     r".+; without the filters, \d+ stud(y|ies) in the library do(es)?\.", md), md
    md = client.predict("Does acupuncture help ME/CFS?", study_types=["rct"], year_from=2026, api_name="/chat")
    assert "(from 2026; study type randomised controlled trial)" in md and "none in the library does" in md, md
