"""Safe output (issue 13, item 3): typed messages shown as text, a content-security policy, Markdown
without live links or images from corpus text, strict DOIs and strict booleans in the web API.

Crafted corpus entries go through the real parsers, a real index and the real engine; the web parts
start the real server and drive headless Chromium like tests/test_web.py."""
import re
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from gradio_client import Client
from markdown_it import MarkdownIt

from test_web import running
from assistant.answer import Source
from assistant.index import build_index
from assistant.present import link, md_safe, md_url, to_markdown
from assistant.settings import Settings
from assistant.study import Study, normalise_doi, valid_doi

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EVIL_HOST = "example.invalid"
QUESTION = "Is mitochondrial energy production lower in ME/CFS?"
# Every way corpus text could carry a live link, an image or HTML into a Markdown renderer.
HOSTILE = [
    f"![tracker](http://{EVIL_HOST}/finding.png)",
    "[click here](javascript:alert(1))",
    "[see data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<javascript:alert(2)>",
    f"<img src=http://{EVIL_HOST}/raw.png>",
    "[1](javascript:alert(3))",
    "\\[x\\](javascript:alert(4))",
    f"[ref]: http://{EVIL_HOST}/def.png",
]
ATLAS = f"""Mitochondrial energy production in ME/CFS ![t](http://{EVIL_HOST}/title.png)
Evil, Eve, Tester, Tom · Journal of [Tests](javascript:alert(5)) · 2024 · DOI: 10.1234/x)](javascript:alert(1)
PEM required
Study type: Case-control
Quick Summary
Researchers measured how mitochondria make energy in blood cells from people with ME/CFS.
Observed Findings
Mitochondrial energy production was lower in ME/CFS cells {HOSTILE[0]} {HOSTILE[1]} {HOSTILE[2]}.
Mitochondrial ATP output was lower after exercise {HOSTILE[3]} {HOSTILE[4]} {HOSTILE[5]} {HOSTILE[6]}.
Inferred Conclusions
The authors suggest mitochondrial energy production is impaired in ME/CFS {HOSTILE[7]}.
Remaining Questions
Does lower mitochondrial energy production come before a crash?
What This Study Does Not Prove
This small study cannot show that low mitochondrial energy production causes ME/CFS.
"""
SUMMARY = f"""---
title: "Mitochondrial energy production in people with ME/CFS ![m](http://{EVIL_HOST}/md-title.png)"
published: '2023-03-01'
---

<details>
<summary>Tester et al. (2023)</summary>

- **Authors:** Ann B. Tester
- **Publisher:** Journal of Invented Test Data
- **Link:** [DOI](https://example.org/paper)![i](http://{EVIL_HOST}/md-link.png)

</details>

## Summary

Mitochondrial energy production was measured in people with ME/CFS.

## What has been found?

Mitochondrial energy production was lower in ME/CFS [x](javascript:alert(6)).
"""


def renderer() -> MarkdownIt:
    """A permissive CommonMark renderer (HTML on, bare URLs linked, every link scheme allowed): what a
    careless client would use, so anything live in the Markdown shows up in its HTML."""
    md = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable("table")
    md.validateLink = lambda url: True
    return md


def live_parts(markdown: str) -> tuple[list[str], list[str]]:
    """(link targets, image sources) that the rendered Markdown would follow or fetch."""
    html = renderer().render(markdown)
    hrefs = re.findall(r'<a [^>]*href="([^"]*)"', html)
    images = re.findall(r"<img\b[^>]*>", html, re.I)
    return hrefs, images


def assert_safe(markdown: str) -> None:
    hrefs, images = live_parts(markdown)
    assert images == [], images
    assert all(re.match(r"https?://", h) for h in hrefs), hrefs  # no javascript:, data:, relative
    assert all(urlparse(h).hostname != EVIL_HOST for h in hrefs), hrefs
    assert "<script" not in renderer().render(markdown) and "<img" not in renderer().render(markdown)


# --- DOIs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "10.1234/x)](javascript:alert(1)",
    "DOI: 10.1234/x)](javascript:alert(1)",
    "https://doi.org/10.1234/x](javascript:alert(1))",
    "10.1234/a[b]", "10.1234/x'onmouseover=alert(1)", "10.1234/a\\b", "10.1234/a)(b", "10.1234/a`b`",
    "10.1234/", "10.12/abc", "doi:abc",
])
def test_normalise_doi_refuses_what_is_not_strict_doi_syntax(text):
    assert normalise_doi(text) is None


@pytest.mark.parametrize("text, doi", [
    ("https://doi.org/10.1016/S0140-6736(11)60096-2.", "10.1016/s0140-6736(11)60096-2"),  # Lancet style
    ("[DOI](https://doi.org/10.3390/DIAGNOSTICS9030070)", "10.3390/diagnostics9030070"),
    ("DOI: 10.1183/13993003.congress-2023.PA4639,", "10.1183/13993003.congress-2023.pa4639"),
    ("10.1002/14651858.CD003200.pub9", "10.1002/14651858.cd003200.pub9"),
    ("doi 10.1111/j.1398-9995.2008.01640.x; more text", "10.1111/j.1398-9995.2008.01640.x"),
])
def test_normalise_doi_keeps_real_dois(text, doi):
    assert normalise_doi(text) == doi and valid_doi(doi)


def test_links_only_from_a_valid_doi_and_only_http():
    # a DOI that an older index still holds is not turned into a link
    bad = Source(n=1, study=Study(id="x", title="t", doi="10.1234/x)](javascript:alert(1)"), score=1.0)
    assert link(bad) is None
    assert md_url("javascript:alert(1)") is None and md_url("data:text/html,x") is None
    assert md_url("https://example.org/a)![i](http://x/y.png") == "https://example.org/a%29!%5Bi%5D%28http://x/y.png"
    assert md_url("https://doi.org/10.1016/s0140-6736(11)60096-2") == "https://doi.org/10.1016/s0140-6736%2811%2960096-2"


def test_md_safe_keeps_plain_text_and_citations():
    plain = "ATP output fell by 12% (p = 0.03) after exercise [1] [2]."
    assert md_safe(plain) == plain
    for hostile in HOSTILE:
        assert_safe(f"- {md_safe(hostile)} [1]")
        # a renderer shows the text as written
        shown = re.sub(r"<[^>]+>", "", renderer().render(md_safe(hostile))).strip()
        assert shown.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&") \
            == hostile


# --- the Markdown of answers from a crafted corpus, through a real index -------------------------

@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> Settings:
    root = tmp_path_factory.mktemp("crafted")
    (root / "corpus").mkdir()
    (root / "corpus" / "2024_crafted.txt").write_text(ATLAS, encoding="utf-8")
    (root / "corpus" / "2023_crafted.md").write_text(SUMMARY, encoding="utf-8")
    settings = Settings(index_dir=root / "index")
    summary = build_index([root / "corpus"], settings, progress=False)
    assert summary.studies == 2 and summary.skipped == []
    return settings


@pytest.fixture(scope="module")
def engine(crafted):
    from assistant.engine import Assistant

    return Assistant(crafted)


def test_crafted_entries_parse_with_no_hostile_doi(engine):
    studies = list(engine.library.studies.values())
    atlas = next(s for s in studies if s.source_format == "atlas")
    summary = next(s for s in studies if s.source_format == "markdown")
    assert atlas.doi is None  # "10.1234/x)](javascript:alert(1)" is refused, not cut down
    assert summary.url.startswith("https://example.org/paper)")  # hostile, but http: shown only encoded


@pytest.mark.parametrize("mode", ["patient", "clinician"])
def test_answer_markdown_has_no_live_links_or_images_from_corpus_text(engine, mode):
    answer = engine.ask(QUESTION, mode)
    assert answer.status == "answered" and len(answer.sources) == 2
    md = answer.answer_markdown
    assert md == to_markdown(answer, mode) == answer.contract()["answer_markdown"]
    assert_safe(md)
    hrefs, _ = live_parts(md)
    assert hrefs == [md_url(answer.sources[i].study.url) for i in range(2) if answer.sources[i].study.url]
    # the hostile text is still there to read, as text
    text = re.sub(r"<[^>]+>", "", renderer().render(md))
    assert "javascript:alert(1)" in text and f"http://{EVIL_HOST}/finding.png" in text
    assert "[1]" in md and "\\[1\\](javascript:alert(3))" in md  # citations stay, a cite-shaped link does not


# --- the web API and page ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(crafted):
    with running(crafted) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


def test_api_markdown_is_safe(client):
    md = client.predict(QUESTION, mode="clinician", api_name="/chat")
    assert "[1]" in md and "javascript:alert(1)" in md
    assert_safe(md)


def test_api_booleans_are_strict(client):
    def required(value) -> bool:  # PEM required: the entry saying "PEM required" stays, the other goes
        md = client.predict(QUESTION, mode="clinician", pem_required=value, api_name="/chat")
        return "2." not in md.split("####")[-1]

    assert required("false") is False and required("False") is False and required(False) is False
    assert required("true") is True and required(" TRUE ") is True and required(True) is True
    for bad in ("yes", "0", "", "no", 1, None):
        with pytest.raises(Exception, match="pem_required must be true or false"):
            client.predict(QUESTION, pem_required=bad, api_name="/chat")


def test_every_response_carries_the_content_security_policy(server):
    for path in ("/", "/config", "/gradio_api/info"):
        headers = httpx.get(f"{server}{path}").headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "connect-src 'self'" in csp and "img-src 'self' data: blob:" in csp
        assert "http:" not in csp and "https:" not in csp and "*" not in csp
        assert headers["x-content-type-options"] == "nosniff"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_typed_markdown_is_shown_as_text_and_nothing_is_fetched(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    requests, refused, violations = [], {}, []
    page.on("request", lambda request: requests.append(request.url))
    page.on("requestfailed", lambda request: refused.setdefault(request.url, request.failure))
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(server)
    box = page.locator("#atlas-question textarea")
    box.wait_for()
    typed = (f"![x](http://{EVIL_HOST}/typed.png) [link](javascript:alert(7)) <img src=http://{EVIL_HOST}/raw.png> "
             "**mitochondrial** energy production in ME/CFS? www.example.org &amp; `code`")
    box.fill(typed)
    box.press("Enter")
    page.locator(".atlas-answer .medical").first.wait_for(timeout=60_000)
    bubble = page.locator("#atlas-chat .message.user, #atlas-chat [data-testid=user]").first
    assert bubble.inner_text().strip() == typed  # exactly what was typed, as text
    assert bubble.locator("img, a, strong, code").count() == 0
    assert page.locator("#atlas-chat img[src*='example']").count() == 0
    # the page still works under the policy: an answer with its sources
    answer = page.locator(".atlas-answer").last
    answer.locator("details.sources > summary").click()
    assert answer.locator("article.card").count() >= 1
    assert {url.split("/")[2] for url in requests} == {server.split("/")[2]}  # nothing from elsewhere

    # anything that does get into the page still cannot load from elsewhere: the browser refuses it
    page.evaluate(f"""() => {{ const i = document.createElement('img'); i.src = 'http://{EVIL_HOST}/injected.png';
                          document.body.appendChild(i); fetch('http://{EVIL_HOST}/x').catch(() => null); }}""")
    page.wait_for_timeout(500)
    outside = [url for url in requests if EVIL_HOST in url]
    assert outside and all(refused.get(url) == "csp" for url in outside), (outside, refused)
    blocked = [v for v in violations if EVIL_HOST not in v]
    assert blocked == [], blocked  # the policy blocked only our injected requests, nothing Gradio needs
    page.close()
