"""Load bench of the web chat: a real `atlas-assistant serve` on 127.0.0.1, driven by many concurrent
users through Gradio's HTTP API. A script, not a test (nothing in CI times anything):

    .venv/bin/python bench/web_load_bench.py [--index DIR] [--users 50] [--requests 1000] [--compare]
        [--tree DIR] [--old-tree DIR --old-index DIR]

Without --index it first builds an index of corpus/ in a temporary folder (about a minute).

What it measures, in one run:
  1. where the time of one answer goes, one user at a time: the engine alone (`ask --batch --json`'s
     own timings, in a separate process), one answer through the HTTP API (POST /gradio_api/call/chat,
     then its event stream), and one answer through gradio_client (which adds its own overhead);
  2. `--users` users asking back to back (each sends its next question when its answer arrives) until
     `--requests` answers: p50/p95/max latency, errors (anything but a complete answer), answers per
     second, and the server's memory (RSS) before, at the halfway point and after;
  3. with --compare, the same load with ATLAS_WEB_WORKERS=1 (one answer at a time);
  4. with --old-tree, the same load on another checkout (e.g. `git archive 710165d | tar -x -C DIR`)
     and an index it built (--old-index): the figures before, from the same run.

The code measured is --tree (default: this checkout), run as `python -m assistant.cli` with PYTHONPATH
set to it, so a clean export of a commit can be measured while others edit the working tree.

Targets (issue 13): p95 <= 2 s for 50 users on 2 cores, 0 errors, memory bounded over 1,000 requests.
Every step reports the CPU other processes used meanwhile (bench/machine.py): trust a quiet run.
Traffic goes to 127.0.0.1 only, bounded in count and time (--timeout per answer)."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import Meter, describe, process_cpu_seconds, rss_mb, verdict  # noqa: E402

SETS = ["questions.jsonl", "patients.jsonl", "retrieval.jsonl"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def questions() -> list[str]:
    seen: dict[str, None] = {}
    for name in SETS:
        path = ROOT / "evals" / name
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    q = json.loads(line).get("question")
                    if isinstance(q, str) and q.strip():
                        seen.setdefault(q.strip(), None)
    return list(seen)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, p)) if values else float("nan")


# --- one answer through the HTTP API -------------------------------------------------------------

def payload(question: str) -> dict:
    return {"data": [question, "patient", None, None, None, False]}


def complete(stream: str) -> str | None:
    """The answer of a finished event stream, or None (an error event, a cut stream)."""
    lines = stream.strip().splitlines()
    if len(lines) < 2 or lines[-2] != "event: complete":
        return None
    try:
        answer = json.loads(lines[-1].removeprefix("data: "))[0]
    except (ValueError, IndexError, TypeError):
        return None
    return answer if isinstance(answer, str) and answer.strip() else None


def ask_sync(http: httpx.Client, url: str, question: str) -> str | None:
    event = http.post(f"{url}/gradio_api/call/chat", json=payload(question)).json()["event_id"]
    return complete(http.get(f"{url}/gradio_api/call/chat/{event}").text)


async def ask_async(http: httpx.AsyncClient, url: str, question: str) -> str | None:
    response = await http.post(f"{url}/gradio_api/call/chat", json=payload(question))
    event = response.json()["event_id"]
    stream = await http.get(f"{url}/gradio_api/call/chat/{event}")
    return complete(stream.text)


# --- the server ----------------------------------------------------------------------------------

def cli(tree: Path) -> tuple[list[str], dict]:
    """The command line of `tree` and its environment: python -m assistant.cli with PYTHONPATH=tree."""
    env = dict(os.environ, PYTHONPATH=str(tree), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return [sys.executable, "-m", "assistant.cli"], env


class Server:
    def __init__(self, tree: Path, index: Path, workers: int | None, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command, env = cli(tree)
        if workers:
            env["ATLAS_WEB_WORKERS"] = str(workers)
        self.log = open(log_path, "w")
        self.started = time.perf_counter()
        self.process = subprocess.Popen([*command, "serve", "--index", str(index), "--port", str(self.port)],
                                        stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=tempfile.gettempdir())
        self.page_seconds = self.wait_for_page()
        with httpx.Client(timeout=120) as http:
            assert ask_sync(http, self.url, "Does pacing help people with ME/CFS?"), "the first answer failed"
        self.answer_seconds = time.perf_counter() - self.started

    def wait_for_page(self, limit: float = 600) -> float:
        while time.perf_counter() - self.started < limit:
            if self.process.poll() is not None:
                raise SystemExit(f"serve exited with {self.process.returncode}; see {self.log.name}")
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"serve was not up after {limit:.0f} s")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


# --- the steps -----------------------------------------------------------------------------------

def engine_alone(tree: Path, index: Path, qs: list[str]) -> dict:
    """`ask --batch --json` in its own process: the engine's own time per answer (timings_ms.total)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as batch:
        batch.write("\n".join(qs))
    command, env = cli(tree)
    with Meter("engine alone (ask --batch)") as meter:
        out = subprocess.run([*command, "ask", "--batch", batch.name, "--json", "--index", str(index)],
                             capture_output=True, text=True, check=True, cwd=tempfile.gettempdir(), env=env).stdout
    os.unlink(batch.name)
    totals = [json.loads(line)["timings_ms"]["total"] / 1000 for line in out.splitlines() if line.strip()]
    return {"p50": pct(totals, 50), "p95": pct(totals, 95), "n": len(totals), "meter": meter}


def one_user(server: Server, qs: list[str]) -> dict:
    with Meter("one user, HTTP API", (server.process.pid,)) as meter:
        with httpx.Client(timeout=120) as http:
            times = []
            for q in qs:
                started = time.perf_counter()
                ask_sync(http, server.url, q)
                times.append(time.perf_counter() - started)
    return {"p50": pct(times, 50), "p95": pct(times, 95), "n": len(times), "meter": meter}


def one_user_client(server: Server, qs: list[str]) -> dict:
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    client.predict(qs[0], api_name="/chat")
    with Meter("one user, gradio_client", (server.process.pid,)) as meter:
        times = []
        for q in qs:
            started = time.perf_counter()
            client.predict(q, api_name="/chat")
            times.append(time.perf_counter() - started)
    return {"p50": pct(times, 50), "p95": pct(times, 95), "n": len(times), "meter": meter}


async def load(server: Server, qs: list[str], users: int, total: int, timeout: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    issued = 0
    rss = {"before": rss_mb(server.process.pid), "half": 0.0, "after": 0.0, "peak": 0.0}
    done = asyncio.Event()

    async def user(http: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < total:
            n = issued
            issued += 1
            question = qs[n % len(qs)]
            started = time.perf_counter()
            try:
                answer = await asyncio.wait_for(ask_async(http, server.url, question), timeout)
                if answer is None:
                    errors.append(f"no complete answer to {question[:60]!r}")
            except Exception as err:  # noqa: BLE001 - counted, never raised
                errors.append(f"{type(err).__name__}: {err}"[:200])
            latencies.append(time.perf_counter() - started)
            if len(latencies) == total // 2:
                rss["half"] = rss_mb(server.process.pid)

    async def sample() -> None:
        while not done.is_set():
            rss["peak"] = max(rss["peak"], rss_mb(server.process.pid))
            await asyncio.sleep(0.25)

    limits = httpx.Limits(max_connections=users * 2, max_keepalive_connections=users * 2)
    server_cpu = process_cpu_seconds(server.process.pid)
    with Meter(f"{users} users, {total} answers", (server.process.pid,)) as meter:
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
            sampler = asyncio.create_task(sample())
            started = time.perf_counter()
            await asyncio.gather(*(user(http) for _ in range(users)))
            wall = time.perf_counter() - started
            done.set()
            await sampler
    rss["after"] = rss_mb(server.process.pid)
    server_cpu = process_cpu_seconds(server.process.pid) - server_cpu
    return {"server_cpu_ms": server_cpu / max(1, len(latencies)) * 1000, "server_cores": server_cpu / wall,"p50": pct(latencies, 50), "p95": pct(latencies, 95), "max": max(latencies) * 1000,
            "errors": errors, "n": len(latencies), "rate": len(latencies) / wall, "wall": wall,
            "rss": rss, "meter": meter}


def build_index(tree: Path, folder: Path) -> Path:
    log(f"building an index of {tree / 'corpus'} in {folder} (about a minute)")
    command, env = cli(tree)
    subprocess.run([*command, "index", str(tree / "corpus"), "--index", str(folder), "--json"], check=True,
                   stdout=subprocess.DEVNULL, cwd=tempfile.gettempdir(), env=env)
    return folder


def run_load(tree: Path, index: Path, qs: list[str], args, workers: int | None, label: str) -> tuple[dict, dict]:
    server = Server(tree, index, workers, Path(tempfile.gettempdir()) / f"atlas-web-bench-{label}.log")
    try:
        log(f"[{label}] serve ready: page {server.page_seconds:.1f} s, first answer {server.answer_seconds:.1f} s")
        with httpx.Client(timeout=120) as http:
            for q in qs[:5]:  # warm-up
                ask_sync(http, server.url, q)
        single = {}
        if label == "now":
            log(f"[{label}] one user at a time: {args.serial} answers over HTTP, {args.serial // 2} with gradio_client")
            single["http"] = one_user(server, qs[:args.serial])
            single["client"] = one_user_client(server, qs[:args.serial // 2])
        log(f"[{label}] {args.users} users, {args.requests} answers")
        result = asyncio.run(load(server, qs, args.users, args.requests, args.timeout))
    finally:
        server.close()
    return single, result


def report(engine: dict, single: dict, runs: dict[str, dict], users: int, total: int) -> str:
    meters = [engine["meter"], *(s["meter"] for s in single.values()), *(r["meter"] for r in runs.values())]
    lines = ["| measure | value | notes |", "|---|---|---|",
             f"| engine alone (`ask --batch`), per answer | p50 {engine['p50']:.0f} ms / p95 {engine['p95']:.0f} ms | "
             f"{engine['n']} questions, the engine's own timings |",
             f"| one user, HTTP API, per answer | p50 {single['http']['p50']:.0f} ms / p95 {single['http']['p95']:.0f} ms | "
             f"POST + event stream; minus the engine = Gradio's queue and HTTP |",
             f"| one user, gradio_client, per answer | p50 {single['client']['p50']:.0f} ms / p95 {single['client']['p95']:.0f} ms | "
             "the client library's own overhead on top |"]
    for label, r in runs.items():
        errors = len(r["errors"])
        rss = r["rss"]
        lines.append(f"| {users} users ({label}), {r['n']} answers | p50 {r['p50']:.0f} ms / p95 **{r['p95']:.0f} ms** / "
                     f"max {r['max']:.0f} ms; {errors} errors; {r['rate']:.1f} answers/s | "
                     f"target p95 <= 2000 ms, 0 errors: {'met' if r['p95'] <= 2000 and not errors else 'MISSED'} |")
        lines.append(f"| server CPU ({label}) | {r['server_cpu_ms']:.0f} ms per answer, {r['server_cores']:.2f} cores busy | "
                     "what one answer costs the server, whatever the neighbours do |")
        lines.append(f"| server memory ({label}) | RSS {rss['before']:.0f} MB before, {rss['half']:.0f} MB at "
                     f"{total // 2}, {rss['after']:.0f} MB after {total} (peak {rss['peak']:.0f} MB) | "
                     f"growth over the second half: {rss['after'] - rss['half']:+.1f} MB |")
    cpu = "; ".join(m.line() for m in meters)
    return "\n".join(lines) + f"\n\nMachine: {describe()}\n\nCPU during the steps: {cpu} -- {verdict(meters)}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, help="an index folder (default: build one of corpus/ first)")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--serial", type=int, default=40, help="answers for the one-user figures")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before an answer counts as an error")
    parser.add_argument("--compare", action="store_true", help="also run the load with one answer at a time")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    parser.add_argument("--old-tree", type=Path, help="another checkout to load the same way, for the figures before")
    parser.add_argument("--old-index", type=Path, help="an index built by --old-tree")
    args = parser.parse_args()
    tree = args.tree.resolve()
    qs = questions()
    log(f"{len(qs)} distinct questions from {', '.join(SETS)}; measuring {tree}")
    with tempfile.TemporaryDirectory(prefix="atlas-web-bench-") as tmp:
        index = args.index or build_index(tree, Path(tmp) / "index")
        log("engine alone: ask --batch over 100 questions")
        engine = engine_alone(tree, index, qs[:100])
        single, now = run_load(tree, index, qs, args, None, "now")
        runs = {"now": now}
        if args.compare:
            runs["now, one at a time"] = run_load(tree, index, qs, args, 1, "now, one at a time")[1]
        if args.old_tree:
            old_index = args.old_index or build_index(args.old_tree.resolve(), Path(tmp) / "old-index")
            runs["before"] = run_load(args.old_tree.resolve(), old_index, qs, args, None, "before")[1]
    print(report(engine, single, runs, args.users, args.requests))
    for label, r in runs.items():
        for error in r["errors"][:5]:
            print(f"error ({label}): {error}")
    print(json.dumps({label: {k: v for k, v in r.items() if k not in ("meter", "errors")} | {"errors": len(r["errors"])}
                      for label, r in runs.items()}))


if __name__ == "__main__":
    main()
