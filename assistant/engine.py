"""The answer engine: gate -> retrieve -> compose -> present, with the model and index loaded once."""
from __future__ import annotations

import time
from dataclasses import replace

from .answer import ANSWERED, NO_EVIDENCE, OUT_OF_SCOPE, SAFETY, Answer
from .compose import LIMITS, compose
from .embed import embed_texts
from .evidence import gather
from .followup import Conversation
from .gate import EvidenceCheck, Scope
from .present import to_markdown
from .prompts import table
from .pubmed_sync import currency
from .retrieve import Filters, Library
from .safety import BORDERLINE, SUPPORT, SafetyCall, SafetyGate
from .settings import Settings
from .understand import (certain_type, condition_terms, context_terms, learned_type, mind_premise, question_type, technical_name,
                         treatment_for, understand)
from .verify import sentences
from .writer import OnSentence, TemplateWriter, Writer


def make_writer(settings: Settings, embed) -> Writer:
    """The writer the settings choose; the LLM writer's module (and httpx) load only when chosen."""
    if settings.backend == "openai":
        from .llm_writer import LLMWriter

        return LLMWriter(settings, embed)
    return TemplateWriter()


def open_library(settings: Settings):
    """The library the settings choose: the embedded FAISS index (default) or the shared Postgres store."""
    if settings.store == "postgres":
        from .store_pg import PostgresLibrary

        return PostgresLibrary(settings.store_url, settings.candidates)
    return Library(settings.index_dir, settings.candidates)


def describe_filters(filters: Filters) -> str:
    """The filters in words, as the reader set them ('from 2020; study type randomised controlled trial')."""
    from .study import STUDY_TYPES

    words, parts = table("answer")["filters"], []
    if filters.year_from and filters.year_to:
        parts.append(words["between"].format(start=filters.year_from, end=filters.year_to))
    elif filters.year_from:
        parts.append(words["from"].format(year=filters.year_from))
    elif filters.year_to:
        parts.append(words["to"].format(year=filters.year_to))
    if filters.study_types:
        names = [STUDY_TYPES.get(t, t).lower() for t in filters.study_types]
        parts.append(words["type" if len(names) == 1 else "types"].format(types=" or ".join(names)))
    if filters.pem_required:
        parts.append(words["pem"])
    return "; ".join(parts)


class Assistant:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.library = open_library(settings)
        self.safety = SafetyGate(self._embed, self._fixed_vectors)
        self.scope = Scope(settings.embedding_model, settings.embed_batch_size)
        self.safety.load()  # load the model and embed the intents now, not on question one
        self.scope.load()
        self.writer = make_writer(settings, self._embed)
        self.evidence = EvidenceCheck(self.library, settings.min_topic_similarity,
                                      settings.min_term_coverage, settings.strong_similarity, settings.embedding_model)

    def _fixed_vectors(self, kind: str, texts: list[str]):
        """Vectors of the gate's fixed texts, cached on disk between runs (vector_cache.py)."""
        from .vector_cache import fixed_vectors

        return fixed_vectors(kind, texts, self._embed, self.settings.embedding_model)

    def _embed(self, texts: list[str]):
        return embed_texts(texts, self.settings.embedding_model, self.settings.embed_batch_size)

    def ask(self, question: str, mode: str | None = None, filters: Filters = Filters(),
            conversation: Conversation | None = None, on_sentence: OnSentence | None = None) -> Answer:
        """The answer; with `on_sentence`, each bottom-line and short-answer sentence is also passed to
        it as soon as it is written and verified (the LLM writer streams; the template writer does not)."""
        started = time.perf_counter()
        if self.library.refresh():  # a re-index of a shared store: new studies, so new word counts
            self.evidence = EvidenceCheck(self.library, self.settings.min_topic_similarity, self.settings.min_term_coverage,
                                          self.settings.strong_similarity, self.settings.embedding_model)
        mode = mode or self.settings.mode
        # Undecodable bytes from a terminal become '?', typographic apostrophes plain ones.
        question = " ".join(question.encode("utf-8", "replace").decode("utf-8").replace("’", "'").split())
        spelled = self.evidence.spelled(question)  # "mitocondria" -> "mitochondria"; the gate reads the original
        resolved = conversation.resolve(spelled) if conversation else None
        asked = resolved.text if resolved else spelled
        understood = understand(asked)
        understood = self._name_subject(understood, asked)
        # One batch: the question (gate), the text searched for (retrieval), its topic (evidence check).
        # Often two of them are the same text (most questions are their own search text): each distinct
        # text is encoded once, which is most of the time an answer takes on a CPU.
        texts = [question, understood.search_text, understood.topic]
        distinct = list(dict.fromkeys(texts))
        vectors = self._embed(distinct)
        question_vector, search_vector, topic_vector = (vectors[distinct.index(t)] for t in texts)
        understood = replace(understood, question_type=certain_type(question) or learned_type(search_vector) or understood.question_type)
        safety = self.safety.check(question, question_vector, mode)
        # A technical word that the library itself contains ("DecodeME", "rapamycin") puts a question in scope.
        # The question with lay words mapped ("crash" -> post-exertional malaise) counts too.
        in_scope = (safety.urgent or self.scope.check(question, question_vector)[0] or self.evidence.names_in_library(spelled)
                    or understood.search_text != question and self.scope.check(understood.search_text, search_vector)[0])
        if not in_scope and resolved and resolved.study_ids:
            # "does that one prove it?" is about the study just cited, whatever it looks like alone;
            # anything else is judged on its own words, so a follow-up cannot smuggle a topic in.
            in_scope = self.scope.check(asked, search_vector)[0]
        timings = {"gate": (time.perf_counter() - started) * 1000}
        if safety.urgent:
            answer = self._crisis(question, safety)
        elif self.scope.asks_a_task(question):  # "can you fill in my PIP form": about ME/CFS, but no question
            answer = self._fixed(question, OUT_OF_SCOPE, "out_of_scope_task")
        elif not in_scope or self.scope.asks_no_research(question):
            answer = self._fixed(question, OUT_OF_SCOPE)
        else:
            if resolved and resolved.study_ids:
                filters = replace(filters, study_ids=resolved.study_ids)
            answer = self._research(question, understood, search_vector, topic_vector, filters, mode, timings, on_sentence)
            answer.notes = self._safety_notes(safety) + self._advice_notes(safety) + answer.notes
        answer.notes.append(table("answer")["notes"]["medical"])
        answer.question_type = understood.question_type
        answer.subject = understood.subject
        if asked != question:
            answer.resolved_question = asked
        answer.answer_markdown = to_markdown(answer, mode)
        if conversation is not None and answer.status == ANSWERED:
            conversation.add(question, asked, [s.study.id for s in answer.sources])
        timings.setdefault("retrieve", 0.0)
        timings.setdefault("compose", 0.0)
        timings["total"] = (time.perf_counter() - started) * 1000
        answer.timings_ms = timings
        answer.library = currency(self.library)  # studies and the last PubMed sync
        return answer

    def _name_subject(self, understood, asked: str):
        """The subject as the library can name it: loose words trimmed to what studies use, and a context
        term ("RCT", "how common"), or for a treatment question a symptom ("brain fog"), set aside when
        the question names something a study contains ("Any RCT data on oxaloacetate?", "that
        oxaloacetate supplement for brain fog": both are about oxaloacetate); "X for <a symptom>" is about
        X, whether no study contains it ("nicotine patches for brain fog": no trial here tested them) or a
        study does ("oxaloacetate for brain fog")."""
        tried = treatment_for(asked)
        if tried and self.evidence.informative(tried) and not understand(tried).named and not self.evidence.known(tried):
            return replace(understood, subject=tried, named=True, question_type="treatment")
        # ... and where a study has it, by the technical words the library knows ("oxaloacetate supplment").
        names = self.evidence.library_names(tried) if tried and understood.named and understood.subject in condition_terms() else []
        if names:
            return replace(understood, subject=" ".join(names[:2]), named=True, question_type="treatment")
        if not understood.named:  # a loose subject that is one drug's name ("low-dose aripiprazole") is named
            subject = self.evidence.name_subject(understood.subject)
            return replace(understood, subject=subject, named=technical_name(subject))
        if understood.subject in context_terms() or understood.question_type == "treatment":
            names = [w for w in self.evidence.library_names(understood.topic) if w.lower() not in understood.subject.lower()]
            if names:
                return replace(understood, subject=" ".join(dict.fromkeys(names[:3])), named=False)
        return understood

    def _research(self, question, understood, search_vector, topic_vector, filters, mode, timings, on_sentence=None) -> Answer:
        """Retrieve, check that the evidence speaks to the subject, gather it, compose the answer."""
        began = time.perf_counter()
        hits = self.library.retrieve(understood.search_text, search_vector, filters, top_k=self.settings.top_k)
        relevant, _ = self.evidence.relevant(understood.topic, topic_vector, hits, _subject(understood), _treatment(question, understood),
                                             loose=not understood.named)
        if not relevant and (premise := mind_premise(understood)):  # nothing on the antidepressant: answer the premise
            understood = premise
            search_vector, topic_vector = self._embed([premise.search_text, premise.topic])
            hits = self.library.retrieve(premise.search_text, search_vector, filters, top_k=self.settings.top_k)
            # The premise is no treatment: a drug the library lacks ("sertraline") does not refuse it.
            relevant, _ = self.evidence.relevant(premise.topic, topic_vector, hits, _subject(premise), False)
        timings["retrieve"] = (time.perf_counter() - began) * 1000
        # A question that points at the study just cited ("was it replicated?") is answered from
        # that study's own sections even when its words are not in it.
        if not (relevant or (hits and filters.study_ids)):
            answer = self._no_evidence(question, understood, search_vector, topic_vector, filters)
        else:
            evidence = gather(understood, search_vector, hits, self.library.store, LIMITS[mode].studies)
            answer = compose(evidence, mode, self.writer, on_sentence)
            answer.question = question
        timings["compose"] = (time.perf_counter() - began) * 1000 - timings["retrieve"]
        return answer

    def _no_evidence(self, question, understood, search_vector, topic_vector, filters) -> Answer:
        """A kind, specific refusal: what the library lacks; when filters removed the evidence, say so."""
        texts = table("answer")["bottom_line"]
        answer = self._fixed(question, NO_EVIDENCE)
        # Say what is missing: the word no study mentions ("acupuncture"), or the subject when the
        # lexicon names it and the library lacks it; never a subject the library has ("crashes" in a
        # question about pregnancy) nor loose question words.
        names = self.evidence.missing_names(understood.topic, question)  # a name no study contains ("valganciclovir")
        if names:
            missing = " and ".join(names[:2])
        elif understood.named:
            missing = "" if self.evidence.known(understood.subject) else understood.name
        else:  # the loose subject's words no study has ("yoga", "hypothyroidism"), not clipped forms ("mins shuts")
            lacking = [w for w in understood.subject.split() if not self.evidence.known(w) and self.evidence.nameable(w)]
            missing = " ".join(lacking) if len(lacking) <= 3 else ""  # more reads as a list of the question's words
        answer.bottom_line = texts["no_evidence" if missing else "no_evidence_loose"].format(subject=missing)
        if filters.active and not filters.study_ids:
            count = self._studies_without_filters(understood, search_vector, topic_vector)
            answer.bottom_line = texts["no_evidence_filtered" if count else "no_evidence_filtered_none"].format(
                subject=understood.name if understood.named else "this question", filters=describe_filters(filters), count=count,
                studies="study" if count == 1 else "studies", do="does" if count == 1 else "do")
        answer.short_answer = f"{answer.bottom_line} {answer.short_answer}"
        return answer

    def _studies_without_filters(self, understood, search_vector, topic_vector) -> int:
        """How many studies would speak to the question without the filters: those retrieved unfiltered
        that pass the evidence check on their own (at least the answer's own studies when together
        they pass it)."""
        hits = self.library.retrieve(understood.search_text, search_vector, Filters(),
                                     top_k=max(self.settings.top_k, self.settings.candidates))
        treatment = _treatment(understood.search_text, understood)
        alone = sum(self.evidence.relevant(understood.topic, topic_vector, [hit], _subject(understood), treatment,
                                           loose=not understood.named)[0] for hit in hits)
        together = self.evidence.relevant(understood.topic, topic_vector, hits[:self.settings.top_k], _subject(understood), treatment,
                                           loose=not understood.named)[0]
        return max(alone, len(hits[:self.settings.top_k]) if together else 0)

    @staticmethod
    def _fixed(question: str, status: str, key: str = "") -> Answer:
        """A fixed reply from prompts/answer.toml; its first sentence is the bottom line, so that the
        decline is what a reader sees first."""
        reply = table("answer")["status"][key or status]
        return Answer(question=question, status=status, bottom_line=sentences(reply)[0], short_answer=reply)

    @staticmethod
    def _crisis(question: str, safety: SafetyCall) -> Answer:
        """Crisis or emergency resources only, worded for who is asking."""
        text = table("answer")["safety"][safety.kind][safety.audience]
        return Answer(question=question, status=SAFETY, short_answer=text)

    @staticmethod
    def _safety_notes(safety: SafetyCall) -> list[str]:
        notes = table("answer")["notes"]
        if safety.level == BORDERLINE:
            return [notes[f"borderline_{safety.kind}"]]
        return [notes["support"]] if safety.level == SUPPORT else []

    @staticmethod
    def _advice_notes(safety: SafetyCall) -> list[str]:
        notes = table("answer")["notes"]
        return ([notes["dose"]] if safety.dose else []) + ([notes["diagnosis"]] if safety.diagnosis else [])


def _treatment(question: str, understood) -> bool:
    """A treatment question by the learned type or by the patterns: a drug name that no study contains
    refuses either way ("what were the results of the rituximab trial?")."""
    return understood.question_type == "treatment" or question_type(question) == "treatment"


def _subject(understood) -> str:
    """The subject the evidence check weighs; a context term ("how common", "children") is not one."""
    return "" if understood.subject in context_terms() else understood.subject
