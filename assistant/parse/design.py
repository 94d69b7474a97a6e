"""What a study's design lets it show: the study type read from its text, and the design-based
caveats shown (labelled as generated) for studies whose source states no limits of its own."""
from __future__ import annotations

import re

from ..prompts import table
from ..study import Pem, Role, Section, Study

# Ordered: the first rule whose pattern matches the study's text decides its type.
TYPE_RULES = [
    # Not a study of its own, whatever it discusses (the title cues are in prompts/roles.toml).
    ("other", r"\bthis (editorial|commentary|opinion piece|news (piece|article|report))\b|\bnewly funded\b"),
    ("systematic-review", r"systematic (literature )?review|meta-analys[ie]s|scoping review"),
    ("protocol", r"study protocol|\bprotocol for\b|trial protocol|\bwill (be )?(recruit|randomi[sz]e|enrol|assess|measure)|"
                 r"recruitment phase|results (have|are) not yet|not yet (been )?(published|available|reported)|"
                 r"\b(currently )?ongoing (randomi[sz]ed|clinical|placebo|phase|double-blind)"),
    # A review that describes trials is not one ("a narrative literature review of randomised trials").
    ("review", r"narrative (literature )?review|\bliterature review|\bthis review\b|\bthe authors reviewed\b|critical analysis of [^.]{0,40}literature|synthesi[sz]ed? (the )?(current|existing|available) (scientific )?evidence"),
    ("guideline", r"\bguideline|consensus recommendations|practice guide|leitfaden"),
    ("case-report", r"case report|case series|case-series|a single patient|\ba case of\b|\bone patient\b|\b(an?|one) (extremely |very )?severe \S+ patient\b|\b\d+-year-old (man|woman|male|female|patient)"),
    ("rct", r"(?<!non-)(?<!non)randomi[sz]ed[^.]{0,60}(placebo|controlled|trial)|(?<!non-)placebo-controlled|\brandomly (assigned|allocated)"),
    ("non-randomised-trial", r"open-label|single-arm|uncontrolled|non-randomi[sz]ed|proof[- ]of[- ]concept|observational study of .{0,40}(treatment|therapy|immunoadsorption)"),
    ("animal", r"(?-i:\b([Mm]ice|[Mm]ouse|[Mm]urine|[Rr]ats?)\b)|animal model"),
    ("in-vitro", r"\bin vitro\b|cell lines?\b|cultured cells|myoblasts"),
    ("review", r"(?<!chart )(?<!records )(?<!record )\breview\b(?! of (\w+ )?(medical |health |patient )?(records|charts|notes))|perspective (article|paper|piece)|\b(this|a|an?) (\w+ )?perspective\b|hypothesis paper|\bessay\b|"
               r"theoretical (paper|framework)|synthesis of (the )?(\w+ )?literature"),
    ("non-randomised-trial", r"pilot trial|\btreated with\b|\bpatients (received|were given)\b|\bpre-post\b|\bpaired-samples? t-tests?\b"),
    ("case-control", r"case[-/]control|(compared (with|to)|versus|vs\.?|against) (\d+ )?(age- and sex-matched |age-matched |matched )?(healthy|uninfected|sedentary)|matched controls?|"
                     r"\band (\d[\d,]* )(age-matched |matched )?(healthy|uninfected|sedentary) (controls?|volunteers|individuals|subjects)\b"),
    # "A cohort of 200 patients" measured once is not a cohort study: following people over time is.
    ("cohort", r"cohort stud(y|ies)|longitudinal|follow-up|followed (up|for|over)|prospective|retrospective|registry|health records|"
               r"\bcohort\b(?=.{0,80}\b(followed|over \d+ (months|years)|years later|months later|at baseline|at \d+ (months|years)))"),
    ("case-control", r"healthy controls?|\b(and|vs\.?|versus|with) \d[\d,]* (\w+ ){0,3}(controls|control (subjects|participants|individuals|persons))\b|"
                     r"compared (them |these \w+ )?(with|to) (\w+ ){0,3}(recovered|uninfected|control) (individuals|people|participants|controls)"),
    ("cross-sectional", r"cross-sectional|survey|questionnaire|\bcohort\b|\b(investigat\w*|determine|estimate|assess\w*) the prevalence\b|"
                        r"\b(rasch|psychometric|clinimetric)\b"),
    # People measured once, with no other design named, is a cross-sectional study.
    ("cross-sectional", r"\b(\d[\d,]*|[Tt]wo|[Tt]hree|[Ff]our|[Ff]ive|[Ss]ix|[Ss]even|[Ee]ight|[Nn]ine|[Tt]en|[Tt]welve|[Ff]ifteen|[Ss]ixteen|[Tt]wenty) "
                        r"(\w+ ){0,3}(patients|participants|adults|individuals|people|subjects|women|men|children|respondents)\b"
                        r"(?=[^.]{0,120}\b(completed|wore|were (assessed|measured|tested|examined|sequenced)|underwent|took part))"),
]


# Sentences about other or future studies ("placebo-controlled trials are needed") say nothing about
# this study's own design.
NOT_THIS_STUDY = re.compile(r"\b(needed|future|should|must|larger|warrant\w*|(further|previous|prior|earlier|other) (\w+ )?(stud(y|ies)|research|trials?|work|reports?))\b", re.I)


def infer_study_type(study: Study) -> str:
    return infer_study_type_with_reason(study)[0]


def infer_study_type_with_reason(study: Study, own_sentences: list[str] | None = None,
                                 leading: list[str] | None = None) -> tuple[str, str]:
    """The study type from the title first, then what the study says of itself (`leading`: its
    summary and methods), then its other sentences (not those about other or future studies), and the
    words that decided it."""
    from .split import split_sentences as sentences

    for rule_kind, pattern in TYPE_RULES:
        match = re.search(pattern, study.title, re.I)
        if match:
            return rule_kind, f"title cue '{match.group(0).lower()}'"
    if own_sentences is None:
        own_sentences = [s for sec in study.sections if not sec.generated for item in sec.items
                         for s in sentences(item)]
    first = [s for s in leading or [] if not NOT_THIS_STUDY.search(s)]
    rest = [s for s in own_sentences if s not in first and not NOT_THIS_STUDY.search(s)]
    for tier in (first, rest):
        for rule_kind, pattern in TYPE_RULES:
            for sentence in tier:
                match = re.search(pattern, sentence, re.I)
                if match:
                    return rule_kind, f"text cue '{match.group(0).lower()}' in \"{_excerpt(sentence)}\""
    return "other", "no design cue in the title or text"


def commentary_reason(title: str, publication_types: list[str], tags: list[str]) -> str | None:
    """Why a text is a commentary, news piece, conference report or editorial rather than a study
    (then it is typed 'other', never an RCT or a systematic review), else None."""
    from .roles import cues

    types = [t.strip().lower() for t in publication_types]
    listed = table("roles")["study_type"]
    kind = next((t for t in types if t in listed["commentary_publication_types"]), None)
    if kind and not any(t in ("review", "systematic review", "meta-analysis",
                              "randomized controlled trial", "clinical trial") for t in types if t != kind):
        return f"publication type '{kind}': a commentary, news piece or editorial, not a study of its own"
    tag = next((t for t in tags if any(re.search(rf"\b{re.escape(c)}\b", t, re.I)
                                       for c in listed["commentary_tags"])), None)
    if tag:
        return f"tag '{tag.strip()}': a news piece, not a study of its own"
    cue = cues("study_type", "commentary_title").find(title)
    if cue:
        return f"title cue '{cue.lower()}': a commentary, news piece or conference report, not a study of its own"
    return None


def _excerpt(sentence: str, limit: int = 120) -> str:
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


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
