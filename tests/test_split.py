"""The sentence splitter of the parse layer (assistant/parse/split.py): our cases, which pysbd 0.3.4
failed in part ('Drs.', 'Approx.', 'approx. 40', 'cf.'), so the splitter is our own."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from assistant.parse.split import clean_residue, split_sentences

CASES = [
    # titles and abbreviations
    ("Drs. Smith and Jones led it. It worked.", ["Drs. Smith and Jones led it.", "It worked."]),
    ("Dr. Ruth B. Smith studied it. Good.", ["Dr. Ruth B. Smith studied it.", "Good."]),
    ("As shown by Prof. Lee et al. in 2020, fatigue rose. Next one.",
     ["As shown by Prof. Lee et al. in 2020, fatigue rose.", "Next one."]),
    ("This was reported by Lee et al. We then repeated it.",
     ["This was reported by Lee et al.", "We then repeated it."]),
    ("Patients (e.g. those with POTS) improved, i.e. most. Then vs. controls it fell.",
     ["Patients (e.g. those with POTS) improved, i.e. most.", "Then vs. controls it fell."]),
    ("Some symptoms, e.g. PEM, worsened. Others did not.", ["Some symptoms, e.g. PEM, worsened.", "Others did not."]),
    ("See Fig. 2 for details. Approx. 40 people joined.", ["See Fig. 2 for details.", "Approx. 40 people joined."]),
    ("We enrolled approx. 40 people. Trial no. 5 failed.", ["We enrolled approx. 40 people.", "Trial no. 5 failed."]),
    ("Results were mixed, cf. Table 1. Fine.", ["Results were mixed, cf. Table 1.", "Fine."]),
    ("Patients vs. HC differed. The end.", ["Patients vs. HC differed.", "The end."]),
    ("It was done in the U.S. Army cohort. Next.", ["It was done in the U.S. Army cohort.", "Next."]),
    ("Levels of vitamin B. The rest was normal.", ["Levels of vitamin B.", "The rest was normal."]),
    # decimals and p-values
    ("The mean was 3.5 mg. The p-value was p = 0.03. Next.", ["The mean was 3.5 mg.", "The p-value was p = 0.03.",
                                                                "Next."]),
    ("Significant (p < .001). Another one.", ["Significant (p < .001).", "Another one."]),
    ("Fatigue fell by 12.5% (95% CI 3.1-21.9). 20 patients dropped out.",
     ["Fatigue fell by 12.5% (95% CI 3.1-21.9).", "20 patients dropped out."]),
    # gene and protein names
    ("IL-6 and TNF-α rose. The gene NR3C1 was methylated.", ["IL-6 and TNF-α rose.", "The gene NR3C1 was methylated."]),
    ("Levels fell. mRNA levels of PDK2 rose.", ["Levels fell.", "mRNA levels of PDK2 rose."]),
    # citations in brackets
    ("Levels fell [12, 13]. Others rose [14].", ["Levels fell [12, 13].", "Others rose [14]."]),
    ("Levels fell.[12,13] Others rose.", ["Levels fell.[12,13]", "Others rose."]),
    ("This was shown before (Smith et al., 2019). We replicate it.",
     ["This was shown before (Smith et al., 2019).", "We replicate it."]),
    ("Was it real? Yes! It was.", ["Was it real?", "Yes!", "It was."]),
    ("She said \"it is over.\" Then it was.", ["She said \"it is over.\"", "Then it was."]),
    # paragraphs
    ("First one\n\nSecond one.", ["First one", "Second one."]),
]


@pytest.mark.parametrize("text, expected", CASES)
def test_splits(text, expected):
    assert split_sentences(text) == expected


@pytest.mark.parametrize("raw, clean", [
    ("Peak $VO_2$ fell.", "Peak VO2 fell."),
    ("$\\dot{V}O_{2}$ max", "VO2 max"),
    ("IL-1$\\beta$ rose by 10\\%.", "IL-1β rose by 10%."),
    ("**Bold** and *italic* and `code`.", "Bold and italic and code."),
    ("See [the paper](https://doi.org/10.1/x) now.", "See the paper now."),
    ("An image ![chart](http://x/y.png) here.", "An image chart here."),
    ("Text [cite: 3, 4] more.", "Text more."),
    ("<b>Methods</b>: x", "Methods: x"),
    ("a 💊 pill", "a pill"),
    ("2 * 3 = 6", "2 * 3 = 6"),
])
def test_residue_removed(raw, clean):
    assert clean_residue(raw) == clean


def test_latex_and_markdown_residue_never_split_a_sentence():
    text = "Peak $VO_2$ was **lower** in ME/CFS (see [Fig. 2](http://x)). Drs. A and B agree."
    assert split_sentences(text) == ["Peak VO2 was lower in ME/CFS (see Fig. 2).", "Drs. A and B agree."]


def test_parse_no_longer_imports_the_chunker():
    parse = Path(__file__).resolve().parents[1] / "assistant" / "parse"
    for path in parse.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not any(m and m.endswith("chunk") for m in modules), path.name


def test_linear_time_on_long_input():
    import time

    text = ("Dr. a. " * 50_000) + ("e.g. x. " * 50_000) + ("[1]. " * 50_000)
    start = time.process_time()
    split_sentences(text)
    assert time.process_time() - start < 15.0  # quadratic would take hours
