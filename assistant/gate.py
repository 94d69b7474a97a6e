"""Stage 5b, gate: before retrieval, is the question within the library's scope (safety comes first, in
safety.py)? After retrieval, does any retrieved study really speak to it (EvidenceCheck)?"""
from __future__ import annotations

import re
from bisect import bisect_left
from functools import cached_property
from pathlib import Path

import numpy as np

from .embed import embed_texts
from .prompts import table
from .understand import topic_terms


class Scope:
    """Is the question about ME/CFS and related illnesses? Domain words decide at once; otherwise the
    question's similarity to described in-scope and out-of-scope questions."""

    def __init__(self, model: str = "", batch: int = 64):
        self.model, self.batch = model, batch

    @cached_property
    def _spec(self) -> dict:
        scope = table("gate")["scope"]
        return {"domain": [re.compile(p, re.I) for p in scope["domain_patterns"]],
                "health": [re.compile(p, re.I) for p in scope["health_patterns"]],
                "other_disease": re.compile(scope["other_disease"], re.I),
                "not_research": re.compile(scope["not_research"], re.I),
                "in": self._examples("scope-in", scope["in_examples"]),
                "out": self._examples("scope-out", scope["out_examples"])}

    @cached_property
    def _task(self) -> re.Pattern:
        return re.compile(table("gate")["scope"]["task"], re.I)

    def asks_a_task(self, question: str) -> bool:
        """The question asks the assistant to do something (fill in a form, book an appointment)."""
        return bool(self._task.search(question))

    def asks_no_research(self, question: str) -> bool:
        """The question asks for something that is not health research at all (a share price, homework),
        whatever study it names."""
        return bool(self._spec["not_research"].search(question))

    def _examples(self, kind: str, texts: list[str]) -> np.ndarray:
        """The examples' vectors, from the on-disk cache when the same model embedded them before."""
        from .vector_cache import fixed_vectors

        return fixed_vectors(kind, texts, lambda t: embed_texts(t, self.model, self.batch), self.model)

    def load(self) -> None:
        self._spec  # noqa: B018

    def check(self, question: str, vector: np.ndarray) -> tuple[bool, str]:
        spec = self._spec
        if rule := next((p.pattern for p in spec["domain"] if p.search(question)), None):
            return True, f"in scope: rule {rule}"
        if spec["other_disease"].search(question):
            return False, "out of scope: about another disease"
        if any(p.search(question) for p in spec["health"]):
            return True, "in scope: a health question naming no other disease"
        near_in, near_out = float(np.max(spec["in"] @ vector)), float(np.max(spec["out"] @ vector))
        return near_in > near_out, f"scope: in {near_in:.2f} vs out {near_out:.2f}"


class EvidenceCheck:
    """After retrieval: does any retrieved study really speak to the question's topic?

    Every entry is about ME/CFS, so plain similarity rewards any ME/CFS question. Two signals that
    ignore the disease words instead: the similarity of the question's topic (generic words dropped)
    to the closest unit, and the share of the topic's informative words (IDF-weighted, stemmed) that
    a retrieved study contains. Thresholds are calibrated on evals/ (see README)."""

    min_topic_everyday = 0.2  # topic similarity enough for everyday wording with no missing name
    # Below both, nothing in the library is about the question, whatever words it shares ("is it safe to
    # get pregnant with ME", "anything I should tell the dentist"): on the dev questions 7 of the 32
    # unanswerable ones that were answered sat there, and 1 of 394 answerable ones.
    weak_topic, weak_similarity = 0.30, 0.25
    # A word of a loosely worded subject (the question's own words, not a lexicon term) that the library
    # lacks refuses only when no study is this close to the question's topic ("HLA types or prior
    # infections predispose": the HLA study is, at 0.67); on dev it turned two wrong refusals into
    # answers and let no unanswerable question through.
    loose_missing_topic = 0.6

    def __init__(self, library, min_topic: float, min_coverage: float, strong: float, model: str = ""):
        import Stemmer
        from bm25s.stopwords import STOPWORDS_EN

        self.library, self.min_topic, self.min_coverage, self.strong = library, min_topic, min_coverage, strong
        self.model = model
        self.stem = Stemmer.Stemmer("english").stemWords
        self.generic = set(table("gate")["evidence"]["generic_words"]) | set(STOPWORDS_EN) | STOP_EXTRA
        self.drug_name = re.compile(table("gate")["evidence"]["drug_name"], re.I)
        self.terms = {sid: set(self.stem(_words(" ".join(
            [s.title, *(i for sec in s.sections if not sec.generated for i in sec.items)]))))
            for sid, s in library.studies.items()}
        self.df: dict[str, int] = {}
        for terms in self.terms.values():
            for term in terms:
                self.df[term] = self.df.get(term, 0) + 1
        self.sorted_terms = sorted(self.df)

    @cached_property
    def _long_words(self) -> list[str]:
        """The long words studies use (two studies or more), for putting misspellings right."""
        counts: dict[str, int] = {}
        for study in self.library.studies.values():
            text = " ".join([study.title, *(i for sec in study.sections if not sec.generated for i in sec.items)])
            for word in set(_words(text)):
                if len(word) >= SPELL_MIN and word.isalpha():
                    counts[word] = counts.get(word, 0) + 1
        return sorted(w for w, n in counts.items() if n >= 2)

    def spelled(self, question: str) -> str:
        """The question with misspelt library words put right ("are my mitocondria broken?" ->
        "mitochondria"): a long word that is no English word and in no study, within a letter or two of
        one that studies use. A word the library lacks is otherwise read as a subject it lacks."""
        from difflib import get_close_matches
        from wordfreq import zipf_frequency

        def fix(m: re.Match) -> str:
            word = m.group(0)
            low = word.lower()
            if len(low) < SPELL_MIN or zipf_frequency(low, "en") > 0 or low in self._long_words:
                return word
            close = get_close_matches(low, self._long_words, n=1, cutoff=SPELL_CUTOFF)
            return close[0] if close else word
        return re.sub(r"[A-Za-z]+", fix, question)

    def topic(self, question: str) -> str:
        """The question without the words every study shares ('Does acupuncture help ME/CFS?' -> 'acupuncture')."""
        kept = [w for w in re.findall(r"[\w'/-]+", question) if w.lower() not in self.generic]
        return " ".join(kept) or question

    def coverage(self, question: str, hits) -> float:
        """IDF-weighted share of the question's informative words found in the studies (together);
        0 for a question with no informative word at all ('ME/CFS?'), which no study can answer."""
        terms = self.stem([w for w in _words(question) if w not in self.generic])
        if not terms:
            return 0.0
        n = len(self.terms)
        idf = {t: np.log((n + 1) / (self.df.get(t, 0) + 0.5)) for t in terms}
        total = sum(idf.values())
        found = set().union(*(self.terms[h.study.id] for h in hits)) if hits else set()
        return sum(idf[t] for t in terms if t in found) / total

    def relevant(self, question: str, topic_vector: np.ndarray, hits, subject: str = "",
                 treatment: bool = False, loose: bool = False) -> tuple[bool, str]:
        if not hits:
            return False, "nothing retrieved"
        # Only the studies the filters let through count: their units, their words.
        topic = max(self.library.store.best(h.study.id, topic_vector) for h in hits)
        coverage = self.coverage(question, hits[:3])
        # A strong overall match may stand in for a low word overlap (paraphrase), but not for none.
        ok = topic >= self.min_topic and coverage > 0 and (
            coverage >= self.min_coverage or hits[0].relevance >= self.strong)
        missing = self.missing(question)
        # Drug names the library lacks refuse a treatment question, unless it lists options of which the
        # library has two or more ("ivabradine, propranolol, midodrine or fludrocortisone for POTS?").
        drugs = [w for w in missing if self.drug_name.search(w)]
        if len({w for w in _words(question) if w not in missing and self.drug_name.search(w)}) >= 2:
            drugs = []
        # Everyday and emotional wording ("my 15yo has been in bed 8 months, what should we expect") is
        # never a reason to refuse: when the subject's words occur in some study, the nearest one is
        # shown and the verdict says when it did not study exactly this. A subject no study mentions
        # ("acupuncture", "pregnancy") refuses, as does a name no study contains: the subject itself
        # ("hyperbaric"), or any treatment a treatment question names ("valganciclovir").
        if not ok and topic >= self.min_topic_everyday and not (treatment and drugs) and self.known(subject):
            ok = True
        # A name the library lacks beside one it has ("TRPM3" and "naturopath", "daratumumab" and the
        # author "Fluge") is a detail of the question, not its subject.
        # So is a topic the lexicon names ("pregnancy") whose words no study uses.
        unheard = subject in topic_terms() and not self.known(subject)
        lacking = subject and (self.missing(subject) or unheard) and not self.names_in_library(subject)
        if lacking and not (loose and topic >= self.loose_missing_topic) or treatment and drugs:
            ok = False
        if topic < self.weak_topic and hits[0].relevance < self.weak_similarity:
            ok = False
        return ok, f"topic {topic:.2f}, coverage {coverage:.2f}, similarity {hits[0].relevance:.2f}, missing {missing}"

    def informative(self, words: str) -> list[str]:
        """The words that could name something ('nicotine patches'), not question words ('what helps')."""
        return [w for w in _words(words) if w not in self.generic and len(w) > 2 and not AGE_OR_UNIT.match(w)]

    def known(self, words: str) -> bool:
        """Every informative word of the subject ('yoga', 'pregnancy') occurs in some study."""
        return all(self._in_library(t) for t in self.stem(self.informative(words)))

    def name_subject(self, words: str) -> str:
        """A loosely worded subject, trimmed to what can be named: technical words first, then words
        some study uses, at most three ('coq10 and NADH for energy … wasting money' -> 'coq10 NADH energy')."""
        seen, technical, known = set(), [], []
        for word, term in zip(words.split(), self.stem([w.lower() for w in words.split()])):
            if term in seen or word.lower() in self.generic:
                continue
            seen.add(term)
            if word.lower() not in self.vocabulary:
                technical.append(word)
            elif self.df.get(term):
                known.append(word)
        return " ".join((technical + known)[:3]) or words

    def nameable(self, word: str) -> bool:
        """A word that reads as a subject: a whole word of the embedding vocabulary ("yoga", "pregnancy")
        or a technical one ("acupuncture", "hypothyroidism"), not an inflected or clipped form the
        vocabulary lacks ("shuts", "mins", "wifes")."""
        from wordfreq import zipf_frequency

        word = word.lower()
        inflected = word.endswith("s") and word[:-1] in self.vocabulary
        return word in self.vocabulary or not inflected and zipf_frequency(word, "en") < 3.5

    def names_in_library(self, question: str) -> bool:
        """The question uses a technical word (not everyday language) that some study contains."""
        return bool(self.library_names(question))

    def library_names(self, question: str) -> list[str]:
        """The question's technical words (not everyday language) that some study contains ('oxaloacetate')."""
        words = [w for w in _words(question) if w not in self.generic and len(w) > 3 and w not in self.vocabulary]
        return [w for w, t in zip(words, self.stem(words)) if self.df.get(t)]

    def missing_names(self, topic: str, question: str) -> list[str]:
        """What the library lacks, named as the question names it: each word of the topic that no study
        contains (`missing`) with the words it stands with in the question ('stellate ganglion block',
        not 'stellate'), at most four, broken at punctuation and at words that name nothing ('for',
        'long covid', 'does', 'worth')."""
        from wordfreq import zipf_frequency

        missing, names = set(self.missing(topic)), []
        for chunk in re.split(r"[^\w\s-]+", question.lower()):
            run: list[str] = []
            for word in [*chunk.split(), ""]:
                # Words as common as "worth" or "now", verb forms ("supported", "approved") and the
                # illness's own names are the asker's wording, not part of a name.
                common = zipf_frequency(word, "en")
                if word and word not in self.generic and word not in ASKER_WORDS and common < 5 \
                        and not (word.endswith(("ing", "ed")) and common >= 3.5):
                    run.append(word)
                    continue
                if missing & set(run) and len(run) <= 4 and " ".join(run) not in names:
                    names.append(" ".join(run))
                run = []
        return names

    def missing(self, question: str) -> list[str]:
        """Named or technical words of the question that no study contains ('hyperbaric', 'ampligen').
        A word the embedding model knows as one whole token is everyday language, not a name."""
        words = [w for w in _words(question) if w not in self.generic and len(w) > 2 and not AGE_OR_UNIT.match(w)]
        return [w for w, t in zip(words, self.stem(words))
                if not self._in_library(t) and w not in self.vocabulary and not everyday(w)]

    def _in_library(self, term: str) -> bool:
        """Some study has the word, or a longer form of it ('wasf' for WASF3, 'pyridostig…')."""
        if self.df.get(term):
            return True
        # One binary search in the sorted terms, not a scan of the vocabulary (it runs per question).
        i = bisect_left(self.sorted_terms, term)
        return len(term) >= 4 and i < len(self.sorted_terms) and self.sorted_terms[i].startswith(term)

    @cached_property
    def vocabulary(self) -> set[str]:
        from .embed import model_path

        vocab = Path(model_path(self.model)) / "vocab.txt"
        return set(vocab.read_text(encoding="utf-8").split()) if vocab.is_file() else set()


SPELL_MIN, SPELL_CUTOFF = 7, 0.88  # a long word, at most about one letter in eight wrong
STOP_EXTRA = {"does", "do", "did", "is", "are", "was", "were", "can", "could", "should", "would", "will",
              "what", "which", "who", "how", "why", "when", "where", "my", "i", "me", "you", "your", "we",
              "has", "have", "had", "been", "any", "about", "from", "with", "more", "most", "than", "get", "got"}


# The illness's own names, and what a question asks a treatment to do ("paxlovid fix", "ldn cure").
ASKER_WORDS = {"covid", "me", "cfs", "mecfs", "long", "lc", "pots", "fibromyalgia",
               "fix", "fixes", "cure", "cures", "help", "helps", "work", "works", "treat", "clear", "stop"}

AGE_OR_UNIT = re.compile(r"^\d+(yo|y|yr|yrs|mo|mos|m|f|h|hrs|min|mins|mg|mcg|kg|lbs?)$")


def everyday(word: str) -> bool:
    """A word common in written English ('reddit', 'jab', 'overdo', 'doesnt') is the asker's wording, not
    the name of a treatment or test that the library lacks ('hyperbaric', 'ampligen', 'coq10'). Measured
    with wordfreq (data in the wheel): names of absent treatments in the dev questions score below 2.5."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en") >= 2.5


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())
