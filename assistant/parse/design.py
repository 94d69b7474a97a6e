"""What a study's design lets it show: the study type read from its text, and the design-based
caveats shown (labelled as generated) for studies whose source states no limits of its own."""
from __future__ import annotations

import re

from ..prompts import table
from ..study import Pem, Role, Section, Study

# Ordered: the first rule whose pattern matches the study's text decides its type.
TYPE_RULES = [
    ("systematic-review", r"systematic (literature )?review|meta-analys[ie]s"),
    ("protocol", r"study protocol|\bprotocol for\b|trial protocol"),
    ("guideline", r"\bguideline|consensus recommendations"),
    ("rct", r"randomi[sz]ed[^.]{0,60}(placebo|controlled|trial)|placebo-controlled"),
    ("case-report", r"case report|a single patient"),
    ("animal", r"(?-i:\b([Mm]ice|[Mm]ouse|[Mm]urine|[Rr]ats?)\b)|animal model"),
    ("in-vitro", r"\bin vitro\b|cell lines?\b|cultured cells|myoblasts"),
    ("review", r"\breview\b|perspective|hypothesis paper"),
    ("non-randomised-trial", r"open-label|single-arm|pilot trial|\btreated with\b"),
    ("cohort", r"\bcohort\b|longitudinal|follow-up|prospective"),
    ("case-control", r"case-control|healthy controls?|matched controls?"),
    ("cross-sectional", r"cross-sectional|survey|questionnaire"),
]


# Sentences about other or future studies ("placebo-controlled trials are needed") say nothing about
# this study's own design.
NOT_THIS_STUDY = re.compile(r"\b(needed|future|should|warrant\w*|further|previous(ly)?|prior|earlier)\b", re.I)


def infer_study_type(study: Study) -> str:
    from .split import split_sentences as sentences

    own = [s for sec in study.sections if not sec.generated for item in sec.items for s in sentences(item)
           if not NOT_THIS_STUDY.search(s)]
    text = " ".join([study.title, *own])
    return next((kind for kind, pattern in TYPE_RULES if re.search(pattern, text, re.I)), "other")


def design_caveats(study: Study) -> Section | None:
    """Caveats that follow from the design, for a study with no not-proven section of its own."""
    if any(s.role == Role.NOT_PROVEN and not s.generated for s in study.sections):
        return None
    texts = table("design_caveats")
    caveats = [texts[study.study_type]] if study.study_type in texts else []
    if study.pem == Pem.NOT_REQUIRED:
        caveats.append(texts["pem-not-required"])
    if not caveats:
        return None
    return Section(heading="Limits that follow from the study design", role=Role.NOT_PROVEN,
                   items=caveats, generated=True)
