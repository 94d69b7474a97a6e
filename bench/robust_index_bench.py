"""The index under faults, through the real model and the real command line (issue 13, item 1).

A script, not a test:  .venv/bin/python bench/robust_index_bench.py [--rounds 12] [--opens 1000]

  (a) concurrent builds: `--rounds` rounds of two `atlas-assistant index` processes started together on
      one folder (one over 5 bundled entries, one over 4 of them); each round counts both exit codes and whether
      the index then opens and answers
  (b) readers during swaps: `--opens` opens of the index (Library + one retrieval) while another process
      rebuilds it over and over, alternating the two corpora; counts failed opens and builds swapped in
  (c) damage: each kind of damage to a built index; `ask` must refuse with the fix (exit 2), `index`
      must repair it (exit 0) and `ask` must then answer (exit 0)
  (d) what checking the checksums costs when an index is opened (the bundled corpus)

Progress goes to stderr, a Markdown summary to stdout, the raw figures to --json FILE if given.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from assistant.cli import main  # noqa: E402
from assistant.index import IndexMissing, build_index, live_build, verify_build  # noqa: E402
from assistant.settings import Settings  # noqa: E402

CORPUS = ROOT / "corpus"
FILES = ["2013_meeus_mitochondria_oxidative_stress.txt", "2025_cheng_gut_microbiota_scfa.txt",
         "2026_davenport_two_day_cpet.txt", "2025_young_solriamfetol_fatigue.txt",
         "2025_gan_gut_mycobiome_age.txt"]
QUESTION = "Does mitochondrial dysfunction cause ME/CFS?"
CLI = [sys.executable, "-m", "assistant.cli"]

LOOP = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from assistant.index import build_index
from assistant.settings import Settings
index_dir, stop, corpora = Path(sys.argv[2]), Path(sys.argv[3]), [Path(p) for p in sys.argv[4:]]
n = 0
while not stop.exists():
    build_index([corpora[n % 2]], Settings(index_dir=index_dir), progress=False)
    n += 1
print(n)
"""


def say(*args):
    print(*args, file=sys.stderr, flush=True)


def corpora(work: Path) -> tuple[Path, Path]:
    five, four = work / "five", work / "four"
    for folder, names in ((five, FILES), (four, FILES[:-1])):  # both hold the study QUESTION is about
        folder.mkdir()
        for name in names:
            shutil.copy(CORPUS / name, folder / name)
    return five, four


def quiet_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def opens_and_answers(index_dir: Path) -> bool:
    code, out, _ = quiet_main(["ask", QUESTION, "--index", str(index_dir), "--json"])
    return code == 0 and json.loads(out.strip().splitlines()[-1])["status"] == "answered"


def concurrent_builds(work: Path, five: Path, four: Path, rounds: int) -> dict:
    index_dir = work / "concurrent"
    readable, truthful, waited, seconds = 0, 0, 0, []
    for n in range(rounds):
        started = time.perf_counter()
        procs = [subprocess.Popen(CLI + ["index", str(c), "--index", str(index_dir)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for c in (five, four)]
        results = [(p.wait(), p.stdout.read(), p.stderr.read()) for p in procs]
        seconds.append(time.perf_counter() - started)
        codes = [code for code, _, _ in results]
        ok = opens_and_answers(index_dir)
        readable += ok
        truthful += codes == [0, 0] and ok  # both say they succeeded, and they did
        waited += any("waiting: another" in err for _, _, err in results)
        say(f"  round {n + 1}: exit codes {codes}, index answers: {ok}, "
            f"one waited: {any('waiting: another' in e for _, _, e in results)}, {seconds[-1]:.1f} s")
    return {"rounds": rounds, "readable": readable, "exit_codes_true": truthful, "rounds_with_a_wait": waited,
            "seconds_per_round": round(sum(seconds) / len(seconds), 1),
            "builds_left": len(list((index_dir / "builds").iterdir()))}


def readers_during_swaps(work: Path, five: Path, four: Path, opens: int) -> dict:
    from assistant.embed import embed_texts
    from assistant.retrieve import Library

    index_dir, stop = work / "swaps", work / "stop"
    build_index([five], Settings(index_dir=index_dir), progress=False)
    vector = embed_texts([QUESTION])[0]
    writer = subprocess.Popen([sys.executable, "-c", LOOP, str(ROOT), str(index_dir), str(stop), str(five),
                               str(four)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    failures, seen, times = [], set(), []
    first = live_build(index_dir).name
    while live_build(index_dir).name == first and writer.poll() is None:  # the writer is under way
        time.sleep(0.05)
    for n in range(opens):
        started = time.perf_counter()
        try:
            seen.add(live_build(index_dir).name)
            if not Library(index_dir).retrieve(QUESTION, vector):
                failures.append("no hits")
        except IndexMissing as err:
            failures.append(str(err))
        times.append(time.perf_counter() - started)
        if n % 100 == 99:
            say(f"  {n + 1} opens, {len(seen)} builds seen, {len(failures)} failed")
    stop.touch()
    out, err = writer.communicate()
    return {"opens": opens, "failed": len(failures), "builds_seen_by_readers": len(seen),
            "builds_written": int(out.strip() or 0), "writer_exit": writer.returncode,
            "open_ms_p50": round(1000 * sorted(times)[len(times) // 2], 1), "first_failures": failures[:3]}


def damage_kinds(work: Path, five: Path) -> list[dict]:
    from test_robust_index import KINDS, damage  # the same kinds of damage the tests make

    rows = []
    for kind in KINDS:
        index_dir = work / ("damage-" + kind.replace(" ", "-"))
        build_index([five], Settings(index_dir=index_dir), progress=False)
        damage(index_dir, kind)
        ask_code, _, ask_err = quiet_main(["ask", QUESTION, "--index", str(index_dir)])
        started = time.perf_counter()
        index_code, _, index_err = quiet_main(["index", str(five), "--index", str(index_dir)])
        repair = time.perf_counter() - started
        after = opens_and_answers(index_dir)
        rows.append({"kind": kind, "ask_before": ask_code, "said": ask_err.strip().splitlines()[-1][:160],
                     "index": index_code, "repair_s": round(repair, 1), "ask_after": after})
        say(f"  {kind}: ask {ask_code}, index {index_code}, answers after: {after}")
    return rows


def verify_cost(work: Path) -> dict:
    index_dir = work / "corpus"
    build_index([CORPUS], Settings(index_dir=index_dir), progress=False)
    build = live_build(index_dir)
    size = sum(p.stat().st_size for p in build.rglob("*") if p.is_file())
    times = []
    for _ in range(5):
        started = time.perf_counter()
        verify_build(build)
        times.append(time.perf_counter() - started)
    return {"build_mb": round(size / 1e6, 1), "verify_ms": round(1000 * min(times), 1)}


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--opens", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip", nargs="*", default=[], choices=["concurrent", "swaps", "damage", "verify"])
    args = parser.parse_args()
    results: dict = {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        five, four = corpora(work)
        if "verify" not in args.skip:
            say("(d) checksum cost")
            results["verify"] = verify_cost(work)
        if "concurrent" not in args.skip:
            say(f"(a) {args.rounds} rounds of two concurrent builds")
            results["concurrent"] = concurrent_builds(work, five, four, args.rounds)
        if "swaps" not in args.skip:
            say(f"(b) {args.opens} opens during rebuilds")
            results["swaps"] = readers_during_swaps(work, five, four, args.opens)
        if "damage" not in args.skip:
            say("(c) damage and repair")
            results["damage"] = damage_kinds(work, five)
    results["load_after"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"Index under faults ({results['cpus']} CPUs, load {results['load_before']:.1f} -> "
          f"{results['load_after']:.1f})\n")
    if "concurrent" in results:
        c = results["concurrent"]
        print(f"- concurrent builds: {c['readable']}/{c['rounds']} rounds left a readable index that answers, "
              f"{c['exit_codes_true']}/{c['rounds']} with both exit codes 0 and true, a build waited for the "
              f"lock in {c['rounds_with_a_wait']}, {c['seconds_per_round']} s per round, "
              f"{c['builds_left']} builds left on disk")
    if "swaps" in results:
        s = results["swaps"]
        print(f"- readers during swaps: {s['failed']} of {s['opens']} opens failed while {s['builds_written']} "
              f"rebuilds ran ({s['builds_seen_by_readers']} builds seen live; open + retrieve p50 "
              f"{s['open_ms_p50']} ms)")
    if "damage" in results:
        rows = results["damage"]
        print(f"- damage: {sum(r['ask_before'] == 2 for r in rows)}/{len(rows)} refused by `ask` with the fix, "
              f"{sum(r['index'] == 0 and r['ask_after'] for r in rows)}/{len(rows)} repaired by `index`\n")
        print("| damage | `ask` before | `index` | repair s | `ask` after |\n|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['kind']} | {r['ask_before']} | {r['index']} | {r['repair_s']} | "
                  f"{'answers' if r['ask_after'] else 'FAILS'} |")
    if "verify" in results:
        v = results["verify"]
        print(f"\n- checksums on open: {v['verify_ms']} ms for a {v['build_mb']} MB build (bundled corpus)")


if __name__ == "__main__":
    run()
