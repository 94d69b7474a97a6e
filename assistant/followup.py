"""Follow-up questions, resolved against earlier turns of the same conversation.

"what about in Long COVID?" and "did any of them try a probiotic?" are asked about the previous topic;
"does that one prove it?" is asked about the study the previous answer cited first."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# A pointer at one study restricts the answer to it: "that one", "this trial", "was it replicated?"
# ("the trial of metformin" is not a pointer, nor the "it" of "is it true that …").
SINGULAR = re.compile(r"\b(that|this|first) (one|study|paper|trial|review|article)\b|\bit\b(?!('s| is| was)? "
                      r"(true|possible|safe|known|likely|normal|common|ok|okay|worth|that|because|a|an)\b)", re.I)
PLURAL = re.compile(r"\b(they|them|those|these|both|either|neither|ones|studies)\b", re.I)
CONTINUES = re.compile(r"^\s*(and|but|also|so|what about|how about|what if|in|for|same for|what of)\b", re.I)


@dataclass
class Turn:
    question: str
    resolved: str
    cited: list[str]  # study ids, in citation order


@dataclass
class Resolved:
    text: str  # what is searched for
    study_ids: tuple[str, ...] = ()  # restrict the answer to these studies (a follow-up about "that one")


@dataclass
class Conversation:
    turns: list[Turn] = field(default_factory=list)

    def resolve(self, question: str) -> Resolved:
        previous = next((t for t in reversed(self.turns) if t.cited), None)
        if previous is None or len(question.split()) > 12:
            return Resolved(question)
        topic = f"{previous.resolved} {question}"
        if SINGULAR.search(question) and not PLURAL.search(question):
            return Resolved(topic, tuple(previous.cited[:1]))
        if PLURAL.search(question) or CONTINUES.search(question):
            return Resolved(topic)
        return Resolved(question)

    def add(self, question: str, resolved: str, cited: list[str]) -> None:
        self.turns.append(Turn(question, resolved, cited))
