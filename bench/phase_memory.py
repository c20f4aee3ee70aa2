"""Resident memory per pipeline phase of one `bridgewatch` command.

    python bench/phase_memory.py score DATA -o OUT --phase final --state STATE [...]

Runs the CLI with its arguments and prints, on stderr, one line per pipeline phase (each
``Clock.phase``: preprocess, every scorer, meta, status history, the state's writing): wall and
CPU seconds, resident GiB at the phase's start, its peak (the kernel's ``VmHWM``, reset at each
phase start through ``/proc/self/clear_refs``: exact, whatever thread allocates) and resident at
its end. Where a phase starts above the previous one's end, what ran between them (the outputs'
assembly) holds the difference. Phases that run two at a time (small communities) overlap, so
read it on a community of ``threads.CONCURRENT_BELOW`` ratings or more. Linux only.
"""

from __future__ import annotations

import sys
import time

G = 2**30


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * 4096


def _hwm() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _reset() -> None:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")


def main() -> None:
    from bridgewatch.cli import main as cli
    from bridgewatch.scoring import pipeline

    phase = pipeline.Clock.phase

    def measured(self, name, fn):
        _reset()
        start, t, cpu = _rss(), time.perf_counter(), time.process_time()
        out = phase(self, name, fn)
        print(f"{name:<44} {time.perf_counter() - t:8.1f} s {time.process_time() - cpu:8.1f} cpu s  "
              f"start {start / G:6.2f}  peak {_hwm() / G:6.2f}  end {_rss() / G:6.2f} GiB",
              file=sys.stderr, flush=True)  # fmt: skip
        return out

    pipeline.Clock.phase = measured
    sys.argv = ["bridgewatch", *sys.argv[1:]]
    cli()


if __name__ == "__main__":
    main()
