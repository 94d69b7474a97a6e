"""What a bench on a shared machine needs beside its own figures: the machine, and how much CPU other
processes took while it ran (bench/index_bench.py started this; the web and cold-start benches share it).

`Meter` samples /proc/stat (all CPU time spent on the machine) and the CPU time of the processes the
bench owns (itself, the children it waited for, and live processes it names, such as a server), so
"others" is everything the bench did not spend itself."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK  # all but idle and iowait


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU of a live process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Meter:
    """CPU used by others (cores, averaged over the step) while a `with Meter(...)` block runs."""

    def __init__(self, step: str, pids: tuple[int, ...] = ()):
        self.step, self.pids = step, pids
        self.others = self.own = self.wall = 0.0

    def _own(self) -> float:
        times = os.times()
        return (times.user + times.system + times.children_user + times.children_system
                + sum(process_cpu_seconds(pid) for pid in self.pids))

    def __enter__(self):
        self.start = (machine_busy_seconds(), self._own(), time.perf_counter())
        return self

    def __exit__(self, *exc):
        busy, own, now = machine_busy_seconds(), self._own(), time.perf_counter()
        self.wall = now - self.start[2]
        self.own = (own - self.start[1]) / max(self.wall, 1e-9)
        self.others = max(0.0, (busy - self.start[0]) - (own - self.start[1])) / max(self.wall, 1e-9)
        return False

    def line(self) -> str:
        return f"{self.step}: others {self.others:.2f} cores, this bench {self.own:.2f} cores, {self.wall:.1f} s"


def verdict(meters: list[Meter], threshold: float = 0.25) -> str:
    worst = max((m.others for m in meters), default=0.0)
    return ("quiet" if worst <= threshold else
            f"BUSY: other processes used up to {worst:.2f} of {os.cpu_count()} cores, so these figures are inflated")


def describe() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or cpu

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    return (f"{cpu}, {os.cpu_count()} cores; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, torch {version('torch')}, "
            f"sentence-transformers {version('sentence-transformers')}, gradio {version('gradio')}, "
            f"gradio_client {version('gradio_client')}")
