"""Import fidelity on sentences and studies labelled by a reader who never saw the parsers
(evals/roles.jsonl, evals/study_labels.jsonl). Measured 2026-11-26 before any tuning on them: role
accuracy 0.68 / 0.67 (dev / frozen), observed precision 0.94 / 0.94, study type 0.58 / 0.57, PEM
0.98 / 0.96 (docs/ANSWERS.md). The issue's targets (0.90, 0.95, 0.90, 0.90) are not met; these
tests guard against going backwards."""
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


def test_roles_and_observed_precision_do_not_regress(shared):
    s = score_roles(read(EVALS / "roles.jsonl"), shared)["summary"]
    assert s["matched"] >= 900 and s["role_accuracy"] >= 0.65 and s["observed_precision"] >= 0.93


def test_study_type_and_pem_do_not_regress(shared):
    s = score_studies(read(EVALS / "study_labels.jsonl"), shared)["summary"]
    assert s["matched"] == s["labelled"] and s["study_type_accuracy"] >= 0.55 and s["pem_accuracy"] >= 0.95
