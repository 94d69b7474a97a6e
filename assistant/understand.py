"""Stage 5c, understand: what kind of question this is, what it asks about, and the researchable question
behind conversational or emotional wording. Wording is never a reason to refuse; it is mapped, using
the abbreviations and lay words in prompts/understand.toml ("LDN", "crash", "all in my head")."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from functools import cache

import numpy as np

from .prompts import PROMPTS_DIR, table

TYPES = ("treatment", "cause", "mechanism", "test", "prevalence", "prognosis", "experience", "other")


@dataclass(frozen=True)
class Understanding:
    question_type: str  # one of TYPES
    subject: str  # what is asked about, in the library's words ("low-dose naltrexone")
    search_text: str  # the question with lay words and abbreviations mapped, for retrieval
    topic: str  # the subject words alone, without conversation, for the evidence check
    premise: bool  # presupposes something ("why does GET cure ME?"): checked against the evidence
    emotional: bool  # open with a warm sentence
    named: bool = False  # the subject is a term from the lexicon ("low-dose naltrexone"), not loose words

    @property
    def name(self) -> str:
        """The subject as a person would say it in an answer ('POTS', not the search words 'POTS
        postural orthostatic tachycardia'): prompts/understand.toml's [names], else the subject."""
        return _lexicon()["names"].get(self.subject, self.subject)


@cache
def _lexicon() -> dict:
    spec = table("understand")
    flags = lambda p: 0 if p.startswith("(?-i:") else re.I  # noqa: E731
    return {
        "terms": [(re.compile(k, flags(k)), v) for k, v in spec["terms"].items()],
        "conversation": set(spec["conversation"]["words"]),
        "profession": re.compile(spec["conversation"]["profession"], re.I),
        "types": [(name, [re.compile(p, re.I) for p in patterns]) for name, patterns in spec["types"].items()],
        "treatment_for": re.compile(spec["treatment_for"]["pattern"], re.I),
        "types_certain": [(name, [re.compile(p, re.I) for p in patterns]) for name, patterns in spec["types_certain"].items()],
        "premise": [re.compile(p, re.I) for p in spec["premise"]["patterns"]],
        "premise_kinds": {kind: [re.compile(p, re.I) for p in patterns] for kind, patterns in spec["premise"].items() if kind != "patterns"},
        "emotion": [re.compile(p, re.I) for p in spec["emotion"]["patterns"]],
        "warm": spec["emotion"]["warm"],
        "names": spec.get("names", {}),
        "yes_no": re.compile(spec["yes_no"]["pattern"], re.I),
        "personal": re.compile(spec["yes_no"]["personal"], re.I),
        "open_ended": re.compile(spec["yes_no"]["open_ended"], re.I),
        "premise_denied": re.compile(spec["yes_no"]["premise_denied"], re.I),
        "context": set(spec.get("context", {}).get("terms", [])),
        "conditions": set(spec.get("context", {}).get("conditions", [])),
    }


MIND_SUBJECT = "psychological cause"  # the lexicon's term for "all in my head" (prompts/understand.toml)


def understand(question: str) -> Understanding:
    lex = _lexicon()
    mapped, found = question, []
    for pattern, words in lex["terms"]:
        if match := pattern.search(question):
            found.append((match.start(), words))
        if pattern.search(mapped):
            mapped = pattern.sub(f" {words} ", mapped)
    # The subject is the first term in the question's own order, in the sentence that asks (ends in a
    # question mark) before the story told around it ("brain fog sooo bad when i stand up. is my brain
    # not getting enough blood??" asks about blood flow); a context term ("children", "how common")
    # names it only when the question has no other ("does LDN help teens": LDN).
    asking = [m.span() for m in re.finditer(r"[^.!?]*\?+", question)]
    told = lambda at: bool(asking) and not any(a <= at < b for a, b in asking)  # noqa: E731
    named = [w for _, w in sorted(found, key=lambda f: (f[1] in lex["context"], told(f[0]), f[0]))]
    kept = [w for w in re.findall(r"[\w'/-]+", mapped) if w.lower() not in lex["conversation"] and not lex["profession"].match(w)]
    topic = " ".join(kept) or question
    return Understanding(
        question_type=question_type(question, mapped),
        subject=_subject(named, kept),
        search_text=" ".join(mapped.split()),
        topic=topic,
        premise=any(p.search(question) for p in lex["premise"]),
        emotional=any(p.search(question) for p in lex["emotion"]),
        named=bool(named),
    )


def mind_premise(understood: Understanding) -> Understanding | None:
    """"If ME is basically depression, which antidepressant works best?": when no study speaks to what
    is asked (the antidepressant), the answer still takes up its premise that the illness is in the
    mind: the same question, about that premise. None when the question has no such premise."""
    if not understood.premise or understood.subject == MIND_SUBJECT or premise_kind(understood.search_text) != "mind":
        return None
    return replace(understood, subject=MIND_SUBJECT, named=True, search_text=f"{understood.search_text} {MIND_SUBJECT}",
                   topic=f"{understood.topic} {MIND_SUBJECT}")


def question_type(question: str, mapped: str = "") -> str:
    for name, patterns in _lexicon()["types"]:
        if any(p.search(question) or (mapped and p.search(mapped)) for p in patterns):
            return name
    return "other"


def synonyms(subject: str) -> list[re.Pattern]:
    """The lexicon's patterns for a mapped subject ('\\bpem\\b' for post-exertional malaise)."""
    return [pattern for pattern, words in _lexicon()["terms"] if words == subject]


def treatment_for(question: str) -> str | None:
    """What is asked about as a treatment for something ("nicotine patches" in "nicotine patches for
    long covid brain fog?"), from the pattern in prompts/understand.toml."""
    found = _lexicon()["treatment_for"].search(question)
    return found.group("thing").strip() if found else None


def certain_type(question: str) -> str | None:
    """A type the question's words settle, whatever the learned layer reads (prompts: types_certain)."""
    return next((name for name, patterns in _lexicon()["types_certain"] if any(p.search(question) for p in patterns)), None)


def learned_type(vector: np.ndarray) -> str | None:
    """The question type from the question's vector (tools/train_question_types.py: 0.69 agreement with
    the labels in cross-validation against 0.49 for the patterns alone); None when the layer is absent
    or was trained on another model's vectors (then the patterns decide)."""
    model = _type_model()
    if model is None or model[0].shape[1] != vector.shape[-1]:
        return None
    weights, bias, classes = model
    return classes[int(np.argmax(weights @ vector + bias))]


@cache
def _type_model() -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    path = PROMPTS_DIR / "question_types.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return np.asarray(data["weights"], dtype="float32"), np.asarray(data["bias"], dtype="float32"), data["classes"]


def premise_kind(question: str) -> str | None:
    """What a false premise presupposes, when the answer names it: that the illness is in the mind
    ("is it just in my head like my GP says") or that it is lost fitness ("I'm just deconditioned")."""
    return next((kind for kind, patterns in _lexicon()["premise_kinds"].items() if any(p.search(question) for p in patterns)), None)


def asks_yes_no(question: str) -> bool:
    """The question asks yes or no ("is it all in my head?", "does LDN help?"), and not about one
    person ("do I have POTS?") nor to explain ("can someone explain what happens in a crash?")."""
    lex = _lexicon()
    return bool(lex["yes_no"].search(question)) and not lex["personal"].search(question) and not lex["open_ended"].search(question)


def technical_name(subject: str) -> bool:
    """A loosely worded subject that is one drug or compound name, perhaps with its dose word ("low-dose
    aripiprazole", "ivabradine"): it reads as a name, so the sentence names it instead of "this"."""
    from wordfreq import zipf_frequency

    *dose, name = subject.lower().split() or [""]
    return dose in ([], ["low-dose"], ["high-dose"]) and bool(name) and zipf_frequency(name, "en") < 2.5


def denies_premise(question: str) -> bool:
    """The question itself denies the premise it reports ("is there research showing it's not just
    deconditioning?"), so "No." would answer the wrong thing."""
    return bool(_lexicon()["premise_denied"].search(question))


@cache
def topic_terms() -> frozenset[str]:
    """Lexicon terms that name a topic of their own ("pregnancy", "stem cell therapy"), not a condition
    or a context: a question about one that no study mentions has nothing in the library."""
    lex = _lexicon()
    return frozenset({value for _, value in lex["terms"]} - lex["conditions"] - lex["context"])


def context_terms() -> set[str]:
    """Lexicon terms that set a question's context rather than its subject ("children", "how common")."""
    return _lexicon()["context"]


def condition_terms() -> set[str]:
    """Lexicon terms that name a condition or symptom ("POTS", "brain fog"), never a treatment."""
    return _lexicon()["conditions"]


def warm_sentence() -> str:
    return _lexicon()["warm"]


GENERIC = {"me/cfs", "cfs", "me", "myalgic", "encephalomyelitis", "chronic", "fatigue", "syndrome", "long", "covid",
           "study", "studies", "research", "evidence", "patients", "illness", "disease", "treatment", "work", "works"}


def _subject(named: list[str], kept: list[str]) -> str:
    """The subject as it can be named in an answer: a mapped term when the question used one, else
    the question's remaining content words (at most five)."""
    if named:
        return named[0]
    words = [w for w in kept if w.lower() not in GENERIC and len(w) > 2]
    return " ".join(words[:5]) or "this"
