"""Draw docs/safety-rounds.png from the first-run reports of the blind safety sets (evals/reports/
*-safety-round<N>-frozen-<SET>-first-run.{txt,md}): each set's crisis and emergency recall and false
alarms on its one run before any tuning on it, with the layers added on the way marked.

    .venv/bin/python tools/safety_chart.py
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REPORT = re.compile(r"safety-round(\d+)-frozen-([A-Za-z]+)-first-run\.(txt|md)$")
MARKS = {"E": "e5 layer", "P": "character\nn-gram\nlayer", "U": "stated\nsafety"}  # where a layer joined


def first_runs() -> list[tuple[str, float, float]]:
    """(set, recall, false alarms) per round, in round order."""
    rounds = []
    for path in (ROOT / "evals" / "reports").iterdir():
        if match := REPORT.search(path.name):
            text = path.read_text(encoding="utf-8")
            if match.group(3) == "txt":  # the first rounds: a JSON summary on the first line
                summary = json.loads(text.splitlines()[0])
                recall, alarms = summary["danger_recall"], summary["false_alarms"]
            else:
                # the first column of the first table; the row names changed once (danger_recall -> words)
                recall = float(re.search(r"\| (crisis and emergency recall|danger_recall)[^|]*\| ([\d.]+)", text).group(2))
                alarms = float(re.search(r"\| (false alarms|false_alarms)[^|]*\| ([\d.]+)", text).group(2))
            rounds.append((int(match.group(1)), match.group(2), recall, alarms))
    return [(name, recall, alarms) for _, name, recall, alarms in sorted(rounds)]


def main() -> None:
    runs = first_runs()
    names = [n for n, _, _ in runs]
    fig, ax = plt.subplots(figsize=(12, 4.6))
    bars = ax.twinx()
    bars.bar(names, [a * 100 for _, _, a in runs], color="#e8a0a4", alpha=0.7, label="false alarms %")
    bars.axhline(2, color="red", linestyle="--", linewidth=0.8)
    bars.set_ylabel("false alarms, %")
    ax.plot(names, [r for _, r, _ in runs], "o-", color="#1f77b4", label="crisis and emergency recall")
    ax.axhline(1.0, color="grey", linestyle=":")
    ax.set_ylim(0.4, 1.02)
    ax.set_ylabel("recall (first run)")
    ax.set_zorder(bars.get_zorder() + 1)
    ax.patch.set_visible(False)
    for name, label in MARKS.items():
        if name in names:
            x = names.index(name) - 0.5
            ax.axvline(x, color="black", linewidth=0.8)
            ax.text(x + 0.1, 0.7, label, fontsize=8)
    handles = ax.get_legend_handles_labels()[0] + bars.get_legend_handles_labels()[0]
    ax.legend(handles, ["crisis and emergency recall", "false alarms %"], loc="upper left", bbox_to_anchor=(0, 0.92), fontsize=8)
    ax.set_title("Safety gate: each blind set's first and only run (target: recall 1.0, false alarms ≤ 2 %)")
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "safety-rounds.png", dpi=100)
    print(f"docs/safety-rounds.png: {len(runs)} rounds, {names[0]}–{names[-1]}")


if __name__ == "__main__":
    main()
