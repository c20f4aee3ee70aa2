"""Resident memory per pipeline phase of one `bridgewatch` command.

    python bench/phase_memory.py [--watch MODULE:NAME ...] score DATA -o OUT --phase final --state STATE [...]

Runs the CLI with its arguments and prints, on stderr, one line per pipeline phase (each
``Clock.phase``: preprocess, every scorer, meta, status history, the state's writing): wall and
CPU seconds, resident GiB at the phase's start, its peak (the kernel's ``VmHWM``, reset at each
phase start through ``/proc/self/clear_refs``: exact, whatever thread allocates) and resident at
its end, and of that end how much is file-backed (``RssFile``: mapped cache columns the kernel can
drop). Where a phase starts above the previous one's end, what ran between them holds the
difference. Phases that run two at a time (small communities) overlap, so
read it on a community of ``threads.CONCURRENT_BELOW`` ratings or more. Linux only.

``--watch bridgewatch.scoring.helpfulness:valid_ratings`` (repeatable) also measures every call
of that function, looked up where its callers find it (the module named), as a step inside its
phase, indented by depth: the way to break a phase's peak down without editing the code. A
step's reset of the high-water mark is folded into every enclosing phase's peak first, so the
phases' peaks stay exact.
"""

from __future__ import annotations

import importlib
import sys
import time

G = 2**30


def main() -> None:
    from bridgewatch.cli import main as cli
    from bridgewatch.scoring import pipeline
    from scale import RssSampler  # this folder's scale benchmark: the same kernel counters

    rss, hwm, reset = RssSampler.rss, RssSampler._read_hwm, RssSampler._reset_hwm
    args = sys.argv[1:]
    watched: list[str] = []
    while args[:1] == ["--watch"]:
        watched.append(args[1])
        args = args[2:]

    def file_backed() -> int:
        """Resident pages of file mappings (``RssFile``: the columnar cache's columns, the
        libraries): the kernel can drop them under pressure, unlike the rest of the resident set."""
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("RssFile:"):
                    return int(line.split()[1]) * 1024
        return 0

    open_peaks: list[list[int]] = []  # one [peak] per measured call now running, outermost first

    def measure(name, fn, *a, **k):
        high = hwm()
        for peak in open_peaks:
            peak[0] = max(peak[0], high)
        reset()
        mine = [0]
        open_peaks.append(mine)
        start, t, cpu = rss(), time.perf_counter(), time.process_time()
        try:
            return fn(*a, **k)
        finally:
            open_peaks.pop()
            mine[0] = max(mine[0], hwm())
            for peak in open_peaks:
                peak[0] = max(peak[0], mine[0])
            label = "  " * len(open_peaks) + name
            print(f"{label:<44} {time.perf_counter() - t:8.1f} s {time.process_time() - cpu:8.1f} cpu s  "
                  f"start {start / G:6.2f}  peak {mine[0] / G:6.2f}  end {rss() / G:6.2f} GiB"
                  f"  (file-backed {file_backed() / G:5.2f})",
                  file=sys.stderr, flush=True)  # fmt: skip

    phase = pipeline.Clock.phase
    pipeline.Clock.phase = lambda self, name, fn: measure(name, phase, self, name, fn)
    for target in watched:
        module_name, _, attr = target.partition(":")
        module = importlib.import_module(module_name)
        fn = getattr(module, attr)

        def step(*a, _fn=fn, _name=attr, **k):
            return measure(_name, _fn, *a, **k)

        setattr(module, attr, step)
    sys.argv = ["bridgewatch", *args]
    cli()


if __name__ == "__main__":
    main()
