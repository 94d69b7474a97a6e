"""Stage 6, evidence: what the retrieved studies say about the question, ranked once.

An `EvidenceSet` holds, per cited study, its units per role (ranked by similarity to the question) and
its profile: design, participants, PEM criterion, whether it tested the subject itself, and the
direction of its relevant finding. Compose, verify and the writers read only this; the verdict and
the disagreements are derived from the profiles."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache

import numpy as np

from .prompts import table
from .store import ScoredUnit, UnitStore
from .study import Role, Study
from .understand import GENERIC, Understanding, context_terms, synonyms

POSITIVE = {"benefit", "higher", "lower", "present"}
CAUSAL_CUES = re.compile(r"\b(caus\w*|prov\w*|proof|because|due to|responsib\w*|lead\w* to|trigger\w*|"
                         r"root|origin|primary|secondary|consequence)\b", re.I)
NEGATIVE = {"no_benefit", "no_difference", "absent"}
WEAK = {"present", "unclear"}  # says that something was found, not which way
TRIALS = ("rct", "non-randomised-trial")  # designs that test a treatment against a comparison
VERSUS = {"benefit", "no_benefit", "no_difference", "harm"}  # what a comparison says about a treatment
PEOPLE = r"(people|patients|participants|adults|children|adolescents|controls|cases|women|men|volunteers|individuals|cell lines|lines|veterans|mice|survivors)"


# A planned study leads when it names at least this share of the subject and no study with results names
# as much as RESULTS_COVERAGE of it (wearables, tests at home: the labellers call these not_studied;
# "is there a blood test yet" stays with the studies that tested blood markers).
PLANNED_COVERAGE, RESULTS_COVERAGE = 0.35, 0.3


@dataclass
class Profile:
    design: str | None
    participants: int | None
    pem: str
    tested: bool
    direction: str
    finding: ScoredUnit | None
    prevention: bool = False  # a trial that gave the treatment early in an infection, to prevent long COVID
    coverage: float = 0.0  # the share of the subject's words that its title, summary and finding use
    aside: bool = False  # about treating something, for a question that is not about treatment


@dataclass
class StudyEvidence:
    study: Study
    n: int  # the citation number
    relevance: float
    units: dict[Role, list[ScoredUnit]]
    profile: Profile

    def top(self, role: Role, k: int) -> list[ScoredUnit]:
        return self.units.get(role, [])[:k]

    def limits(self, causal: bool) -> list[ScoredUnit]:
        """The study's own limits, most relevant first; for a causal question those about cause first."""
        said = self.units.get(Role.NOT_PROVEN, [])
        return sorted(said, key=lambda u: not CAUSAL_CUES.search(u.text)) if causal else said


@dataclass
class EvidenceSet:
    question: str
    understanding: Understanding
    studies: list[StudyEvidence] = field(default_factory=list)

    @property
    def tested(self) -> list[StudyEvidence]:
        """Studies that tested or measured the subject: those that name most of it first, then in the
        order they are cited, which ranks them by their units (a probiotic pilot before a microbiome
        survey for "could probiotics help"; on dev the bottom line's lead was a key study 402 times of
        530 this way against 380 when a study with a clear direction came first, and 748 of 972 against
        741 when the retriever's score broke ties: "how often does ME follow covid" leads with the cohort
        that counted it, not a treatment survey)."""
        tested = [s for s in self.studies if s.profile.tested]
        # For a question about a named treatment, a trial of it before a survey that names it as often
        # ("what do other patients say helps" is the survey's question, and stays so).
        u = self.understanding
        trial_first = u.question_type == "treatment" and u.named and u.subject not in context_terms()
        # A narrative review speaks for studies it did not run: it leads only when none with data does.
        return sorted(tested, key=lambda s: (s.profile.aside, s.profile.design == "review", -round(s.profile.coverage, 1),
                                             trial_first and s.profile.design not in TRIALS, s.n))

    @property
    def planned(self) -> StudyEvidence | None:
        """A planned study with no results that the question is plainly about: cited first, naming the
        subject, when no study with results does ("can a smartwatch warn me before a crash" is the
        wearables protocol's question, not a metabolomics study's). Nothing here has answered it yet,
        and the answer says so rather than quote a side study."""
        first = self.studies[0] if self.studies else None
        if first is None or first.profile.design != "protocol" or first.profile.coverage < PLANNED_COVERAGE:
            return None
        with_data = [s.profile.coverage for s in self.tested if s.profile.design != "review"]  # a review has no results of its own
        return first if max(with_data, default=0.0) < RESULTS_COVERAGE else None

    @property
    def lead(self) -> StudyEvidence:
        """The study the answer rests on: the first that tested the subject, else the first cited."""
        return (self.tested or self.studies)[0]


@cache
def _spec() -> dict:
    spec = table("evidence")
    return {"directions": [(name, [re.compile(p, re.I) for p in patterns]) for name, patterns in spec["directions"].items()],
            "controlled": set(spec["profile"]["controlled"]), "untested": set(spec["profile"]["untested"]),
            "dangling": re.compile(spec["profile"]["dangling"], re.I),
            "method_like": re.compile(spec["profile"]["method_like"], re.I),
            "method_report": re.compile(spec["profile"]["method_report"], re.I),
            "side_outcome": re.compile(spec["profile"]["side_outcome"], re.I),
            "side_asked": re.compile(spec["profile"]["side_asked"], re.I),
            "link": re.compile(spec["profile"]["link"], re.I),
            "comparator": re.compile(spec["profile"]["comparator"], re.I),
            "not_tested": re.compile(spec["profile"]["not_tested"], re.I),
            "treatment_title": re.compile(spec["profile"]["treatment_title"], re.I),
            "diagnostic_asked": re.compile(spec["profile"]["diagnostic_asked"], re.I),
            "broad_glossary": spec["profile"]["broad_glossary"],
            "prevention": re.compile(spec["profile"]["prevention"], re.I),
            "prevention_asked": re.compile(spec["profile"]["prevention_asked"], re.I),
            "trial_asked": re.compile(spec["profile"]["trial_asked"], re.I)}


def gather(understanding: Understanding, query: np.ndarray, hits, store: UnitStore, max_studies: int,
           margin: float = 0.12) -> EvidenceSet:
    """The studies that speak to the subject (best first, a weak match only when nothing better),
    each with its units ranked by similarity to the question and its profile."""
    evidence = EvidenceSet(understanding.search_text, understanding)
    terms = subject_terms(understanding)
    if not hits:
        return evidence
    treatment = understanding.question_type == "treatment"
    aside = {h.study.id for h in hits if not treatment and about_treatment(h.study)}
    best = max((h.relevance for h in hits if h.study.id not in aside), default=max(h.relevance for h in hits))
    units = {h.study.id: {role: store.units(h.study.id, role, query) for role in Role} for h in hits}
    speaking = [h for h in hits if mentions(h.study, units[h.study.id], terms)] or hits[:1]
    chosen = [h for h in speaking if h.relevance >= best - margin or h is speaking[0]][:max_studies]
    side_ok = side_asked(understanding)
    for n, hit in enumerate(chosen, start=1):
        own = units[hit.study.id]
        evidence.studies.append(StudyEvidence(hit.study, n, hit.relevance, own,
                                              replace(profile(hit.study, own, terms, treatment, side_ok),
                                                      aside=hit.study.id in aside)))
    return evidence


def about_treatment(study: Study) -> bool:
    """A trial, or a study whose title is about treating something ('treatment of postural orthostatic
    tachycardia syndrome')."""
    return study.study_type in TRIALS or bool(_spec()["treatment_title"].search(study.title))


@dataclass(frozen=True)
class Terms:
    """What 'speaks to the subject' means: the words of a named subject ('low-dose naltrexone', not
    'low-dose rapamycin'; all but one of three or more), or a lexicon pattern for it ('PEM' speaks to
    post-exertional malaise), or any content word of a loosely worded one."""
    words: frozenset[str]
    every: bool
    patterns: tuple[re.Pattern, ...] = ()
    head: str = ""  # a loose subject's first word, its most specific one ("metformin help long covid")

    def found_in(self, text: str) -> bool:
        if not self.words:
            return True
        hits = self._hits(text)
        if not self.every:
            return bool(hits)
        needed = len(self.words) - 1 if len(self.words) >= 3 else len(self.words)
        return len(hits) >= needed or any(p.search(text) for p in self.patterns)

    def coverage(self, text: str) -> float:
        """How much of the subject a text names: 'plasma cell depletion' is named more by a study of
        daratumumab and plasma cells than by a survey that lists forty treatments."""
        if not self.words:
            return 0.0
        return 1.0 if any(p.search(text) for p in self.patterns) else len(self._hits(text)) / len(self.words)

    def _hits(self, text: str) -> list[str]:
        found = {_stem(w) for w in re.findall(r"[a-z0-9][a-z0-9-]+", text.lower())}
        return [w for w in self.words if w in found or _shares_root(w, found)]


# Words of a loosely worded question that say how it is asked, not what about: "any trial evidence for
# X", "whether they work". Left in, "trial" made every trial speak to aripiprazole.
LOOSE_SKIP = {"trial", "trials", "rct", "rcts", "data", "whether", "they", "them", "their", "off", "any", "there", "really",
              "actually", "anything", "something", "does", "did", "work", "worth"}


@lru_cache(maxsize=256)  # read by gather and again by the writer for each finding it weighs
def subject_terms(understanding: Understanding) -> Terms:
    source = understanding.subject if understanding.named else f"{understanding.subject} {understanding.topic}"
    skip = GENERIC if understanding.named else GENERIC | LOOSE_SKIP
    words = {_stem(w) for w in re.findall(r"[a-z0-9][a-z0-9-]+", source.lower()) if w not in skip and len(w) > 2}
    patterns = tuple(synonyms(understanding.subject)) + _study_words(understanding.subject) if understanding.named else ()
    head = _stem(understanding.subject.split()[0].lower()) if understanding.subject and not understanding.named else ""
    return Terms(frozenset(words), understanding.named, patterns, head)


def _study_words(subject: str) -> tuple[re.Pattern, ...]:
    """The words studies use for a named subject's plain words, from prompts/glossary.toml ('brain fog'
    is measured by a study of 'cognitive' fatigue, 'genetics' by a genome-wide one); groups too general
    to mark a subject ('treatment', 'higher') are left out (prompts/evidence.toml)."""
    text, broad = subject.lower(), set(_spec()["broad_glossary"])
    groups = [g for g in table("glossary")["groups"] if g[0] not in broad]
    # Each glossary phrase the subject uses, with where; one inside a longer one does not count
    # ("cognitive" in "cognitive behavioural therapy" is not about thinking).
    spans = [(m.start(), m.end(), i) for i, group in enumerate(groups) for w in group if w not in GENERIC
             for m in re.finditer(rf"\b{re.escape(w)}s?\b", text)]
    used = {i for s, e, i in spans if not any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2, _ in spans)}
    return tuple(re.compile(r"\b(" + "|".join(re.escape(w) for w in groups[i]) + r")s?\b", re.I) for i in sorted(used))


def mentions(study: Study, units: dict[Role, list[ScoredUnit]], terms: Terms) -> bool:
    return terms.found_in(" ".join([study.title, *(u.text for role in (Role.SUMMARY, Role.OBSERVED, Role.INFERRED)
                                                   for u in units.get(role, []))]))


def profile(study: Study, units: dict[Role, list[ScoredUnit]], terms: Terms, treatment: bool = False,
            side_ok: bool = False) -> Profile:
    spec = _spec()
    finding = lead_unit(units.get(Role.OBSERVED, []), terms, treatment, side_ok)
    about = finding is not None and terms.found_in(finding.text) and not spec["not_tested"].search(finding.text)
    # A named subject must be in the study's finding or title; for loosely worded questions the
    # study's best-matching finding is about the question if the study measured anything at all.
    # A study of no named design ("other": muscle biopsies, mice and cell lines in one paper) tested the
    # subject when its own finding is about it; so, as far as early evidence goes, does a narrative review
    # ("how should rehab be adapted for PEM" has a review's framework, not nothing).
    empirical = study.study_type not in spec["untested"] or study.study_type in ("other", "review") and about
    tested = empirical and (about or terms.found_in(study.title) or (not terms.every and finding is not None))
    observed = units.get(Role.OBSERVED, [])
    # Whether a treatment works is decided, in a trial, by its result against the comparison: "fatigue
    # fell after ketamine" is no benefit when "the difference between the two drugs was not
    # statistically significant". That result then leads, so the quote shows what the verdict rests on.
    against = _against_comparison(observed, terms) if treatment and study.study_type in TRIALS else None
    if against and not dangling(against[1].text):
        finding = against[1]
    return Profile(design=study.study_type, participants=participants(study.participants), pem=study.pem.value,
                   tested=tested, finding=finding,
                   direction=against[0] if against else study_direction(observed, finding, terms),
                   prevention=study.study_type in TRIALS and bool(spec["prevention"].search(
                       " ".join([study.title, study.participants or "", *study.items(Role.SUMMARY)]))),
                   coverage=terms.coverage(" ".join([study.title, *study.items(Role.SUMMARY), finding.text if finding else ""])))


def study_direction(units: list[ScoredUnit], finding: ScoredUnit | None, terms: Terms, reach: int = 3) -> str:
    """The direction of the leading finding; when it only says that something was found ("6.3% of the
    metformin group … against 10.4% of the placebo group"), the next findings on the subject can say
    which way ("a 41% lower risk of long COVID with metformin")."""
    first = direction(finding.text) if finding else "unclear"
    if first not in WEAK:
        return first
    on_subject = [u for u in sorted(units, key=lambda u: -u.score) if u is not finding and terms.found_in(u.text)]
    return next((d for u in on_subject[:reach] if (d := direction(u.text)) not in WEAK), first)


def _against_comparison(units: list[ScoredUnit], terms: Terms) -> tuple[str, ScoredUnit] | None:
    """A trial's result against placebo, sham or the other arm, from the findings that name the
    comparison (those on the subject first): no difference there is no benefit, and a benefit on one
    outcome beside none on another is mixed. Higher or lower alone says nothing about better."""
    versus = sorted((u for u in units if _spec()["comparator"].search(u.text)),
                    key=lambda u: (not terms.found_in(u.text), -u.score))
    found = [("no_benefit" if d == "no_difference" else d, u) for u in versus if (d := direction(u.text)) in VERSUS]
    if not found:
        return None
    said = {d for d, _ in found}
    return ("mixed", found[0][1]) if {"benefit", "no_benefit"} <= said else found[0]


def lead_unit(units: list[ScoredUnit], terms: Terms, treatment: bool = False, side_ok: bool = False) -> ScoredUnit | None:
    """The unit that should lead: about the subject, not opening with a dangling 'It' or 'These', not
    how the study went (dropouts, safety) unless that is asked (`side_ok`); for a treatment question,
    the result against a comparison (placebo, sham, usual care) before the rest."""
    comparator, side = _spec()["comparator"], _spec()["side_outcome"]
    head = re.compile(rf"\b{re.escape(terms.head)}", re.I) if len(terms.head) > 3 else None
    # "No included study addressed treating POTS in ME/CFS" says what was not studied: the verdict says that.
    untested = _spec()["not_tested"]
    scored = [(u.score + (0.1 if terms.found_in(u.text) else 0.0)
               - (0.2 if dangling(u.text) or method_like(u.text) or untested.search(u.text) else 0.0)
               - (0.2 if not side_ok and side.search(u.text) else 0.0)
               + (0.1 if head and head.search(u.text) else 0.0)
               + (0.15 if treatment and comparator.search(u.text) else 0.0), u)
              for u in units]
    return max(scored, key=lambda x: x[0])[1] if scored else None


def side_asked(understanding: Understanding) -> bool:
    """The question asks about safety, side effects or how well a treatment is tolerated."""
    return bool(_spec()["side_asked"].search(understanding.search_text))


def dangling(text: str) -> bool:
    """Opens with a word that points back to something the sentence does not name ('It', 'These')."""
    return bool(_spec()["dangling"].match(text))


def method_like(text: str, retold: bool = False) -> bool:
    """Tells how the study was done rather than what it found (no direction can be read from it);
    `retold`: also how its material was handled, which a bottom line never retells as a finding."""
    said = _spec()["method_like"].search(text) or retold and _spec()["method_report"].search(text)
    return bool(said) and direction(text) in WEAK


def direction(text: str) -> str:
    for name, patterns in _spec()["directions"]:
        if any(p.search(text) for p in patterns):
            return name
    return "unclear"


def participants(text: str | None) -> int | None:
    """People counted in a participants line ('46 people with ME/CFS (35 who …), 26 healthy controls' -> 72)."""
    if not text:
        return None
    outside = re.sub(r"\([^)]*\)", " ", text)
    pattern = rf"\b(\d[\d,]*)\s+(?:[\w/-]+\s+){{0,3}}?{PEOPLE}\b"
    counts = [int(m.group(1).replace(",", "")) for m in re.finditer(pattern, outside, re.I)]
    return sum(counts) or None


def verdict(evidence: EvidenceSet) -> str:
    """What the cited evidence supports about the subject (DESIGN.md's table)."""
    spec, kind = _spec(), evidence.understanding.question_type
    if not evidence.studies:
        return "none"
    # A presupposition the studies do not bear out ("it's all in my head", "since ME is just
    # deconditioning") is answered as such even when no study tested its exact words.
    if evidence.understanding.premise:
        return "premise_false"
    tested = evidence.tested
    if not tested or evidence.planned:
        return "not_studied"
    directions = {s.profile.direction for s in tested} - {"unclear"}
    controlled = [s for s in tested if s.profile.design in spec["controlled"]]
    if _opposed(_weighed(controlled, kind)):
        return "mixed"
    if kind == "treatment":
        if spec["trial_asked"].search(evidence.understanding.search_text) and not any(s.profile.design in TRIALS for s in tested):
            return "not_studied"
        trials = [s for s in controlled if s.profile.design == "rct" and not prevention_only(evidence, s)]
        if any(s.profile.direction == "mixed" for s in trials):
            return "mixed"
        if trials and all(s.profile.direction in NEGATIVE | {"harm"} for s in trials):
            return "not_supported"
        large = [s for s in trials if s.profile.direction == "benefit" and (s.profile.participants or 0) >= 100]
        return "supported" if large else "limited"
    # "Is X linked to / behind / why …": a factor found alongside the illness answers it as an
    # association, never as a cause (no study here can show cause without an intervention).
    asks_link = kind == "cause" or kind == "mechanism" and spec["link"].search(evidence.understanding.search_text)
    observational = [s for s in controlled if s.profile.design not in ("rct", "non-randomised-trial")]
    if asks_link and observational and directions & POSITIVE:
        return "associated_not_causal"
    people = sum(s.profile.participants or 0 for s in controlled if s.profile.direction in POSITIVE)
    consistent = len(controlled) >= 3 and directions and directions <= POSITIVE and people >= 300
    # A systematic review whose pooled finding answers the question is more than early evidence.
    pooled = directions and directions <= POSITIVE and any(s.profile.design == "systematic-review" for s in controlled)
    diagnostic = kind == "test" and spec["diagnostic_asked"].search(evidence.understanding.search_text)
    return "supported" if (consistent or pooled) and not diagnostic else "limited"


def prevention_only(evidence: EvidenceSet, study: StudyEvidence) -> bool:
    """A prevention trial answering a question about treating the illness (not about preventing it):
    it does not count as a trial of the treatment (metformin during a fresh COVID infection)."""
    return study.profile.prevention and not _spec()["prevention_asked"].search(evidence.understanding.search_text)


def _opposed(studies: list[StudyEvidence]) -> bool:
    return both_ways({s.profile.direction for s in studies})


def both_ways(directions: set[str]) -> bool:
    """Some of these directions find something and some find nothing (higher beside no difference)."""
    return bool(directions & POSITIVE and directions & NEGATIVE)


def controlled(evidence: EvidenceSet) -> list[StudyEvidence]:
    """Tested studies with a comparison group or randomisation."""
    return [s for s in evidence.tested if s.profile.design in _spec()["controlled"]]


def _weighed(studies: list[StudyEvidence], kind: str) -> list[StudyEvidence]:
    """Whether a treatment works is weighed by what was tried, not by what people said in a survey or
    how a clinic's patients fared: only trials and reviews of them can disagree on it."""
    if kind == "experience":  # what patients report is weighed by surveys: a clinic's course is another question
        return [s for s in studies if s.profile.design == "cross-sectional"]
    return [s for s in studies if s.profile.design in (*TRIALS, "systematic-review")] if kind == "treatment" else studies


def disagreements(evidence: EvidenceSet) -> list[tuple[StudyEvidence, StudyEvidence]]:
    """Pairs of tested studies whose relevant findings point in opposite directions."""
    tested = _weighed(evidence.tested, evidence.understanding.question_type)
    return [(a, b) for i, a in enumerate(tested) for b in tested[i + 1:]
            if a.profile.direction in POSITIVE and b.profile.direction in NEGATIVE
            or a.profile.direction in NEGATIVE and b.profile.direction in POSITIVE]


def _shares_root(word: str, found: set[str]) -> bool:
    """'mitochondria' in a text that says 'mitochondrial', 'children' where it says 'child': one word
    is the other's root (five letters at least), not any shared prefix ('immun' is not 'immunoadsorption')."""
    if len(word) < 5:
        return False
    root = word[:-1]
    return any(t.startswith(root) and len(t) - len(word) <= 3 or len(t) >= 5 and word.startswith(t) for t in found)


def _stem(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 4 else word
