"""Stage 8, verify: is every sentence of the bottom line and short answer traceable, and is its wording
no stronger than the evidence? Returns the problems; the composer drops what fails (and an LLM
writer's text is replaced by the deterministic one)."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property

import numpy as np

from .evidence import EvidenceSet
from .prompts import table
from .store import ScoredUnit, UnitId
from .study import Role

CERTAINTY_WORDS = ("prove", "proves", "proved", "proven", "proof", "cure", "cures", "cured", "cause",
                   "causes", "caused", "causing", "confirm", "confirms", "confirmed", "definitely",
                   "definitive", "certainly", "undoubtedly", "guarantees")
CITATION = re.compile(r"\[(\d+)\]")
# Where a sentence joins two statements that each stand alone: a colon or semicolon, or ", but".
CLAUSES = re.compile(r"[:;]\s+|,\s+but\s+")


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"“])", text.strip()) if s]


def overclaims(text: str, source_texts: list[str]) -> list[str]:
    """Certainty words in `text` that none of the given source texts uses (the wording-risk check)."""
    said = set(re.findall(r"[a-z]+", " ".join(source_texts).lower()))
    used = re.findall(r"[a-z]+", text.lower())
    return sorted({w for w in used if w in CERTAINTY_WORDS and w not in said})


def problems(sentence: str, evidence: EvidenceSet, fixed: list[str]) -> list[str]:
    """What is wrong with one sentence: a citation to no source, no citation (unless a fixed sentence
    from prompts/), or a certainty word that the cited studies do not state as an observed finding."""
    numbers = {s.n: s for s in evidence.studies}
    cited = [int(n) for n in CITATION.findall(sentence)]
    found = []
    if any(n not in numbers for n in cited):
        found.append("cites a source that is not in the answer")
    if not cited and sentence not in fixed:
        found.append("no citation")
    observed = [u.text for n in cited if n in numbers for u in numbers[n].units.get(Role.OBSERVED, [])]
    # Quoted limits may use "prove" ("does not prove"): only the writer's own words are checked.
    own = sentence.split(": ", 1)[0] if "cannot tell you" in sentence else sentence
    if words := overclaims(own, observed):
        found.append(f"certainty words the cited findings do not use: {', '.join(words)}")
    return found


def verified(text: str, evidence: EvidenceSet, fixed: list[str]) -> str:
    """The text without its failing sentences."""
    return " ".join(s for s in sentences(text) if not problems(s, evidence, fixed))


# ---- The sentence verifier for generated text (an LLM writer's bottom line and short answer) ----
#
# Every generated sentence must rest on the units it was given: cite only supplied sources, carry no
# number or name the units lack, have its content words covered by the units (stems and glossary
# groups), sit close to a unit in embedding space, keep the unit's negation and direction, keep an
# inferred claim hedged, never turn a limit into a finding, use no certainty or causal word the units
# do not, and not contradict the verdict. Its citations are then re-derived from the units it rests on.


INTENSIFIED = re.compile(r"\b(more|less|most|least)\s+(?=(?!likely\b)\w+ly\b|well\b)", re.I)
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
WORD = re.compile(r"[^\W_][\w/'-]*")  # any script's letters: "Røysumtunet" is one word, not "r" and "ysumtunet"


@dataclass
class Check:
    """The verifier's word on one sentence: kept or not, why, and what it rests on."""
    text: str  # the sentence, its citations re-derived when kept
    kept: bool
    reasons: list[str] = field(default_factory=list)
    units: list[UnitId] = field(default_factory=list)
    citations: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Supply:
    """A unit given to the writer, with the citation number of its study."""
    n: int
    role: Role
    unit: ScoredUnit


@cache
def _lexicon() -> dict:
    spec = table("llm")["verify"]
    rx = {k: re.compile(spec[k], re.I) for k in ("negation", "keeps_negation", "hedge", "limit", "never", "causal",
                                                  "forbidden", "benefit", "harm", "established", "found", "denial", "result")}
    rx |= {k: re.compile(spec["opposites"][k], re.I) for k in ("comparatives", "sameness", "up", "down")}
    opposites: dict[str, set[str]] = {}
    for a, b in spec["opposites"]["pairs"]:
        opposites.setdefault(a, set()).add(b)
        opposites.setdefault(b, set()).add(a)
    return {**rx, "opposites": opposites, "designs": spec["designs"],
            "rare": spec["rare"], "uncommon": spec["uncommon"], "uncommon_count": spec["uncommon_count"],
            "contradicts": {k: [re.compile(p, re.I) for p in v] for k, v in spec["contradicts"].items()},
            "plain": set(spec["plain"]["words"].split()), "function": set(spec["plain"]["function_words"].split())}


# Just before a design word: it is denied, not given to a source ("no trial", "none of these studies", "not a review").
NO_SUCH = re.compile(r"\b(no|not an?|none of (the|these|those)|without an?|never an?)\s+(\w+\s+)?$", re.I)
NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
                                                     "seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100"}


def _numbers(text: str) -> set[str]:
    """The numbers a text states, in digits ('Seventeen' and 'Thirty-one' too)."""
    found = {n.replace(",", "") for n in NUMBER.findall(text)}
    for tens, ones in re.findall(r"\b(twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)-(one|two|three|four|five|six|seven|eight|nine)\b", text, re.I):
        found.add(str(int(NUMBER_WORDS[tens.lower()]) + int(NUMBER_WORDS[ones.lower()])))
    found |= {NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", text.lower()) if w in NUMBER_WORDS}
    return found


def _stated(body: str) -> set[str]:
    """The numbers a sentence states, in digits or words ("two studies"; zero and one are not figures)."""
    return {n.replace(",", "") for n in NUMBER.findall(body)} | (_numbers(body) - {"0", "1"})


def _shares(numbers: set[str]) -> set[str]:
    """Whole percentages that one stated count makes of another ('7' and '24' give '29')."""
    counts = sorted({int(n) for n in numbers if n.isdigit() and 0 < int(n) < 100000})[:40]
    return {str(round(100 * a / b)) for a in counts for b in counts if a < b}


@cache
def _terms() -> list[tuple[re.Pattern, str]]:
    """Abbreviations and lay words and what studies call them (prompts/understand.toml)."""
    return [(re.compile(p, re.I), words) for p, words in table("understand")["terms"].items()]


@cache
def _stemmer():
    import Stemmer  # PyStemmer (Snowball), already used by BM25

    return Stemmer.Stemmer("english").stemWords


@cache
def _glossary() -> dict[str, frozenset[str]]:
    """Stem of a word -> stems of every word of its glossary groups."""
    stems: dict[str, set[str]] = {}
    for group in table("glossary")["groups"]:
        words = frozenset(_stems(" ".join(group)))
        for w in words:
            stems.setdefault(w, set()).update(words)
    return {k: frozenset(v) for k, v in stems.items()}


def _stems(text: str) -> list[str]:
    return _stemmer()(WORD.findall(text.lower()))


class SentenceVerifier:
    """Checks generated sentences against the units supplied to the writer (one per answer)."""

    # How much closer a unit of an uncited source may be than the best unit of a cited one before the
    # sentence counts as bound to the wrong study (on dev 0.1 dropped 4 more wrong citations, and no
    # faithful sentence, against 0.03-0.06 which dropped 2-3 faithful ones).
    wrong_source_margin = 0.1
    # How close a sentence must be to the verdict sentence to count as saying it again.
    frame_similarity = 0.75

    def __init__(self, evidence: EvidenceSet, supplied: list[Supply], verdict: str, fixed: list[str],
                 embed: Callable[[list[str]], np.ndarray], min_similarity: float, min_coverage: float):
        self.evidence, self.supplied, self.verdict, self.fixed = evidence, supplied, verdict, fixed
        self.embed, self.min_similarity, self.min_coverage = embed, min_similarity, min_coverage
        self.vectors = embed([s.unit.text for s in supplied]) if supplied else np.zeros((0, 1))
        question = evidence.understanding
        lex = _lexicon()
        self.asked = set(_stems(f"{question.subject} {question.search_text} {evidence.question}"))
        self.free = self.asked | set(_stemmer()(list(lex["plain"])))
        self.function = set(_stemmer()(list(lex["function"]))) | lex["function"]
        self.studies = {s.n: s for s in evidence.studies}

    @staticmethod
    def body(sentence: str) -> str:
        """The sentence without its citation markers (what is compared with the units)."""
        return re.sub(r"\s+([.,;:!?])", r"\1", CITATION.sub("", " ".join(sentence.split()))).strip()

    def check(self, sentence: str, vector: np.ndarray | None = None) -> Check:
        """The verdict on one sentence; `vector` is its body's embedding when already computed. A
        sentence that joins a verdict to a finding ("It may help, but the evidence is early: in one trial
        of 91 people, symptoms fell more [1].") sits near no single unit as a whole; it is kept when
        each of its clauses, checked alone with the sentence's citations, is."""
        whole = self._check_whole(sentence, vector)
        clauses = [c.strip(" ,") for c in CLAUSES.split(self.body(sentence)) if c.strip(" ,")]
        if whole.kept or len(clauses) < 2 or whole.reasons == ["no citation"]:
            return whole
        marks = "".join(f"[{n}]" for n in sorted({int(x) for x in CITATION.findall(sentence)}))
        parts = [self._check_whole(f"{c} {marks}.") for c in clauses]
        if not all(p.kept for p in parts):
            return whole
        cites = sorted({n for p in parts for n in p.citations})
        return Check(_recite(self.body(sentence), cites), True, [], [u for p in parts for u in p.units], cites)

    def _check_whole(self, sentence: str, vector: np.ndarray | None = None) -> Check:
        sentence = " ".join(sentence.split())
        if sentence in self.fixed:
            return Check(sentence, True)
        given = {int(x) for x in CITATION.findall(sentence)}
        body = self.body(sentence)
        if reasons := self._form(sentence, body, given):
            return Check(sentence, False, reasons)
        vector = vector if vector is not None else self.embed([body])[0]
        similarity = self.vectors @ vector
        if self._restates_verdict(body, vector, given):
            # It rests on the verdict, and through it on each cited source's unit closest to it.
            closest: dict[int, Supply] = {}
            for i in np.argsort(-similarity):
                closest.setdefault(self.supplied[i].n, self.supplied[i])
            units = [closest[n] for n in sorted(given) if n in closest]
            return Check(_recite(body, [s.n for s in units]), True, [], [s.unit.id for s in units], [s.n for s in units])
        near = [i for i in np.argsort(-similarity) if similarity[i] >= self.min_similarity]
        if not near:
            best = float(similarity.max()) if len(similarity) else 0.0
            return Check(sentence, False, [f"not close to any supplied unit (best similarity {best:.2f})"])
        support = [self.supplied[i] for i in near]
        if not given & {s.n for s in support}:  # the model's citations are re-derived, but not from nothing
            return Check(sentence, False, [f"none of the cited sources {sorted(given)} has a unit that supports it"])
        rests = self._rests_on(body, support, similarity[near])
        # The model's numbers are re-derived, but a sentence that rests on another source than the one it
        # cites was bound to the wrong study ("the review found" a trial's result).
        cited_best = max(similarity[i] for i in near if self.supplied[i].n in given)
        if rests.n not in given and cited_best < similarity[near][0] - self.wrong_source_margin:
            return Check(sentence, False, [f"rests on source [{rests.n}], not on the cited {sorted(given)}"])
        close = [s for s, score in zip(support, similarity[near]) if score >= similarity[near][0] - 0.08]
        # Directions are compared within the sources the sentence names, when it names supplied ones.
        named = [s for s in support if s.n in given] or support
        agreeing = [s for s in self.supplied if s.n in given] or support
        reasons = (self._support(body, support) + self._stance(body, rests, close, support, named, agreeing)
                   + self._wording(body, support))
        if reasons:
            return Check(sentence, False, reasons)
        cites = sorted({s.n for s in support[:3]})
        return Check(_recite(body, cites), True, [], [s.unit.id for s in support[:3]], cites)

    def _restates_verdict(self, body: str, vector: np.ndarray, given: set[int]) -> bool:
        """A sentence that says again, in its own words, what the verdict sentence says ("There is only
        early evidence on vitamin D, and it is not enough to be sure"): close to it, every content word
        and number in it or in the cited sources' units, and no certainty, cause or contradiction."""
        frames = [f for f in self.fixed if f]
        if not frames or max(float(v @ vector) for v in self._frame_vectors) < self.frame_similarity:
            return False
        cited = [s for s in self.supplied if s.n in given]
        said = " ".join([*frames, *(s.unit.text for s in cited)]).lower()
        stems = set(_stems(said))
        allowed = _numbers(said) | _numbers(self.evidence.question) | {str(i) for i in range(len(self.studies) + 1)}
        return (all(self._covered(w, stems) for w in self._content_words(body)) and _stated(body) <= allowed
                and all(self._named(name, said, stems) for name in _names(body)) and not self._wording(body, cited))

    @cached_property
    def _frame_vectors(self) -> np.ndarray:
        return self.embed([f for f in self.fixed if f])

    @staticmethod
    def _rests_on(body: str, support: list[Supply], scores: np.ndarray, margin: float = 0.1) -> Supply:
        """The unit a sentence is taken from: the closest, or an observed finding nearly as close or
        sharing a figure with it (a plain statement of a finding may sit near the authors' comment
        on it too)."""
        figures = set(NUMBER.findall(body))
        observed = [s for s, score in zip(support, scores) if s.role == Role.OBSERVED
                    and (score >= scores[0] - margin or figures & set(NUMBER.findall(s.unit.text)))]
        return observed[0] if observed else support[0]

    def _form(self, sentence: str, body: str, given: set[int]) -> list[str]:
        reasons = []
        if not given:
            reasons.append("no citation")
        if given - set(self.studies):
            reasons.append(f"cites a source that was not supplied: {sorted(given - set(self.studies))}")
        if _lexicon()["forbidden"].search(sentence):
            reasons.append("contains an address or markup")
        if not WORD.search(body.lower()):
            reasons.append("no words")
        return reasons

    def _support(self, body: str, support: list[Supply]) -> list[str]:
        """Numbers, names, designs and content words of the sentence must be in the supporting units."""
        cited = {s.n for s in support}
        studies = [self.studies[n] for n in sorted(cited)]
        said = " ".join(s.unit.text for s in support).lower()
        # The writer is given each source's title and participants too: the names in them ("COVID-19",
        # "post-COVID") and the words that say how it was done ("randomised", "pilot") may be used.
        titled = " ".join([said, *(f"{e.study.title} {e.study.participants or ''}" for e in studies)]).lower()
        # A figure or a name may come from any unit given for the studies the sentence rests on.
        given = " ".join(s.unit.text for s in self.supplied if s.n in cited)
        named = f"{titled} {given.lower()}"
        reasons = []
        allowed = _numbers(given) | _numbers(self.evidence.question) | {str(s.profile.participants) for s in studies}
        stated = _stated(body)
        allowed |= _shares(stated & allowed)  # "seven of 24 (about 29%)": the share of two counts it states
        allowed |= {str(i) for i in range(len(self.studies) + 1)}  # "two studies" when two were given
        reasons += [f"number {n} is not in the cited units" for n in sorted(stated - allowed)]
        unit_stems = set(_stems(said))
        words = self._content_words(body)
        uncovered = [w for w in words if not self._covered(w, unit_stems)]
        if words and 1 - len(uncovered) / len(words) < self.min_coverage:
            reasons.append(f"words not in the cited units: {', '.join(sorted(set(uncovered)))}")
        # A rare word from a cited source's title (which the writer is given) names nothing new.
        elif specific := _specific(body, set(uncovered) - set(_stems(" ".join(e.study.title for e in studies))),
                                   bool(_lexicon()["hedge"].search(body))):
            reasons.append(f"says what the cited units do not: {', '.join(specific)}")
        reasons += [f"name {name} is not in the cited units" for name in _names(body) if not self._named(name, named, unit_stems)]
        designs = {s.profile.design or "other" for s in studies}
        for word, kinds in _lexicon()["designs"].items():
            # "No trial here has tested it" says what is missing; it calls no source a trial.
            called = [m for m in re.finditer(rf"\b{word}\b", body, re.I) if not NO_SUCH.search(body[:m.start()])]
            if called and not designs & set(kinds) and not re.search(rf"\b{word}", titled):
                reasons.append(f"calls a source a {word}, which it is not")
        return reasons

    def _content_words(self, body: str) -> list[str]:
        return [w for w in _stems(body) if not w.isdigit() and len(w) > 2 and w not in self.function and w not in NUMBER_WORDS]

    def _covered(self, stem: str, unit_stems: set[str]) -> bool:
        """In the units (or a word sharing its first five letters: 'weaken' for 'weaker'), in the
        question, a plain word, or a glossary word for one in the units."""
        return (stem in unit_stems or stem in self.free or bool(_glossary().get(stem, frozenset()) & unit_stems)
                or len(stem) >= 5 and any(u.startswith(stem[:5]) for u in unit_stems))

    def _named(self, name: str, said: str, unit_stems: set[str]) -> bool:
        """A name is supported when the units, the question, the glossary or the terms lexicon carry it."""
        if name.lower() in said or name.lower() in self.evidence.question.lower():
            return True
        parts = [p for p in re.split(r"[-/]", name) if len(p) > 2]
        if parts and all(p.lower() in said for p in parts):
            return True
        expansions = " ".join(words for pattern, words in _terms() if pattern.search(name))
        stems = set(_stems(f"{name} {expansions}"))
        return any(s in self.asked or (self._covered(s, unit_stems) and s not in self.free) for s in stems)

    def _stance(self, body: str, unit: Supply, close: list[Supply], support: list[Supply], named: list[Supply],
                agreeing: list[Supply]) -> list[str]:
        """Negation, direction and role of the sentence against the unit it rests on (and, for
        direction and benefit, the units nearly as close; for what a named thing did, the near units of
        the sources the sentence cites)."""
        lex, text = _lexicon(), unit.unit.text
        reasons = []
        if lex["negation"].search(text) and not (lex["negation"].search(body) or lex["keeps_negation"].search(body)):
            reasons.append("drops the negation of the unit it rests on")
        close = [c for c in close if c in named] or close
        if flipped := next((f for f in (_opposed(body, c.unit.text) or _swapped(body, c.unit.text) for c in close) if f), "") \
                or _misbound(body, named, agreeing):
            reasons.append(f"turns the finding around ({flipped})")
        if denied := _denies(body, unit):
            reasons.append(f"denies what the unit it rests on reports ({denied})")
        # A claim of benefit or harm rests on an observed finding that reports one (or, hedged, on the
        # authors' view).
        grounds = support if lex["hedge"].search(body) else [c for c in support if c.role == Role.OBSERVED]
        for claim in ("benefit", "harm"):
            if _unnegated(lex[claim], body, uncertain=True) and not any(lex[claim].search(c.unit.text) for c in grounds):
                reasons.append(f"claims a {claim} that the unit it rests on does not report")
        if unit.role == Role.INFERRED and not lex["hedge"].search(body):
            reasons.append("states the authors' inference as a finding (hedge dropped)")
        # What a study does not show, retold as what it found ("does not show that it is inherited" ->
        # "the study found that it is not inherited"): a limit word alone does not make it a limit.
        if unit.role in (Role.NOT_PROVEN, Role.OPEN_QUESTION) and (
                not (lex["limit"].search(body) or lex["hedge"].search(body)) or _unnegated(lex["found"], body)):
            reasons.append("states what the study does not prove as a finding")
        return reasons

    def _wording(self, body: str, support: list[Supply]) -> list[str]:
        """Certainty and cause words, and claims that contradict the verdict."""
        lex = _lexicon()
        observed = " ".join(s.unit.text for s in support if s.role == Role.OBSERVED)
        every = " ".join(s.unit.text for s in support)
        hedged = bool(lex["hedge"].search(body))
        reasons = [f"certainty word: {w}" for w in _unnegated(lex["never"], body)]
        reasons += [f"presents as established what the findings do not: {w}" for w in _unnegated(lex["established"], body)
                    if not _uses(observed, w.split()[0])]
        # A hedged sentence ("the authors think it may add to…") may word a causal idea its units hold.
        hedged_cause = hedged and bool(lex["causal"].search(every) or re.search(r"\b(contribut|driv|caus|link|explain|attribut|reflect|role|sign of|interpret)", every, re.I))
        reasons += [f"causal word the cited findings do not use: {w}" for w in _unnegated(lex["causal"], body)
                    if not _uses(observed, w) and not hedged_cause]
        for pattern in lex["contradicts"].get(self.verdict, []):
            if _unnegated(pattern, body):
                reasons.append(f"contradicts the verdict ({self.verdict})")
                break
        return reasons


def _opposed(body: str, text: str) -> str:
    """'higher / lower' when the sentence says a word its unit lacks and the unit says its opposite,
    or the unit finds no difference and the sentence states one."""
    lex = _lexicon()
    for manner in INTENSIFIED.finditer(body):  # "more efficiently" for "less efficiently"
        word = body[manner.end():].split()[0].lower()
        other = {"more": "less", "less": "more", "most": "least", "least": "most"}[manner.group(1).lower()]
        if re.search(rf"\b{other}\s+{re.escape(word)}", text, re.I) and not re.search(rf"\b{manner.group(1)}\s+{re.escape(word)}", text, re.I):
            return f"{manner.group(1).lower()} {word} / {other} {word}"
    body = INTENSIFIED.sub(" ", body)  # "more slowly", "less well": manner, not amount
    ups, downs = (len(lex[side].findall(body)) for side in ("up", "down"))
    if (ups >= 2 and not downs or downs >= 2 and not ups) and lex["up"].search(text) and lex["down"].search(text) \
            and not lex["sameness"].search(text):
        return "one direction of two dropped"
    if lex["sameness"].search(text) and not (lex["sameness"].search(body) or lex["negation"].search(body)) \
            and (comparative := lex["comparatives"].search(body)):
        return f"{comparative.group(0)} / {lex['sameness'].search(text).group(0)}"
    said = set(re.findall(r"[a-z]+", body.lower()))
    unit = set(re.findall(r"[a-z]+", text.lower()))
    for word in sorted(said - unit):
        for opposite in sorted(_lexicon()["opposites"].get(word, set()) & (unit - said)):
            return f"{word} / {opposite}"
    return ""


def _denies(body: str, unit: Supply) -> str:
    """'reported no effect' where the observed unit reports 'significant effects': a negation right
    before a word that the unit, which negates nothing, states; or a result denied outright ('did
    not change', 'no significant link') where the unit reports a change, a link or a difference."""
    lex, text = _lexicon(), unit.unit.text
    if unit.role != Role.OBSERVED or lex["negation"].search(text) or lex["sameness"].search(text):
        return ""
    if (denial := lex["denial"].search(body)) and lex["result"].search(text):
        return denial.group(0)
    stems = _stems(text)
    for match in re.finditer(r"(\w+)\s+(?:no|not|never)\s+((?:\w+\s+){0,1}\w+)", body, re.I):
        words = [w for w in _stems(match.group(2)) if len(w) > 3 and w not in lex["function"]]
        verb = _stems(match.group(1))
        if words and verb and any(stems[i:i + 4].count(words[-1]) for i, s in enumerate(stems) if s == verb[0]):
            return match.group(0)
    return ""


def _misbound(body: str, near: list[Supply], others: list[Supply]) -> str:
    """A thing bound to the opposite direction in a near unit and to the same direction in no unit
    near or of a cited source ('NK cells were higher' where the units say they were lower)."""
    against = [f for f in (_rebound(body, s.unit.text) for s in near) if f]
    return against[0] if against and not any(_rebound(body, s.unit.text, agree=True) for s in near + others) else ""


def _rebound(body: str, text: str, window: int = 4, agree: bool = False) -> str:
    """Directions bound to the wrong thing: 'higher stroke volume' for 'lower stroke volume' when the
    unit also has a 'higher' elsewhere (with `agree`, the same direction bound to the same thing)."""
    lex = _lexicon()

    def tokens(t: str) -> list[str]:  # "NK-cell" and "NK cells" name one thing
        words = re.findall(r"[a-z0-9+]+", t.lower())
        return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") and w not in lex["function"]
                and not (lex["up"].fullmatch(w) or lex["down"].fullmatch(w)) else w for w in words]

    a, b = tokens(body), tokens(text)

    def side(tokens: list[str], i: int) -> str:
        near = sorted((abs(j - i), j) for j in range(max(0, i - window), min(len(tokens), i + window + 1)) if j != i)
        for _, j in near:
            if lex["up"].fullmatch(tokens[j]):
                return "up"
            if lex["down"].fullmatch(tokens[j]):
                return "down"
        return ""

    def content(word: str) -> bool:
        return len(word) > 1 and word not in skip and not (lex["up"].fullmatch(word) or lex["down"].fullmatch(word))

    # Things are named by two content words in a row ("stroke volume", "NK cells"), found in both texts.
    skip = lex["function"] | {"patients", "people", "controls", "healthy", "participants", "group", "groups", "than"}
    pairs_b = {(b[j], b[j + 1]): j for j in range(len(b) - 1) if content(b[j]) and content(b[j + 1])}
    for i in range(len(a) - 1):
        if (a[i], a[i + 1]) in pairs_b:
            mine, theirs = side(a, i), side(b, pairs_b[(a[i], a[i + 1])])
            if mine and theirs and (mine == theirs) == agree:
                return f"{a[i]} {a[i + 1]}: {mine} / {theirs}"
    return ""


def _swapped(body: str, text: str) -> str:
    """A pair of opposites in swapped order ('men more than women' for 'women more than men')."""
    a, b = re.findall(r"[a-z0-9+-]+", body.lower()), re.findall(r"[a-z0-9+-]+", text.lower())
    for x, y in ((x, y) for x, ys in _lexicon()["opposites"].items() for y in ys if x < y):
        once = all(t.count(w) == 1 for t in (a, b) for w in (x, y))
        if once and (a.index(x) < a.index(y)) != (b.index(x) < b.index(y)):
            return f"{x} and {y} swapped"
    return ""


def _specific(body: str, uncovered: set[str], hedged: bool) -> list[str]:
    """Words the units lack that are rare in everyday English: they name something new (a drug, a
    group, a result). Frequencies from wordfreq, which ships its data (nothing is downloaded). A
    hedged sentence (the authors' view, in other words) is held to the rare-word test only."""
    from wordfreq import zipf_frequency

    lex = _lexicon()
    words = {w for w in re.findall(r"(?<![A-Za-z])[a-z][a-z-]+", body) if not w.endswith("ly") and _stems(w) and _stems(w)[0] in uncovered}
    rare = sorted(w for w in words if zipf_frequency(w, "en") < lex["rare"])
    uncommon = sorted(w for w in words if zipf_frequency(w, "en") < lex["uncommon"])
    return rare or (uncommon if len(uncommon) >= lex["uncommon_count"] and not hedged else [])


def _uses(text: str, word: str) -> bool:
    """Whether `text` uses `word` or a form of it ('trigger' for 'triggered')."""
    return bool(re.search(rf"\b{re.escape(word[:max(4, len(word) - 2)])}", text, re.I))


def _unnegated(pattern: re.Pattern, text: str, uncertain: bool = False) -> list[str]:
    """Matches of `pattern` with no negation before them in the same clause ("does not prove that
    it causes" is negated; "it helps, but nothing causes" is not); with `uncertain`, "hard to say
    whether it helped" does not claim it either."""
    found, lex = [], _lexicon()
    for match in pattern.finditer(text):
        clause = re.split(r"[;:]|,\s*but\b|\bbut\b|\bwhile\b|\bwhereas\b", text[:match.start()], flags=re.I)[-1]
        if not (lex["negation"].search(clause) or uncertain and lex["keeps_negation"].search(clause)):
            found.append(match.group(0).lower())
    return found


def _names(text: str) -> list[str]:
    """Names and abbreviations: capitalised words after the first, and words with capitals or digits
    inside ('IL-6', 'CD8', 'DecodeME', 'LDN')."""
    names = []
    for i, token in enumerate(re.findall(r"[A-Za-z][\w/-]*", text)):
        if token.upper() == "ME/CFS" or token == "I":
            continue
        if (i > 0 and token[0].isupper()) or re.search(r"[a-z][A-Z]|[A-Z]{2,}|\d", token):
            names.append(token)
    return names


def _recite(body: str, cites: list[int]) -> str:
    """The sentence with the citations it was found to rest on, before its final stop."""
    marks = "".join(f"[{n}]" for n in cites)
    body = body.rstrip()
    end = body[-1] if body and body[-1] in ".!?" else "."
    return f"{body.rstrip('.!?').rstrip()} {marks}{end}"
