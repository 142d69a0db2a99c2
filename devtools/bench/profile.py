"""Sampling profiles of the processes under load, with py-spy (the `bench` extra).

`leadsms bench send callbacks --profile DIR` records the web and worker processes during
the send saturation phase and the callbacks blast, and writes, per process, the collapsed stacks (`<name>.txt`, loadable
in speedscope or flamegraph.pl) and a summary: where the CPU goes by library, and the
functions with the most samples, inclusive and self. py-spy runs `--nonblocking` (the
targets are not paused to be sampled) and `--gil` (only the thread holding the GIL is
sampled: Python's own CPU, not threads waiting for the GIL or a socket). A profiled run is slower: read its shares, not its rates.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# library buckets, by a path fragment of the frame's file
BUCKETS = (
    ("send_pipeline", "/send_pipeline/"), ("webhooks", "/webhooks/"), ("intake", "/intake/"),
    ("lookup", "/lookup/"), ("portal", "/portal/"), ("shared", "/shared/"),
    ("twilio-sdk", "/twilio/"), ("dramatiq", "/dramatiq/"), ("aiohttp", "/aiohttp/"),
    ("yarl/multidict", "/yarl/"), ("yarl/multidict", "/multidict/"), ("asyncpg", "/asyncpg/"),
    ("redis-py", "/redis/"), ("structlog", "/structlog/"), ("logging", "/logging/"),
    ("json", "/json/"), ("asyncio", "/asyncio/"), ("concurrent", "/concurrent/"),
    ("threading", "threading.py"), ("selectors", "selectors.py"), ("ssl/socket", "socket.py"),
)
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


@dataclass
class Running:
    out_dir: Path
    procs: dict[str, subprocess.Popen]


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def start(out_dir: str | None, pids: dict[str, int] | None, prefix: str = "") -> Running | None:
    """Record each named pid's process tree into `out_dir/<prefix><name>.txt`."""
    if not out_dir or not pids:
        return None
    exe = py_spy()
    if exe is None:
        print("bench: --profile needs py-spy (.venv/bin/pip install py-spy); profiling skipped", file=sys.stderr)
        return None
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    procs = {}
    for bare, pid in pids.items():
        name = prefix + bare
        procs[name] = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--gil", "--rate", "200",
             "--format", "raw", "--output", str(folder / f"{name}.txt")],
            stdout=subprocess.DEVNULL, stderr=open(folder / f"{name}.py-spy.log", "wb"))
    return Running(folder, procs)


def stop(running: Running) -> dict[str, Any]:
    """Stop recording; summarize each profile; return {name: summary}."""
    for proc in running.procs.values():
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
    out: dict[str, Any] = {}
    for name, proc in running.procs.items():
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        path = running.out_dir / f"{name}.txt"
        if path.exists():
            summary = summarize(path.read_text(errors="replace"))
            (running.out_dir / f"{name}.summary.txt").write_text(render(name, summary))
            out[name] = {"samples": summary["samples"], "by_library": summary["by_library"][:8],
                         "file": str(path)}
    return out


def _parse(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    return m.group("func"), m.group("file")


def _bucket(file: str) -> str:
    file = "/" + file.lstrip("/")  # py-spy names files relative to their sys.path entry
    for name, fragment in BUCKETS:
        if fragment in file:
            return name
    return "other" if file else "native/other"


def summarize(collapsed: str, top: int = 25) -> dict[str, Any]:
    """From py-spy's raw (collapsed) stacks: total samples, self samples by library (the
    library of the innermost frame), and the top functions by inclusive and self samples."""
    total = 0
    by_library: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_parse(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        func, file = frames[-1]
        by_library[_bucket(file)] += n
        self_[f"{func} ({_short(file)})"] += n
        for label in {f"{fn} ({_short(fl)})" for fn, fl in frames}:
            inclusive[label] += n
    pct = lambda c: round(100.0 * c / total, 1) if total else 0.0  # noqa: E731
    return {
        "samples": total,
        "by_library": [(k, pct(v)) for k, v in by_library.most_common()],
        "inclusive": [(k, pct(v)) for k, v in inclusive.most_common(top)],
        "self": [(k, pct(v)) for k, v in self_.most_common(top)],
    }


def _short(file: str) -> str:
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def render(name: str, summary: dict[str, Any]) -> str:
    lines = [f"# {name}: {summary['samples']} samples", "", "## self samples by library (%)"]
    lines += [f"{pct:6.1f}  {lib}" for lib, pct in summary["by_library"]]
    lines += ["", "## inclusive (%)"] + [f"{pct:6.1f}  {fn}" for fn, pct in summary["inclusive"]]
    lines += ["", "## self (%)"] + [f"{pct:6.1f}  {fn}" for fn, pct in summary["self"]]
    return "\n".join(lines) + "\n"
