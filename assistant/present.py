"""Stage 7, present: an Answer as Markdown (web, JSON `answer_markdown`) or as plain terminal text."""
from __future__ import annotations

import re
import textwrap
from urllib.parse import quote

from .answer import ANSWERED, Answer, Item, Source
from .prompts import table
from .study import STUDY_TYPES, valid_doi

# Markdown that corpus text must not form: links and images ("[", "]"), autolinks and raw HTML ("<"),
# and backslashes (which could undo our escapes). A citation "[n]" stays as it is unless a "(" or ":"
# follows, which would make it a link or a link definition.
MD_ACTIVE = re.compile(r"\[\d{1,4}\](?![(:])|[\\\[\]<]")


def md_safe(text) -> str:
    """Corpus-derived text for Markdown output: every character that could open a link, an image, an
    autolink or HTML is backslash-escaped, so a renderer shows it as written (`![x](javascript:…)`
    stays text) and fetches nothing; plain words are unchanged."""
    return MD_ACTIVE.sub(lambda m: m[0] if len(m[0]) > 1 else "\\" + m[0], str(text or ""))


def md_url(url: str | None) -> str | None:
    """A link target for Markdown: only http(s), with everything that could end the link or open
    another (brackets, parentheses, quotes, spaces, angle brackets, backslashes) percent-encoded."""
    if not url or not re.match(r"https?://[^\s]", url, re.I):
        return None
    return quote(url, safe=":/?#@!$&*+,;=%-._~")


def cites(item: Item) -> str:
    return "".join(f"[{n}]" for n in item.citations)


def display_blocks(answer: Answer) -> list[tuple[str, str, list[Item]]]:
    """(block name, heading, items) in reading order; generated caveats get a heading of their own."""
    headings = table("answer")["headings"]
    authors_limits = [i for i in answer.does_not_prove if not i.generated]
    design_limits = [i for i in answer.does_not_prove if i.generated]
    blocks = [("shows", headings["shows"], answer.shows),
              ("infers", headings["infers"], answer.infers),
              ("does_not_prove", headings["does_not_prove"], authors_limits),
              ("generated", headings["generated_caveat"], design_limits),
              ("open_questions", headings["open_questions"], answer.open_questions)]
    return [b for b in blocks if b[2]]


def reference(source: Source, mode: str = "patient") -> str:
    """'Meeus M, Nijs J, Hermans L, et al. (2013) Title. Journal. Review.'"""
    s = source.study
    parts = [f"{s.short_authors() or 'Unknown authors'} ({s.year or 'n.d.'})", as_sentence(s.title),
             as_sentence(s.journal) if s.journal else "", STUDY_TYPES.get(s.study_type, "Other") + "."]
    if mode == "clinician":
        pem = {"required": "PEM required", "not_required": "PEM not required"}.get(s.pem.value, "PEM criterion not stated")
        parts.append(pem + ".")
        if s.participants:
            parts.append(f"Participants: {s.participants}.")
    return " ".join(p for p in parts if p)


def as_sentence(text: str) -> str:
    """The text with a closing full stop unless it already ends a sentence."""
    text = text.strip()
    return text if text[-1:] in ".?!" else text + "."


def link(source: Source) -> str | None:
    s = source.study
    return f"https://doi.org/{s.doi}" if valid_doi(s.doi) else s.url  # a DOI link only from a valid DOI


def evidence_rows(answer: Answer) -> list[list[str]]:
    """The evidence table as rows of text, header first (Markdown, terminal, CSV and web share it)."""
    words = table("answer")["table"]
    rows = [list(words["columns"])]
    for r in answer.evidence_table:
        rows.append([f"[{r.n}]", STUDY_TYPES.get(r.design or "other", "Other"), str(r.participants or "not stated"),
                     r.pem.replace("_", " "), words["yes"] if r.tested else words["no"], r.direction.replace("_", " "),
                     r.finding])
    return rows


def table_markdown(answer: Answer) -> str:
    rows = evidence_rows(answer)
    cell = lambda t: md_safe(t).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * len(rows[0]))
    return "\n".join(lines)


def table_csv(answer: Answer) -> str:
    import csv
    import io

    out = io.StringIO()
    csv.writer(out).writerows(evidence_rows(answer))
    return out.getvalue()


def verdict_words(answer: Answer) -> str:
    return table("answer")["verdicts"].get(answer.verdict, "")


def writer_line(answer: Answer) -> str:
    """Which writer answered: the built-in one, a model (verified), or the fallback and why."""
    texts = table("answer")["writer"]
    if answer.writer.startswith("openai:"):
        return texts["openai"].format(model=answer.writer.split(":", 1)[1])
    return texts["fallback"].format(why=answer.why_fallback) if answer.writer == "fallback" else texts["extractive"]


def to_markdown(answer: Answer, mode: str = "patient") -> str:
    headings = table("answer")["headings"]
    if answer.status != ANSWERED:
        # Resources and advice limits first, then the fixed text, then the not-medical-advice line.
        return "\n\n".join([*(f"> {n}" for n in answer.notes[:-1]), md_safe(answer.short_answer),
                            f"_{answer.notes[-1]}_"])
    out = [f"> {note}" for note in answer.notes[:-1]]  # resources, dose / diagnosis limits come first
    # Corpus-derived text (bottom line, short answer, items, references) goes through md_safe.
    out.append(f"**{headings['bottom_line']}:** {md_safe(answer.bottom_line)} _({verdict_words(answer)})_")
    out.append(f"**{headings['short']}:** {md_safe(answer.short_answer)}")
    if answer.disagreements:
        out.append(f"#### {headings['disagreements']}\n" + "\n".join(f"- {md_safe(d.text)}" for d in answer.disagreements))
    if mode == "clinician" and answer.evidence_table:
        out.append(f"#### {headings['evidence_table']}\n{table_markdown(answer)}")
    for _, heading, items in display_blocks(answer):
        out.append(f"#### {heading}\n" + "\n".join(f"- {md_safe(i.text)} {cites(i)}" for i in items))
    refs = []
    for source in answer.sources:
        banner = f"**{headings['retracted']}** " if source.study.retracted else ""
        url = md_url(link(source))
        refs.append(f"{source.n}. {banner}{md_safe(reference(source, mode))}" + (f" [{url}]({url})" if url else ""))
    out.append(f"#### {headings['sources']}\n" + "\n".join(refs))
    out.append(f"_{md_safe(writer_line(answer))}_")
    out.append(f"_{answer.notes[-1]}_")
    return "\n\n".join(out)


def to_terminal(answer: Answer, mode: str = "patient", width: int = 100) -> str:
    headings = table("answer")["headings"]
    wrap = lambda text, indent="": textwrap.fill(text, width, initial_indent=indent,  # noqa: E731
                                                 subsequent_indent=" " * len(indent))
    if answer.status != ANSWERED:
        return "\n\n".join([*answer.notes[:-1], answer.short_answer, answer.notes[-1]])
    out = [wrap(note) for note in answer.notes[:-1]]  # resources, dose / diagnosis limits come first
    out.append(wrap(f"{headings['bottom_line']}: {answer.bottom_line} ({verdict_words(answer)})"))
    out.append(wrap(f"{headings['short']}: {answer.short_answer}"))
    if answer.disagreements:
        out.append(headings["disagreements"] + "\n" + "\n".join(wrap(d.text, "  • ") for d in answer.disagreements))
    if mode == "clinician" and answer.evidence_table:
        rows = evidence_rows(answer)
        out.append(headings["evidence_table"] + "\n" + "\n".join(
            wrap(" · ".join(f"{h}: {c}" for h, c in zip(rows[0][1:], row[1:])), f"  {row[0]} ") for row in rows[1:]))
    for _, heading, items in display_blocks(answer):
        out.append(heading + "\n" + "\n".join(wrap(f"{i.text} {cites(i)}", "  • ") for i in items))
    refs = []
    for source in answer.sources:
        banner = f"{headings['retracted']}: " if source.study.retracted else ""
        url = link(source)
        refs.append(wrap(f"{banner}{reference(source, mode)}" + (f" {url}" if url else ""), f"[{source.n}] "))
    out.append("\n".join(refs))
    out.append(wrap(writer_line(answer)))
    out.append(answer.notes[-1])
    return "\n\n".join(out)
