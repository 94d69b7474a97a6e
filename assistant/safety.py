"""Stage 5a, safety: before anything else, is a person in crisis or in a medical emergency? And does the
question ask for a dose, a personal treatment decision or a diagnosis?

Three layers per class (crisis, emergency), all data in prompts/safety.toml: rules per language,
embedding similarity to described intents weighed against described calm ones, and a borderline band
that shows resources first *and* the research answer below them. Missing a crisis is the worst error
this assistant can make, so every layer can only add resources, never take a rule's call back."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

from .prompts import PROMPTS_DIR, table
from .tfidf import char_ngrams, sublinear_tfidf

NONE, SUPPORT, BORDERLINE, URGENT = "none", "support", "borderline", "urgent"
CLASSES = ("crisis", "emergency")
LANGUAGES = ("en", "de", "es", "fr", "nl")

# Where one sentence of a chat message ends and the next begins. Not parse/split.py's splitter: that one
# ends a sentence only before a capital, and people type "…at the end. because thats what im planning".
SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")


@dataclass
class SafetyCall:
    """What the safety layer decided, and why (for evals, logs and `inspect`)."""
    level: str = NONE  # none | support (research on suicide or death) | borderline | urgent
    kind: str | None = None  # crisis | emergency, when level is borderline or urgent
    audience: str = "self"  # self | other | professional
    dose: bool = False  # a dose or a personal start / stop / change decision is asked
    diagnosis: bool = False  # whether the person, or someone they name, has a condition
    scores: dict[str, float] = field(default_factory=dict)
    why: list[str] = field(default_factory=list)

    @property
    def urgent(self) -> bool:
        return self.level == URGENT


class Rules:
    """Regular expressions per language; the first that matches names itself."""

    def __init__(self, spec: dict | list):
        # "any": rules that read every language alike (an amount and its unit)
        patterns = spec if isinstance(spec, list) else [p for lang in (*LANGUAGES, "any") for p in spec.get(lang, [])]
        self.patterns = [re.compile(p, re.I) for p in patterns]

    def first(self, text: str) -> str | None:
        return next((p.pattern for p in self.patterns if p.search(text)), None)


class Combos:
    """Concepts that together make a class: each combo names concepts that must all be present."""

    def __init__(self, concepts: dict[str, str], combos: list[list[str]]):
        self.concepts = {name: re.compile(pattern, re.I) for name, pattern in concepts.items()}
        self.combos = combos

    def first(self, text: str) -> str | None:
        found = {name for name, pattern in self.concepts.items() if pattern.search(text)}
        return next((" + ".join(combo) for combo in self.combos if found.issuperset(combo)), None)


class SafetyGate:
    def __init__(self, embed: Callable[[list[str]], np.ndarray],
                 fixed: Callable[[str, list[str]], np.ndarray] | None = None):
        """`embed` embeds questions; `fixed(kind, texts)` the described intents (the engine passes
        vector_cache.fixed_vectors, so they are embedded once, not in every new process)."""
        self.embed = embed
        self.fixed = fixed or (lambda kind, texts: embed(texts))

    @cached_property
    def _spec(self) -> dict:
        spec = table("safety")
        advice = table("gate")["advice"]
        compiled = {
            "figures": Rules(spec["figures_of_speech"]),
            "research_topic": Rules(spec["research"]["topic"]),
            "research_frame": Rules(spec["research"]["frame"]),
            "reassurance": Rules(spec["reassurance"]), "past_event": Rules(spec["past_event"]),
            "long_past": Rules(spec["long_past"]), "still_now": Rules(spec["still_now"]),
            "study_frame": Rules(advice["study_frame"]),
            "personal": Rules([advice["personal"]]),
            "diagnosis_research": Rules([advice["research"]]),
            "dose": Rules(advice["dose"]), "dose_asked": Rules(advice["dose_asked"]),
            "dose_for_me": Rules([advice["dose_for_me"]]),
            "decision": Rules(advice["decision"]), "diagnosis": Rules(advice["diagnosis"]),
            "not_treatment_decision": Rules([advice["not_treatment_decision"]]),
            "dose_in_name": [re.compile(p, re.I) for p in advice["dose_in_name"]],
            "audience": {name: re.compile(p, re.I) for name, p in spec["audience"].items()},
            "crisis_topic": Rules(spec["crisis"]["topic_rules"]),
            "thresholds": spec["thresholds"],
            "calm": self.fixed("safety-calm", spec["calm"]["intents"]),
        }
        for name in CLASSES:
            compiled[name] = Rules(spec[name]["rules"])
            compiled[f"{name}_combos"] = Combos(spec["concepts"], spec[name]["combos"]["all"])
            compiled[f"{name}_intents"] = spec[name]["described"]["intents"]
            compiled[f"{name}_vectors"] = self.fixed(f"safety-{name}", compiled[f"{name}_intents"])
        return compiled

    def load(self) -> None:
        """Compile the rules, embed the intents and load the learned layer's model now, not on the
        first question."""
        self._spec  # noqa: B018
        self._learned_layer(learned_scores(self._learned, "warm up"), SafetyCall())

    def check(self, question: str, vector: np.ndarray | None = None, mode: str = "patient") -> SafetyCall:
        spec = self._spec
        text = question.replace("’", "'")
        literal = self._without_figures(text)
        call = SafetyCall(audience=self._audience(question, mode))
        learned = learned_scores(self._learned, literal)  # the message's n-grams are read once, for all heads
        named = self._without_dose_names(literal)  # "low dose naltrexone" is a name, not a dose asked
        call.dose, call.diagnosis = self._advice(named, learned if named == literal else learned_scores(self._learned, named))
        reassured = spec["reassurance"].first(text)
        past = spec["past_event"].first(text) is not None
        over = reassured is not None and past
        # A crisis told as long past and over is not read by the rules; the rest of the message is.
        current = self._without_long_past(literal) if reassured else literal
        for name in CLASSES:  # a rule, or concepts that together mean danger, decide at once
            if name == "emergency" and over:  # "a reaction last month, all fine now": the layers still read it
                continue
            if rule := spec[name].first(current) or spec[f"{name}_combos"].first(current):
                call.level, call.kind = URGENT, name
                call.why.append(f"{name} rule {rule}")
                return call
        research = bool(spec["research_topic"].first(literal) and spec["research_frame"].first(literal))
        # Naming suicide or self-harm is a crisis unless the question is framed as research, or tells of
        # a past crisis that is over ("tried to take my life two years ago, much better now"): the
        # layers below then read it, cautiously.
        if not research and not over and (rule := spec["crisis_topic"].first(literal)):
            call.level, call.kind = URGENT, "crisis"
            call.why.append(f"crisis topic rule {rule}")
            return call
        if research:
            call.level = SUPPORT
            call.why.append("research on suicide, self-harm or death")
        # Research framing, the writer's own word that they are safe, or a past event asked about as
        # research ("my mother died last year … where is the research?") asks more of the layers below.
        cautious = research or reassured is not None or past and spec["research_frame"].first(literal) is not None
        if reassured:
            call.why.append(f"stated safety {reassured}")
        self._embedding_layer(literal, question, vector, call, cautious)
        if call.level in (NONE, SUPPORT):
            self._learned_layer(learned, call, cautious)
        if call.level in (NONE, SUPPORT) and research:
            self._unframed_sentences(current, call)
        return call

    def _unframed_sentences(self, text: str, call: SafetyCall) -> None:
        """A research frame protects the sentence that carries it, not the rest of the message ("is it
        true that studies show … ? theres still rope in the garage and ive been out there twice
        tonight"): each sentence without one is read by the learned layer (at the cautious threshold: the
        context sentences of research questions, "My sister has severe ME and I worry about her a lot",
        score up to 0.72 at the usual one)."""
        for sentence in SENTENCE_END.split(text):
            # A sentence that says the writer is safe ("I'm stable now … a crisis plan with my team") is no danger.
            if (len(sentence.split()) < 4 or self._spec["research_frame"].first(sentence) is not None
                    or self._spec["reassurance"].first(sentence) is not None):
                continue
            danger = learned_scores(self._learned, sentence).get("danger", 0.0)
            if danger >= self._spec["thresholds"]["learned_cautious"]:
                call.level, call.kind = BORDERLINE, "crisis"
                call.why.append(f"learned layer, a sentence beside the research question: danger {danger:.2f}")
                return

    @cached_property
    def _learned(self) -> dict:
        data = json.loads((PROMPTS_DIR / "safety_learned.json").read_text(encoding="utf-8"))
        data["idf"], data["weights"] = np.asarray(data["idf"]), np.asarray(data["weights"])
        for head in data["notes"].values():
            head["weights"] = np.asarray(head["weights"])
        return data

    def _learned_layer(self, learned: dict[str, float], call: SafetyCall, cautious: bool = False) -> None:
        """Danger learned from labelled messages in five languages (tools/train_safety.py), read from
        character n-grams, so typos and the other languages count too: the rules and the English
        intents miss most indirect and non-English crises. It only ever raises a question to the
        fail-safe middle (resources first, the research answer below), never to resources alone; a
        question framed as research, or whose writer says they are safe, needs a higher score ("what's
        the research on refusing food … I've been refusing since Monday")."""
        if not learned:  # an empty message
            return
        danger = learned["danger"]
        call.scores["learned"] = round(danger, 3)
        if danger >= (self._spec["thresholds"]["learned_cautious"] if cautious else self._learned["threshold"]):
            call.level = BORDERLINE
            call.kind = "emergency" if call.scores.get("emergency", 0) > call.scores.get("crisis", 0) else "crisis"
            call.why.append(f"learned layer: danger {danger:.2f}")

    def _embedding_layer(self, literal: str, question: str, vector, call: SafetyCall, cautious: bool = False) -> None:
        spec, limits = self._spec, self._spec["thresholds"]
        if not literal.strip():
            return
        if vector is None or literal != question:
            vector = self.embed([literal])[0]
        calm = float(np.max(spec["calm"] @ vector))
        call.scores["calm"] = round(calm, 3)
        for name in CLASSES:
            sims = spec[f"{name}_vectors"] @ vector
            best = int(np.argmax(sims))
            score = float(sims[best])
            call.scores[name] = round(score, 3)
            # A question framed as research gets the support line anyway, and one whose writer says
            # they are safe keeps its answer: only a likeness as close as an urgent one puts resources
            # first ("as a GP, how do I ask about suicidal thoughts?"), and never resources alone.
            floor = limits[name] if cautious else limits.get(f"borderline_{name}", limits["borderline"])
            if score < floor or calm - score > limits["calm_margin"]:
                continue
            level = URGENT if score >= limits[name] and not cautious else BORDERLINE
            if _rank(level) > _rank(call.level):
                call.level, call.kind = level, name
                call.why.append(f"{name}: like '{spec[f'{name}_intents'][best]}' ({score:.2f}; calm {calm:.2f})")

    def _without_long_past(self, text: str) -> str:
        spec = self._spec
        return " ".join(s for s in SENTENCE_END.split(text) if spec["long_past"].first(s) is None or spec["still_now"].first(s))

    def _without_dose_names(self, text: str) -> str:
        """The text with the dose words of treatment names removed (prompts/gate.toml `dose_in_name`), as
        the notes' rules and learned heads read it. The heads are trained on the messages as written:
        trained on this reading, they lost 0.09 of set AN's dose-note recall (a shift, not a better fit)."""
        for pattern in self._spec["dose_in_name"]:
            text = pattern.sub("", text)
        return text

    def _without_figures(self, text: str) -> str:
        for pattern in self._spec["figures"].patterns:
            text = pattern.sub(" ", text)
        return text

    def _advice(self, text: str, learned: dict[str, float]) -> tuple[bool, bool]:
        spec = self._spec
        personal = spec["personal"].first(text) is not None
        # "Should patients stop GET, according to the trials?" asks what studies found, not a decision.
        decision = (spec["decision"].first(text) is not None and spec["not_treatment_decision"].first(text) is None
                    and spec["study_frame"].first(text) is None)
        # The rules generalise a set's wording; the learned heads read the labelled messages' (typos,
        # five languages, wordings no rule has seen). Either shows the note.
        threshold = self._learned["note_threshold"]
        dose = (spec["dose_asked"].first(text) is not None or spec["dose_for_me"].first(text) is not None
                or personal and bool(spec["dose"].first(text) or decision) or learned.get("dose", 0.0) >= threshold)
        # A diagnosis question about research ("…according to studies?") is not one, unless the person asks
        # it for themselves in a sentence of its own ("are people with ME misdiagnosed …? do i actually have
        # depression or is it ME?").
        research = spec["diagnosis_research"].first(text) is not None
        diagnosis = any(spec["diagnosis"].first(s) and not spec["diagnosis_research"].first(s)
                        and (not research or spec["personal"].first(s)) for s in SENTENCE_END.split(text))
        diagnosis = diagnosis or not research and learned.get("diagnosis", 0.0) >= threshold
        return dose, diagnosis

    def _audience(self, question: str, mode: str) -> str:
        """professional, other or self (prompts/safety.toml [audience])."""
        rules = self._spec["audience"]
        if mode == "clinician" or rules["professional"].search(question):
            return "professional"
        others = rules["other"].search(question)
        return "other" if others and not rules["self_at_risk"].search(rules["quoted"].sub(" ", question)) else "self"


def learned_scores(model: dict, text: str) -> dict[str, float]:
    """The learned layer's probabilities for a text (model: prompts/safety_learned.json with `idf` and
    the weights as arrays), each a logistic regression over the same character n-gram TF-IDF vector:
    `danger`, and per note head (`dose`, `diagnosis`) that the text asks for that note. Empty for a
    text with no words."""
    if not text.strip():
        return {}
    index, values = sublinear_tfidf(char_ngrams(text, *model["ngrams"]), model["vocabulary"], model["idf"])
    heads = {"danger": model, **model.get("notes", {})}
    return {name: float(1 / (1 + np.exp(-(values @ head["weights"][index] + head["bias"])))) for name, head in heads.items()}


def _rank(level: str) -> int:
    return (NONE, SUPPORT, BORDERLINE, URGENT).index(level)
