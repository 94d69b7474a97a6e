"""Import fidelity on sentences and studies labelled by readers who never saw the parsers
(evals/roles.jsonl, evals/study_labels.jsonl). Before any tuning (2026-11-26): role accuracy 0.68 / 0.67
(dev / frozen), observed precision 0.94 / 0.94, study type 0.58 / 0.57. After the learned role layer
(trained on dev) and new study-type rules, first runs: the first frozen split 0.849 / 0.939 / type 0.714;
a second blind set (R2: 526 sentences, 60 studies) 0.742 / 0.869 / type 0.750 / PEM 0.967
(evals/reports/2026-11-26-import-fidelity-runs.md). R2 then joined dev (the layer retrained, cohort
typed only when people are followed over time), and a third blind set (R3: 467 sentences, 60 studies)
was run once: 0.760 / 0.879 / type 0.600 / PEM 0.967 (evals/reports/2026-11-27-import-fidelity-R3.md).
R3 then joined dev, and a fourth blind set (R4: 485 sentences, 60 studies) was run once: 0.703 / 0.913 /
type 0.678 / PEM 1.0 (evals/reports/2026-11-27-import-fidelity-R4.md). After new study-type rules (R4's
type then 0.797), a fifth (R5: 687 sentences, 40 studies) was run once: 0.579 / 0.921 / type 0.700 /
PEM 1.0 (…-R5.md; its labeller, like R4's, calls interpretive overview sentences summary, where the
R1-R3 labellers called them inferred). Since then a summary's own `Summary` section stays `summary`, as
DESIGN.md maps it (the contract breaks the labellers' tie; summary units are never quoted as findings),
and the layer is retrained on dev R1-R4 without those sentences: R4 0.878 / 1.0, R5 0.784 / 0.976,
while R1's dev and frozen parts lose the overviews their labeller called inferred (0.90 -> 0.86, 0.85 -> 0.80).
A sixth blind set, labelled against DESIGN.md's role table and Markdown mapping (R6: 647 sentences,
40 studies), was then run once: 0.851 / 0.948 / type 0.769 / PEM 1.0 (…-R6.md); after it joined dev (the
layer retrained on R1-R6, more study-type rules), a seventh (R7: 670 sentences, 40 studies) was run once:
0.854 / 1.0 / type 0.718 / PEM 0.974 (…-R7.md).
The issue's targets (0.90, 0.95, 0.90, 0.90) are not met; these tests guard against going backwards."""
from pathlib import Path

import pytest

from assistant.import_eval import read, score_roles, score_studies
from conftest import SHARED

EVALS = Path(__file__).resolve().parents[1] / "evals"


@pytest.fixture(scope="module")
def shared():
    if not (SHARED / "summaries").is_dir():
        pytest.skip(f"needs {SHARED}/summaries (the shared data beside the project)")
    return SHARED


def labels(name: str, which: str) -> list[dict]:
    items = read(EVALS / name)
    if which in KEPT_APART:
        return [i for i in items if i.get("set") == which]
    return [i for i in items if i["split"] == which and i.get("set") not in KEPT_APART]


# split: (role accuracy, observed precision, study type, PEM) reached, a little below. Dev holds R1's dev
# part, R2 and R3 (each joined after its first run); "frozen" is R1's frozen third; R4, R5 and R6 (tuned
# on after their first runs) and R7, the newest blind set (run once), are kept apart.
FLOORS = {"dev": (0.85, 0.96, 0.76, 0.95), "frozen": (0.79, 0.93, 0.66, 0.95), "R4": (0.85, 0.96, 0.83, 0.95),
          "R5": (0.93, 0.98, 0.69, 0.95), "R6": (0.95, 0.98, 0.76, 0.95), "R7": (0.84, 0.98, 0.70, 0.95)}
KEPT_APART = ("R4", "R5", "R6", "R7")


@pytest.mark.parametrize("which", list(FLOORS))
def test_roles_and_observed_precision_do_not_regress(shared, which):
    s = score_roles(labels("roles.jsonl", which), shared)["summary"]
    assert s["matched"] >= 0.95 * s["labelled"]
    assert s["role_accuracy"] >= FLOORS[which][0] and s["observed_precision"] >= FLOORS[which][1], s


@pytest.mark.parametrize("which", list(FLOORS))
def test_study_type_and_pem_do_not_regress(shared, which):
    s = score_studies(labels("study_labels.jsonl", which), shared)["summary"]
    assert s["matched"] + s["refused"] == s["labelled"]  # a refused source is one the importer names an error for
    assert s["study_type_accuracy"] >= FLOORS[which][2] and s["pem_accuracy"] >= FLOORS[which][3], s
