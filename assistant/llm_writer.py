"""The LLM writer: an OpenAI-compatible model writes the bottom line and short answer in plain words;
verify.SentenceVerifier checks each sentence before anyone sees it; the deterministic answer is used
when the bottom line fails, too little survives, or the server fails.

The model gets the question and the evidence as quoted JSON data (never as instructions): the verdict
and its fixed sentence, each cited study's design and direction, and its best units with their roles
and citation numbers. The bottom line always opens with the verdict sentence from prompts/, so the
verdict itself is never the model's to state."""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

import numpy as np

from .evidence import CAUSAL_CUES, EvidenceSet
from .llm import ChatClient, LLMError
from .prompts import table
from .settings import Settings
from .study import Role
from .understand import warm_sentence
from .verify import Check, SentenceVerifier, Supply, sentences
from .writer import OnSentence, TemplateWriter, Written, _describe, verdict_sentence

BOTTOM, SHORT = "bottom_line", "short_answer"
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["bottom_line", "answer"],
          "properties": {"bottom_line": {"type": "string"}, "answer": {"type": "array", "items": {"type": "string"}}}}
# A complete JSON string literal and the first character after it (':' marks a key).
LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"\s*(\S)')


class LLMWriter:
    def __init__(self, settings: Settings, embed: Callable[[list[str]], np.ndarray], client: ChatClient | None = None):
        self.settings, self.embed = settings, embed
        self.client = client or ChatClient(settings)
        self.name = f"openai:{settings.llm_model}"
        self.deterministic = TemplateWriter()

    def write(self, evidence: EvidenceSet, verdict: str, mode: str, on_sentence: OnSentence | None = None) -> Written:
        fallback = self.deterministic.write(evidence, verdict, mode)
        opening = verdict_sentence(evidence, verdict)
        supplied = supply(evidence)
        fixed = [opening, warm_sentence()]
        verifier = SentenceVerifier(evidence, supplied, verdict, fixed, self.embed,
                                    self.settings.verify_min_similarity, self.settings.verify_min_coverage)
        emit = on_sentence or (lambda part, text: None)
        head = ([warm_sentence()] if evidence.understanding.emotional else []) + [opening]
        for text in head:
            emit(BOTTOM, text)
        try:
            checks = self._generate(evidence, verdict, mode, opening, supplied, verifier, emit)
        except LLMError as err:
            return _fallback(fallback, str(err), [])
        why = self._judge(checks, head, mode)
        if why:
            return _fallback(fallback, why, checks)
        kept = {part: [c.text for p, c in checks if p == part and c.kept] for part in (BOTTOM, SHORT)}
        return Written(" ".join(head + kept[BOTTOM]), " ".join(kept[SHORT]), fixed, self.name, checks)

    def _generate(self, evidence, verdict, mode, opening, supplied, verifier, emit) -> list[tuple[str, Check]]:
        """Stream the completion, checking each sentence as soon as it is complete; stop at the first
        failing bottom-line sentence (the deterministic answer will be used)."""
        messages = self._messages(evidence, verdict, mode, opening, supplied)
        reader = JsonSentences() if self.settings.llm_format != "text" else TextSentences()
        checks: list[tuple[str, Check]] = []
        near_opening = self.embed([opening])[0]
        def written() -> Iterator[tuple[str, str]]:
            for piece in self.client.stream(messages, SCHEMA):
                yield from reader.feed(piece)
            yield from reader.close()

        parts = set(sentences(opening))  # the verdict sentence may be two short ones
        for part, sentence in written():
            if part == BOTTOM and (sentence in parts or _restates(sentence, near_opening, self.embed)):
                continue  # the model repeated the verdict sentence, which already opens the bottom line
            check = verifier.check(sentence)
            checks.append((part, check))
            if check.kept:
                emit(part, check.text)
            elif part == BOTTOM:
                break
        return checks

    def _judge(self, checks: list[tuple[str, Check]], head: list[str], mode: str) -> str:
        """Why the generated text cannot be used ('' when it can)."""
        bottom = [c for p, c in checks if p == BOTTOM]
        short = [c for p, c in checks if p == SHORT]
        if failed := [c for c in bottom if not c.kept]:
            return f"a bottom-line sentence failed verification ({'; '.join(failed[0].reasons)})"
        if not bottom:
            return "the model wrote no bottom line beyond the verdict"
        words = sum(len(t.split()) for t in head + [c.text for c in bottom])
        if words > table("llm")["limits"][mode]["max_words"] + len(" ".join(head[:-1]).split()):
            return f"the bottom line has {words} words"
        kept = [c for c in short if c.kept]
        if not kept or len(kept) < self.settings.llm_min_kept * len(short):
            return f"only {len(kept)} of {len(short)} short-answer sentences passed verification"
        return ""

    def _messages(self, evidence: EvidenceSet, verdict: str, mode: str, opening: str, supplied: list[Supply]) -> list[dict]:
        spec = table("llm")
        limits = spec["limits"][mode]
        system = spec["prompt"]["system"].format(**limits) + "\n" + (
            spec["prompt"]["text_instruction"] if self.settings.llm_format == "text" else spec["prompt"]["json_instruction"])
        data = prompt_data(evidence, verdict, opening, supplied)
        user = spec["prompt"]["user"].format(question=json.dumps(evidence.question, ensure_ascii=False),
                                             data=json.dumps(data, ensure_ascii=False))
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def prompt_data(evidence: EvidenceSet, verdict: str, opening: str, supplied: list[Supply]) -> dict:
    """What the model is given as data: the verdict, its sentence, and per source its kind and units."""
    texts = table("answer")
    sources = []
    for study in evidence.studies:
        fill = _describe(study, texts)
        sources.append({"source": study.n, "kind": fill["lead"], "title": study.study.title,
                        "tested_the_subject": study.profile.tested, "finding_direction": fill["dir"],
                        "units": [{"role": s.role.value, "text": s.unit.text} for s in supplied if s.n == study.n]})
    return {"question_type": evidence.understanding.question_type, "subject": evidence.understanding.subject,
            "verdict": verdict, "verdict_sentence": opening, "sources": sources}


def supply(evidence: EvidenceSet) -> list[Supply]:
    """The units given to the model: per cited study its best units of each role (prompts/llm.toml)."""
    counts = table("llm")["units"]
    causal = bool(CAUSAL_CUES.search(evidence.understanding.search_text))
    supplied = []
    for study in evidence.studies:
        for role in (Role.OBSERVED, Role.INFERRED):
            supplied += [Supply(study.n, role, u) for u in study.top(role, counts[role.value])]
        supplied += [Supply(study.n, Role.NOT_PROVEN, u) for u in study.limits(causal)[:counts["not_proven"]]]
    return supplied


def _restates(sentence: str, opening: np.ndarray, embed) -> bool:
    return "[" not in sentence and float(embed([sentence])[0] @ opening) >= 0.85


def _fallback(written: Written, why: str, checks: list[tuple[str, Check]]) -> Written:
    written.writer, written.why_fallback, written.checks = "fallback", why, checks
    return written


class JsonSentences:
    """Sentences of {"bottom_line": "...", "answer": ["...", ...]} as the JSON streams in."""

    def __init__(self):
        self.buffer, self.seen, self.key = "", 0, None

    def feed(self, piece: str) -> Iterator[tuple[str, str]]:
        self.buffer += piece
        matches = list(LITERAL.finditer(self.buffer))
        for match in matches[self.seen:]:
            self.seen += 1
            text = json.loads(f'"{match.group(1)}"', strict=False)  # llama.cpp lets raw newlines into strings
            if match.group(2) == ":":
                self.key = text
            elif self.key in ("bottom_line", "answer"):
                part = BOTTOM if self.key == "bottom_line" else SHORT
                yield from ((part, s) for s in sentences(text))

    def close(self) -> Iterator[tuple[str, str]]:
        """Nothing more to say; raises when the whole reply is not the JSON asked for."""
        try:
            reply = json.loads(self.buffer, strict=False)
        except json.JSONDecodeError as err:
            raise LLMError(f"the model's reply is not the JSON asked for ({err.msg})") from None
        if not (isinstance(reply, dict) and isinstance(reply.get("bottom_line"), str)
                and isinstance(reply.get("answer"), list) and all(isinstance(a, str) for a in reply["answer"])):
            raise LLMError("the model's reply lacks a text 'bottom_line' and a list 'answer'")
        return iter(())


class TextSentences:
    """Plain text: the first line is the bottom line, the rest the short answer."""

    def __init__(self):
        self.buffer, self.lines = "", 0

    def feed(self, piece: str) -> Iterator[tuple[str, str]]:
        self.buffer += piece
        *done, self.buffer = self.buffer.split("\n")
        for line in done:
            yield from self._line(line)

    def _line(self, line: str) -> Iterator[tuple[str, str]]:
        line = re.sub(r"^\s*(bottom line|short answer|answer)\s*:\s*", "", line.strip(), flags=re.I).lstrip("-• ")
        if not line:
            return
        part = BOTTOM if self.lines == 0 else SHORT
        self.lines += 1
        yield from ((part, s) for s in sentences(line))

    def close(self) -> Iterator[tuple[str, str]]:
        return self._line(self.buffer)
