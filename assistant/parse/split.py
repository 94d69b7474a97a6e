"""Sentences of imported prose, and the Markdown and LaTeX residue removed before splitting.

Our own splitter: pysbd 0.3.4 was tried against tests/test_split.py and split after 'Drs.',
'Approx.', 'approx. 40' and 'cf.', so it is not used. Every pattern here is free of nested
quantifiers and every scan is a single left-to-right pass, so the time is linear in the text's length
(tests/test_parser_limits.py feeds 1 MB adversarial runs)."""
from __future__ import annotations

import re

# Words that end in a period without ending the sentence. Lower-cased, without the period.
ABBREVIATIONS = {
    "dr", "drs", "prof", "profs", "mr", "mrs", "ms", "mx", "st", "jr", "sr", "e.g", "i.e", "eg", "ie",
    "vs", "cf", "fig", "figs", "approx", "ca", "resp", "ref", "refs", "eq", "eqs", "vol", "pp", "ch",
    "sec", "dept", "univ", "inc", "ltd", "co", "corp", "suppl", "al", "viz", "nb", "sp", "spp", "ed",
    "eds", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}
# Abbreviations that only hold before a number ('no. 5', 'Tab. 2'); 'the answer was no. Then' ends.
BEFORE_NUMBER = {"no", "nos", "tab", "tabs", "p"}
# After 'et al.' these words open a new sentence ('… by Lee et al. We then …').
OPENERS = {"we", "the", "this", "these", "those", "in", "however", "our", "it", "they", "a", "an", "there",
           "here", "its", "their", "such", "further", "moreover", "finally", "thus", "overall", "both"}

# A candidate end: terminator(s), closing quotes or brackets, an optional bracketed citation, space.
END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?:\[[0-9,;\u2013\- ]{1,40}\])?\s+")
WORD_BEFORE = re.compile(r"([A-Za-z](?:[A-Za-z.]{0,15}[A-Za-z])?)$")  # bounded: at most 17 characters
INITIAL = re.compile(r"(?:^|\s)([A-Z][a-z]{1,20}|[A-Z]\.)\s[A-Z]$")  # 'Ruth B' before the period

# Residue: Markdown emphasis, links, images, code; LaTeX maths; HTML tags. All bounded or negated classes.
IMAGE = re.compile(r"!\[([^\[\]\n]{0,300})\]\(([^()\s]{0,2000})\)")
LINK = re.compile(r"\[([^\[\]\n]{0,300})\]\(([^()\s]{0,2000})\)")
CITE = re.compile(r"\s?\[cite:[^\[\]\n]{0,200}\]")
HTML_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]{0,10}(?:\s[^<>]{0,200})?/?>")
MATH = re.compile(r"\$\$?([^$\n]{1,200})\$\$?")
LATEX_COMMAND = re.compile(r"\\(?:mathrm|text|textit|textbf|emph|mathit|mathbf|operatorname)\{([^{}]{0,200})\}")
LATEX_SYMBOL = re.compile(r"\\([A-Za-z]{1,20})")
GREEK = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "kappa": "κ", "mu": "μ", "sigma": "σ",
         "tau": "τ", "chi": "χ", "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "times": "×", "pm": "±",
         "approx": "≈", "sim": "~", "cdot": "·", "lt": "<", "gt": ">"}
EMPHASIS = re.compile(r"\*\*|__|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])|`")
DECORATION = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u200B\uFE0F]")
SPACE = re.compile(r"\s+")


def _maths(match: re.Match) -> str:
    """'VO_2' -> 'VO2', '\\alpha' -> 'α', '\\mathrm{max}' -> 'max'."""
    text = LATEX_COMMAND.sub(r"\1", match.group(1))
    text = LATEX_SYMBOL.sub(lambda m: GREEK.get(m.group(1), ""), text)  # \dot, \left: dropped
    return text.replace("_", "").replace("^", "").replace("{", "").replace("}", "").replace("\\", "")


def clean_residue(text: str) -> str:
    """Plain text: Markdown images and links (their text kept), emphasis, code marks, LaTeX maths
    ('$VO_2$' -> 'VO2'), escaped percent signs, HTML tags and emoji removed; spaces collapsed."""
    text = IMAGE.sub(r"\1", text)
    text = LINK.sub(r"\1", text)
    text = CITE.sub("", text)
    text = HTML_TAG.sub("", text)
    text = MATH.sub(_maths, text)
    text = text.replace("\\%", "%").replace("\\&", "&").replace("\\_", "_")
    text = EMPHASIS.sub("", text)
    text = DECORATION.sub("", text)
    return SPACE.sub(" ", text).strip()


def split_sentences(text: str, clean: bool = True) -> list[str]:
    """The sentences of a paragraph (a blank line always ends one), residue removed first."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        block = clean_residue(block) if clean else SPACE.sub(" ", block).strip()
        if block:
            out += _split_block(block)
    return out


def _split_block(text: str) -> list[str]:
    sentences, start = [], 0
    for match in END.finditer(text):
        end = match.end()
        if end >= len(text) or not _is_boundary(text, match):
            continue
        sentence = text[start:end].strip()
        if sentence:
            sentences.append(sentence)
        start = end
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


def _is_boundary(text: str, match: re.Match) -> bool:
    nxt = text[match.end()]
    if not (nxt.isupper() or nxt.isdigit() or nxt in "\"'\u201c\u2018([" or _is_gene_start(text, match.end())):
        return False
    terminator = text[match.start()]
    if terminator != "." or match.group(0).rstrip().rstrip("\"'\u201d\u2019)]").endswith(".."):
        return True  # '?' and '!' end sentences; so does an ellipsis
    closed = text[match.start() + 1] in "\"'\u201d\u2019)]" if match.start() + 1 < len(text) else False
    if closed:  # 'as described (see Fig. 2). Next' – the bracket closed before the space
        return True
    before = WORD_BEFORE.search(text[max(0, match.start() - 17):match.start()])
    word = before.group(1).lower() if before else ""
    next_word = text[match.end():match.end() + 20].split(" ", 1)[0].lower().strip("\"'“‘([,;:")
    if word == "al" and text[max(0, match.start() - 6):match.start()].lower().endswith("et al"):
        return next_word in OPENERS
    if word in ABBREVIATIONS:
        return False
    if word in BEFORE_NUMBER and nxt.isdigit():
        return False
    if re.fullmatch(r"(?:[a-z]\.){1,4}[a-z]", word):  # 'U.S.', 'a.m.'
        return False
    if len(word) == 1 and word.isalpha():
        # a name's initial ('Ruth B. Smith', 'J. Smith'), but not 'vitamin B. The'
        window = text[max(0, match.start() - 24):match.start()]
        return not (INITIAL.search(window) or re.search(r"(?:^|\s)[A-Z]$", window) and _starts_name(window))
    return True


def _starts_name(window: str) -> bool:
    """An initial at the start of the text or after another initial: 'J. Smith', 'A. B. Smith'."""
    stripped = window.rstrip()
    return len(stripped) <= 1 or bool(re.search(r"(?:^|\s)[A-Z]\.\s[A-Z]$", stripped))


def _is_gene_start(text: str, pos: int) -> bool:
    """A sentence may start with a lower-case gene or molecule name: 'mRNA', 'miR-21', 'sIL-2R'."""
    return bool(re.match(r"[a-z]{1,3}[A-Z]", text[pos:pos + 4]))
