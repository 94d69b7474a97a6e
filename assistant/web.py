"""Stage 7 for the browser: a Gradio chat on the answer engine (`atlas-assistant serve`).

The page shows answers as HTML built here, with every corpus-derived string escaped; the `/chat` API
returns the engine's Markdown. No exception text ever reaches the page: problems are logged to stderr
and the reader gets a plain message. Questions are stored only if the reader ticks the opt-in box."""
from __future__ import annotations

import html
import json
import os
import queue
import re
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import gradio as gr

from .answer import ANSWERED, Answer, Source
from .followup import Conversation
from .index import IndexMissing
from .present import display_blocks, evidence_rows, link, verdict_words, writer_line
from .prompts import table
from .retrieve import Filters
from .settings import Settings
from .study import STUDY_TYPES
from .writer import TemplateWriter

MAX_CHARS = 2000
# Questions answered at once (page and API together). One engine serves them all: its model, index and
# gates are read-only once loaded, and each answer encodes on one torch thread (embed.pin_threads), so
# two answers run on two cores while a third does its Python work. bench/web_load_bench.py measures it.
# ATLAS_WEB_WORKERS overrides it (1: one at a time, as before).
WORKERS = int(os.environ.get("ATLAS_WEB_WORKERS") or 0) or max(2, 2 * (os.cpu_count() or 1))
ANSWERING = {"concurrency_limit": WORKERS, "concurrency_id": "answers"}
# Gradio's queue summarises its event log with pandas after every event (for a monitoring page this
# app does not use), over up to 10,000 past events: the cost of an answer grew with the answers before
# it, and so did memory. Summarise rarely, over a short log.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000000")
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "100")
# Gradio keeps a copy of the page's state (every component's configuration, ~100 KB here) for each
# session, and each API call is a session of its own: by default 10,000 of them, so memory grew with
# every answer. Keep the most recently used few hundred; a reader's conversation stays unless that many
# other sessions asked something since their last question.
SESSIONS = 300
QUESTION_LOG = Path("atlas-questions.jsonl").resolve()
CITE = re.compile(r"\[(\d+)\]")
THEME = gr.themes.Base(
    primary_hue="teal", neutral_hue="slate",
    font=["system-ui", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"],
    font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"],
    text_size=gr.themes.Size(xxs="12px", xs="14px", sm="16px", md="18px", lg="20px", xl="24px", xxl="30px"))
# A citation opens the (collapsed) sources and moves focus to the card it names. The chat follows the
# conversation: each new answer is shown from its first line (in the chat panel, and on the screen when
# the panel's top is off screen, as on a phone), unless the reader has scrolled up to read something
# earlier; then a "new answer" button below the panel (never over the text) leads to it. Gradio's own
# scrolling to the bottom is off (autoscroll=False) and its scroll-down button hidden (web.css).
JS = """() => {
  document.addEventListener('click', (event) => {
    const cite = event.target.closest('a.cite');
    const card = cite && document.getElementById(cite.getAttribute('href').slice(1));
    if (!card) return;
    event.preventDefault();
    for (let d = card.closest('details'); d; d = d.parentElement.closest('details')) d.open = true;
    card.scrollIntoView({block: 'center'});
    card.focus();
  });
  const NEAR = 48;
  let follow = true, ours = 0, answers = 0, questions = 0, waiting = null, anchor = null;
  const log = () => document.querySelector('#atlas-chat [role=log]');
  const rows = (kind) => document.querySelectorAll(`#atlas-chat .message-row.${kind}-row`);
  const button = document.createElement('button');
  button.id = 'atlas-new-answer';
  button.type = 'button';
  button.hidden = true;
  button.textContent = __NEW_ANSWER__;
  function show(row) {  // the row's first line at the top of the panel, and of the screen if need be
    const panel = log();
    if (!panel || !row) return;
    ours = Date.now();
    panel.scrollTop += row.getBoundingClientRect().top - panel.getBoundingClientRect().top - 8;
    const top = row.getBoundingClientRect().top;
    if (top < 0 || top > window.innerHeight * 0.4) window.scrollBy(0, top - 8);
    follow = true;
    anchor = row;  // kept at the top while the answer grows (its parts arrive one by one)
    waiting = null;
    button.hidden = true;
  }
  function reveal(row) {  // a question just asked: bring it into view at the panel's bottom
    const panel = log();
    if (!panel || !row) return;
    ours = Date.now();
    const below = row.getBoundingClientRect().bottom - panel.getBoundingClientRect().bottom;
    if (below > 0) panel.scrollTop += below + 8;
  }
  button.addEventListener('click', () => show(waiting || rows('bot')[rows('bot').length - 1]));
  function scrolled() {  // by the reader (not by show/reveal): still following the newest answer?
    if (Date.now() - ours < 300) return;
    anchor = null;  // the reader took over
    const panel = log(), bots = rows('bot'), last = bots[bots.length - 1];
    if (!panel || !last) return;
    const atBottom = panel.scrollHeight - panel.scrollTop - panel.clientHeight < NEAR;
    follow = atBottom || last.getBoundingClientRect().top <= panel.getBoundingClientRect().top + NEAR;
    if (follow) { waiting = null; button.hidden = true; }
  }
  function changed() {
    const chat = document.querySelector('#atlas-chat'), panel = log();
    if (!chat) return;
    if (!button.isConnected) chat.after(button);
    if (panel && !panel.dataset.atlasFollow) {
      panel.dataset.atlasFollow = '1';
      panel.addEventListener('scroll', scrolled, {passive: true});
    }
    const bots = rows('bot'), users = rows('user');
    if (users.length > questions && follow) requestAnimationFrame(() => reveal(users[users.length - 1]));
    if (bots.length > answers) {
      const row = bots[bots.length - 1];
      if (follow) requestAnimationFrame(() => show(row));
      else { waiting = row; button.hidden = false; }
    }
    else if (follow && anchor && anchor.isConnected && panel) {
      const off = anchor.getBoundingClientRect().top - panel.getBoundingClientRect().top - 8;
      const room = panel.scrollHeight - panel.scrollTop - panel.clientHeight;
      if (off > 2 && room > 2) requestAnimationFrame(() => show(anchor));
    }
    if (bots.length === 0) { follow = true; waiting = null; anchor = null; button.hidden = true; }
    answers = bots.length;
    questions = users.length;
  }
  new MutationObserver(changed).observe(document.body, {childList: true, subtree: true});
  changed();
}"""


def texts() -> dict:
    return table("web")


def log_error(where: str) -> None:
    print(f"atlas-assistant web: {where}:\n{traceback.format_exc()}", file=sys.stderr, flush=True)


class Chat:
    """The engine behind the page, loaded once and shared by every reader; several questions are
    answered at once (WORKERS). `ask` never raises: problems become a message."""

    def __init__(self, settings: Settings):
        self.settings, self.assistant, self.problem = settings, None, None
        try:
            from .embed import pin_threads
            from .engine import Assistant
            from .query_encoder import export

            export(settings.embedding_model)  # if the cache lacks it: questions then skip torch

            self.assistant = Assistant(settings)
            # Warm up, so the first reader does not wait; with the built-in writer, so that starting
            # the page never calls a model server.
            writer, self.assistant.writer = self.assistant.writer, TemplateWriter()
            self.assistant.ask("ME/CFS fatigue")
            self.assistant.writer = writer
            pin_threads(1)  # from now on one torch thread per answer, answers side by side
        except Exception as err:  # IndexMissing, or an index that cannot be read
            if isinstance(err, IndexMissing):
                print(f"atlas-assistant web: {err}", file=sys.stderr, flush=True)
            else:
                log_error(f"cannot open the index at {settings.index_dir}")
            flag = "" if Path(settings.index_dir) == Path("index") else f" --index {settings.index_dir}"
            self.problem = texts()["index_missing"].format(index_flag=flag)

    def years(self) -> list[int]:
        studies = self.assistant.library.studies.values() if self.assistant else []
        return sorted({s.year for s in studies if s.year})

    def ask(self, question: str, mode: str, filters: Filters, conversation: Conversation,
            on_sentence=None) -> Answer | str:
        if self.assistant is None:
            return self.problem or texts()["error"]
        try:
            return self.assistant.ask(question, mode, filters, conversation, on_sentence=on_sentence)
        except Exception:
            log_error("answering failed")
            return texts()["error"]

    @property
    def streams(self) -> bool:
        """A model writes the answer: show its sentences as they pass the verifier."""
        return self.assistant is not None and self.settings.backend != "extractive"

    def ask_streaming(self, question: str, mode: str, filters: Filters, conversation: Conversation):
        """(the verified sentences so far, None) as they arrive, then ("", the answer)."""
        arrived: queue.Queue = queue.Queue()
        done: dict = {}

        def answer() -> None:
            try:
                done["answer"] = self.ask(question, mode, filters, conversation, lambda part, text: arrived.put(text))
            finally:
                arrived.put(None)

        threading.Thread(target=answer, daemon=True).start()
        shown: list[str] = []
        while (text := arrived.get()) is not None:
            shown.append(text)
            yield " ".join(shown), None
        yield "", done.get("answer", texts()["error"])


def prepare(message) -> tuple[str | None, list[str]]:
    """(question or None when empty, notes for the reader)."""
    question = " ".join(str(message or "").split())
    if len(question) > MAX_CHARS:
        question = question[:MAX_CHARS].rsplit(" ", 1)[0]
        return question, [texts()["trimmed"].format(limit=f"{MAX_CHARS:,}")]
    return question or None, []


class BadInput(ValueError):
    """An API argument of the wrong kind; its message says which and what is expected."""


def strict_bool(value, name: str) -> bool:
    """A real boolean, or the text 'true' / 'false' (any case); anything else is a BadInput."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise BadInput(f"{name} must be true or false, not {value!r}")


def make_filters(year_from=None, year_to=None, study_types=None, pem_required=False) -> Filters:
    year = lambda value: int(value) if str(value).isdigit() else None  # noqa: E731
    return Filters(year_from=year(year_from), year_to=year(year_to),
                   study_types=tuple(study_types or ()), pem_required=strict_bool(pem_required, "pem_required"))


# --- HTML: every string that comes from the corpus or the reader goes through esc() ---------------

def esc(text) -> str:
    return html.escape(str(text or ""), quote=True)


def user_text(text) -> str:
    """What the reader typed, for the chat bubble (which Gradio renders as Markdown): HTML-escaped, and
    every ASCII punctuation mark written as a character reference, so no Markdown image, link, autolink
    or emphasis can form; the reader sees exactly what they typed and nothing is fetched."""
    return "".join(f"&#{ord(c)};" if c.isascii() and not c.isalnum() and not c.isspace() else c
                   for c in str(text or ""))


def cite_links(escaped: str, key: str, known: set[int]) -> str:
    return CITE.sub(lambda m: (f'<a class="cite" href="#{key}-src-{m[1]}">[{m[1]}]</a>'
                               if int(m[1]) in known else m[0]), escaped)


def plain_html(text: str, kind: str = "notice") -> str:
    """A fixed text (safety, no evidence, a problem): paragraphs, '- ' lists and `code`."""
    out, items = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("- "):
            items.append(f"<li>{esc(line[2:])}</li>")
            continue
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if line.strip():
            out.append(f"<p>{esc(line)}</p>")
    body = re.sub(r"`([^`]+)`", r"<code>\1</code>", "".join(out))
    return f'<div class="atlas-answer atlas-{kind}">{body}</div>'


def source_card(source: Source, key: str) -> str:
    s, words = source.study, texts()["card"]
    authors = ", ".join(s.authors) + (" et al." if s.et_al else "") or words["unknown_authors"]
    url = link(source)
    target = (f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer">'
              f'{esc(words["doi"] + " " + s.doi if s.doi else words["link"])}</a>'
              if url and url.startswith(("https://", "http://")) else "")
    banner = f'<p class="banner" role="alert">⚠ {esc(words["retracted"])}</p>' if s.retracted else ""
    meta = " · ".join(esc(p) for p in (s.year, s.journal) if p)
    return (f'<article class="card{" is-retracted" if s.retracted else ""}" id="{key}-src-{source.n}" '
            f'tabindex="-1">{banner}<p class="card-title"><span class="num">[{source.n}]</span> '
            f'{esc(s.title)}</p><p class="card-authors">{esc(authors)}</p><p class="card-meta">{meta}</p>'
            f'<p class="badges"><span class="badge type">{esc(STUDY_TYPES.get(s.study_type, "Other"))}'
            f'</span> <span class="badge pem-{s.pem.value}">{esc(words["pem"][s.pem.value])}</span> '
            f'{target}</p></article>')


def answer_parts(answer: Answer, mode: str, key: str, notes: list[str]) -> list[str]:
    """The answer as HTML, in reading order: short answer, blocks, sources, the medical note."""
    if answer.status != ANSWERED:
        return [plain_html("\n".join([*notes, *answer.notes[:-1], answer.short_answer, answer.notes[-1]]), answer.status)]
    known = {s.n for s in answer.sources}
    heading = table("answer")["headings"]
    cites = lambda item: " ".join(cite_links(f"[{n}]", key, known) for n in item.citations)  # noqa: E731
    lead = "".join(f'<p class="note">{esc(n)}</p>' for n in [*notes, *answer.notes[:-1]])
    if answer.resolved_question:
        lead += f'<p class="note">{esc(texts()["understood"].format(text=answer.resolved_question))}</p>'
    parts = [f'<div class="atlas-answer">{lead}<p class="bottom-line"><strong>{esc(heading["bottom_line"])}:</strong> '
             f'{cite_links(esc(answer.bottom_line), key, known)} <em class="verdict">({esc(verdict_words(answer))})</em></p>'
             f'<p class="short"><strong>{esc(heading["short"])}:</strong> '
             f'{cite_links(esc(answer.short_answer), key, known)}</p>']
    if answer.disagreements:
        rows = "".join(f"<li>{cite_links(esc(d.text), key, known)}</li>" for d in answer.disagreements)
        parts.append(f'<div class="disagreements"><strong>{esc(heading["disagreements"])}</strong><ul>{rows}</ul></div>')
    if answer.evidence_table:
        parts.append(evidence_table_html(answer, mode, key, known))
    opened = " open" if mode == "clinician" else ""
    for name, title, items in display_blocks(answer):
        rows = "".join(f"<li>{esc(i.text)} {cites(i)}</li>" for i in items)
        parts.append(f'<details class="atlas-block atlas-block-{name}"{opened}><summary><span class="icon">'
                     f'</span> <strong>{esc(title)}</strong> <span class="count">({len(items)})</span>'
                     f'</summary><ul>{rows}</ul></details>')
    cards = "".join(source_card(s, key) for s in answer.sources)
    parts.append(f'<details class="atlas-block sources"><summary><strong>{esc(heading["sources"])}</strong> '
                 f'<span class="count">({len(answer.sources)})</span></summary>{cards}</details>')
    parts.append(f'<p class="writer"><em>{esc(writer_line(answer))}</em></p>'
                 f'<p class="medical"><em>{esc(answer.notes[-1])}</em></p></div>')
    return parts


def evidence_table_html(answer: Answer, mode: str, key: str, known: set[int]) -> str:
    """The clinician's evidence table: one row per cited study (open in clinician mode)."""
    header, *rows = evidence_rows(answer)
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cite_links(esc(c), key, known) if i == 0 else esc(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    opened = " open" if mode == "clinician" else ""
    return (f'<details class="atlas-block evidence-table"{opened}><summary><strong>'
            f'{esc(table("answer")["headings"]["evidence_table"])}</strong></summary>'
            f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></details>')


def answer_markdown(result: Answer | str, notes: list[str]) -> str:
    body = result.answer_markdown if isinstance(result, Answer) else result
    return "\n\n".join([*(f"_{n}_" for n in notes), body])


def library_line(chat: Chat) -> str:
    """How current the library is (studies, last PubMed sync), for the page's intro; '' without an index."""
    from .pubmed_sync import currency_text

    return "\n\n" + currency_text(chat.assistant.library) if chat.assistant is not None else ""


# --- the page and the API -----------------------------------------------------------------------

def build_app(settings: Settings) -> gr.Blocks:
    words, chat = texts(), Chat(settings)
    controls = words["controls"]

    def api_chat(message: str, mode: str = "patient", year_from: int | None = None,
                 year_to: int | None = None, study_types: list[str] | None = None,
                 pem_required: bool = False) -> str:
        """Answer one question; returns the answer Markdown with [n] citations and its sources."""
        try:
            filters = make_filters(year_from, year_to, study_types, pem_required)
        except BadInput as err:  # a clear error for the caller (gradio_client raises it), not an answer
            raise gr.Error(str(err), print_exception=False) from None
        try:
            question, notes = prepare(message)
            if question is None:
                return words["empty"]
            result = chat.ask(question, mode if mode in ("patient", "clinician") else "patient",
                              filters, Conversation())
            return answer_markdown(result, notes)
        except Exception:
            log_error("api")
            return words["error"]

    def respond(message, history, conversation, mode, year_from, year_to, study_types, pem_required,
                keep_log):
        history, conversation = list(history or []), conversation or Conversation()
        try:
            question, notes = prepare(message)
            if question is None:
                history.append({"role": "assistant", "content": plain_html(words["empty"])})
                yield history, conversation, "", gr.skip()
                return
            if keep_log:
                with QUESTION_LOG.open("a", encoding="utf-8") as log:
                    log.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "mode": mode,
                                          "question": question}, ensure_ascii=False) + "\n")
            history.append({"role": "user", "content": user_text(question)})
            yield history, conversation, "", gr.skip()
            filters = make_filters(year_from, year_to, study_types, pem_required)
            if chat.streams:  # the model's sentences appear as they pass the verifier, then the answer
                history.append({"role": "assistant", "content": ""})
                for so_far, result in chat.ask_streaming(question, mode, filters, conversation):
                    if result is None:
                        history[-1]["content"] = plain_html(so_far)
                        yield history, conversation, "", gr.skip()
                history.pop()
            else:
                result = chat.ask(question, mode, filters, conversation)
            if isinstance(result, str):
                parts = [plain_html("\n".join([*notes, result]), "problem")]
            else:
                parts = answer_parts(result, mode, f"a{len(history)}", notes)
            history.append({"role": "assistant", "content": ""})
            for shown in range(1, len(parts) + 1):  # short answer first, then each block, then sources
                history[-1]["content"] = "".join(parts[:shown])
                done = shown == len(parts)
                yield history, conversation, "", answer_markdown(result, notes) if done else gr.skip()
        except Exception:
            log_error("page")
            history.append({"role": "assistant", "content": plain_html(words["error"], "problem")})
            yield history, conversation, "", gr.skip()

    with gr.Blocks(title=words["title"], analytics_enabled=False) as app:
        gr.Markdown(f"# {words['title']}\n{words['intro']}{library_line(chat)}", elem_id="atlas-intro")
        if chat.problem:
            gr.HTML(plain_html(chat.problem, "problem"), elem_id="atlas-problem")
        conversation = gr.State(Conversation())
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=320):
                chatbot = gr.Chatbot(
                    label=words["title"], show_label=False, height="68vh", layout="panel",
                    autoscroll=False, group_consecutive_messages=False,  # web.JS follows; one bubble each
                    placeholder=words["welcome"], latex_delimiters=[], feedback_options=None, buttons=[],
                    elem_id="atlas-chat",
                    examples=[{"text": q} for q in words["examples"]])
                with gr.Row():
                    message = gr.Textbox(show_label=False, placeholder=words["placeholder"], lines=1,
                                         max_lines=8, scale=5, elem_id="atlas-question")  # no autofocus: no jump
                    ask = gr.Button(words["ask"], variant="primary", scale=1, min_width=90)
                with gr.Accordion(controls["copy"], open=False):
                    markdown = gr.Textbox(label=controls["copy_box"], lines=6, max_lines=16,
                                          interactive=False, buttons=["copy"], elem_id="atlas-markdown")
            with gr.Column(scale=1, min_width=260):
                gr.Markdown(f"### {controls['options']}")
                mode = gr.Radio([tuple(m) for m in controls["modes"]], value=settings.mode
                                if settings.mode in ("patient", "clinician") else "patient",
                                label=controls["mode"])
                listing: dict[str, Any] = {"elem_classes": ["atlas-listing"]}  # see web.css
                years = [controls["any_year"], *map(str, chat.years())]
                year_from = gr.Dropdown(years, value=years[0], label=controls["year_from"], **listing)
                year_to = gr.Dropdown(years, value=years[0], label=controls["year_to"], **listing)
                study_types = gr.Dropdown([(label, key) for key, label in STUDY_TYPES.items()],
                                          multiselect=True, label=controls["study_types"], value=[],
                                          **listing)
                pem_required = gr.Checkbox(label=controls["pem_required"], value=False)
                dark = gr.Checkbox(label=controls["dark"], value=False, elem_id="atlas-dark")
                keep_log = gr.Checkbox(label=controls["log"], value=False, elem_id="atlas-log",
                                       info=controls["log_info"].format(path=QUESTION_LOG))
                new = gr.Button(words["new"], variant="secondary")

        inputs = [message, chatbot, conversation, mode, year_from, year_to, study_types, pem_required,
                  keep_log]
        outputs = [chatbot, conversation, message, markdown]
        private: dict[str, Any] = {"api_visibility": "private", "show_progress": "minimal", **ANSWERING}
        message.submit(respond, inputs, outputs, **private)
        ask.click(respond, inputs, outputs, **private)
        chatbot.example_select(_example_text, None, message, api_visibility="private") \
            .then(respond, inputs, outputs, **private)
        chatbot.clear(lambda: (Conversation(), ""), None, [conversation, markdown], api_visibility="private")
        new.click(lambda: ([], Conversation(), "", ""), None, [chatbot, conversation, message, markdown],
                  api_visibility="private")
        dark.change(None, dark, None, js="(on) => { document.body.classList.toggle('dark', on); }")
        app.load(None, None, dark, js="() => document.body.classList.contains('dark')")
        gr.api(api_chat, api_name="chat", **ANSWERING)
    return app


def _example_text(event: gr.SelectData) -> str:
    return event.value["text"]


# The page may load and contact nothing but this server: scripts, styles, fonts, images and requests only
# from 'self' (images and fonts also from data:/blob:, which Gradio uses for icons). Inline scripts and
# eval stay allowed because Gradio's page and its `js=` hooks need them; with connect-src and the
# other sources limited to 'self', nothing can be fetched from or sent to another host.
CSP = "; ".join([
    "default-src 'self'", "script-src 'self' 'unsafe-inline' 'unsafe-eval'", "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:", "font-src 'self' data:", "media-src 'self' data: blob:",
    "connect-src 'self'", "worker-src 'self' blob:", "frame-src 'none'", "object-src 'none'",
    "base-uri 'self'", "form-action 'self'", "frame-ancestors 'self'"])
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer")]


class SecurityHeaders:
    """ASGI middleware: the content-security policy (and two small headers) on every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *((k, v) for k, v in SECURITY_HEADERS if k not in names)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Start the server; Gradio's own console lines (its public-link hint among them) are silenced and
    one line of ours says where the chat is. With block=True, wait until Ctrl-C."""
    from starlette.middleware import Middleware

    css = Path(__file__).with_name("web.css").read_text(encoding="utf-8")
    js = JS.replace("__NEW_ANSWER__", json.dumps(texts()["new_answer"]))
    app.launch(server_name=host, server_port=port, show_error=False, prevent_thread_lock=True,
               theme=THEME, css=css, js=js, footer_links=["api"], run_history=False, quiet=True,
               state_session_capacity=SESSIONS,
               app_kwargs={"middleware": [Middleware(SecurityHeaders)]})
    where = "this machine only" if host in ("127.0.0.1", "localhost", "::1") else f"bound to {host}"
    print(texts()["running"].format(url=app.local_url, where=where), flush=True)
    if block:
        app.block_thread()
    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> gr.Blocks:
    """Start the web chat; with block=False return the running app (tests close it with app.close())."""
    app = build_app(settings)
    launch(app, host, port, block)
    return app
