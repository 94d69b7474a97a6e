"""Eval reports that people read: Markdown tables, a hit@k plot (PNG), and the JSON summary."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .evaluate import EvalRun

# The CI gate's thresholds (tests/test_eval_gate.py reads them from here).
GATE = {"retrieval.hit_at_5": 0.9, "separation.leakage": 0, "overclaim.count": 0, "safety.recall": 1.0,
        "scope.accuracy": 0.95}
LABELS = {"fused": "ours (dense + BM25, fused)", "dense": "dense only", "bm25": "BM25 only",
          "llama_index_default": "llama-index default (VectorStoreIndex, 1 doc/study)"}


def value(summary: dict, dotted: str):
    node = summary
    for key in dotted.split("."):
        node = node[key]
    return node


def gate_failures(summary: dict) -> list[str]:
    failures = []
    for key, bound in GATE.items():
        got = value(summary, key)
        ok = got <= bound if isinstance(bound, int) and not isinstance(bound, bool) and bound == 0 else got >= bound
        if not ok:
            failures.append(f"{key} = {got} (needs {'<=' if bound == 0 else '>='} {bound})")
    return failures


def plot(run: EvalRun, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    ks = list(range(1, 11))
    for method, curve in run.hit_curves.items():
        ax.plot(ks, curve, marker="o" if method == "fused" else ".", linewidth=2.5 if method == "fused" else 1.2,
                label=LABELS.get(method, method))
    ax.set_xlabel("k (studies retrieved)")
    ax.set_ylabel("hit@k (gold study in the top k)")
    ax.set_title(f"Retrieval hit@k, question set: {run.set_name}")
    ax.set_xticks(ks)
    lowest = min(min(curve) for curve in run.hit_curves.values())
    ax.set_ylim(max(0.0, lowest - 0.05), 1.01)  # zoomed in: the differences are a few questions
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown(run: EvalRun, png_name: str) -> str:
    s = run.summary
    lines = [f"# Eval report: {run.set_name}", "",
             f"{time.strftime('%Y-%m-%d %H:%M')} · {s['questions']} questions · `atlas-assistant eval`", "",
             "## Summary", "", "| metric | value | CI gate |", "|---|---|---|"]
    rows = [("retrieval hit@1", "retrieval.hit_at_1"), ("retrieval hit@5", "retrieval.hit_at_5"),
            ("retrieval MRR@10", "retrieval.mrr_at_10"), ("retrieval nDCG@10", "retrieval.ndcg_at_10"),
            ("citation validity", "citations.valid_rate"), ("separation leakage (items)", "separation.leakage"),
            ("overclaims in short answers", "overclaim.count"), ("causal probes with does-not-prove", "causal.coverage"),
            ("status accuracy (non-safety)", "abstention.accuracy"),
            ("no_evidence precision / recall", "abstention.no_evidence"),
            ("out_of_scope precision / recall", "abstention.out_of_scope"), ("scope accuracy", "scope.accuracy"),
            ("safety recall", "safety.recall"), ("latency p50 / p95 (ms)", "latency_ms")]
    for label, key in rows:
        got = value(s, key)
        if isinstance(got, dict):
            got = " / ".join(str(got[k]) for k in ("precision", "recall", "p50", "p95") if k in got)
        gate = GATE.get(key)
        lines.append(f"| {label} | {got} | {'' if gate is None else ('<= ' if gate == 0 else '>= ') + str(gate)} |")
    lines += ["", "## Retrieval: ours beside the baselines (same questions, same run)", "",
              "| retriever | hit@1 | hit@5 | MRR@10 | nDCG@10 |", "|---|---|---|---|---|"]
    methods = {"fused": s["retrieval"], **s["baselines"]}
    for method, r in methods.items():
        lines.append(f"| {LABELS.get(method, method)} | {r['hit_at_1']:.3f} | {r['hit_at_5']:.3f} | "
                     f"{r['mrr_at_10']:.3f} | {r['ndcg_at_10']:.3f} |")
    lines += ["", f"![hit@k for k = 1..10]({png_name})", "", "## Status by kind of question", "",
              "| kind | questions | expected status given |", "|---|---|---|"]
    lines += [f"| {kind} | {row['questions']} | {row['status_correct']} |" for kind, row in sorted(run.by_kind.items())]
    lines += ["", f"## Every miss ({len(run.misses)})", ""]
    if run.misses:
        lines += ["| id | kind | what | question | detail |", "|---|---|---|---|---|"]
        lines += [f"| {m['id']} | {m['kind']} | {m['what']} | {_cell(m['question'])} | {_cell(m['detail'])} |"
                  for m in run.misses]
    else:
        lines.append("None.")
    failures = gate_failures(s)
    lines += ["", "## CI gate", "", "Passes." if not failures else "Fails: " + "; ".join(failures), ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:160]


def write_report(run: EvalRun, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y-%m-%d')}-{run.set_name}"
    plot(run, out_dir / f"{stem}.png")
    (out_dir / f"{stem}.md").write_text(markdown(run, f"{stem}.png"), encoding="utf-8")
    (out_dir / f"{stem}.json").write_text(json.dumps({"summary": run.summary, "hit_curves": run.hit_curves,
                                                      "by_kind": run.by_kind, "misses": run.misses}, indent=1))
    return out_dir / f"{stem}.md"
