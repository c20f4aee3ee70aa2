"""Resident memory per pipeline phase of one `bridgewatch` command.

    python bench/phase_memory.py score DATA -o OUT --phase final --state STATE [...]

Runs the CLI with its arguments and prints, on stderr, one line per pipeline phase (each
``Clock.phase``: preprocess, every scorer, meta, status history, the state's writing): wall and
CPU seconds, resident GiB at the phase's start, its peak (the kernel's ``VmHWM``, reset at each
phase start through ``/proc/self/clear_refs``: exact, whatever thread allocates) and resident at
its end, and of that end how much is file-backed (``RssFile``: mapped cache columns the kernel can
drop). Where a phase starts above the previous one's end, what ran between them holds the
difference. Phases that run two at a time (small communities) overlap, so
read it on a community of ``threads.CONCURRENT_BELOW`` ratings or more. Linux only.
"""

from __future__ import annotations

import sys
import time

G = 2**30


def main() -> None:
    from bridgewatch.cli import main as cli
    from bridgewatch.scoring import pipeline
    from scale import RssSampler  # this folder's scale benchmark: the same kernel counters

    rss, hwm, reset = RssSampler.rss, RssSampler._read_hwm, RssSampler._reset_hwm

    phase = pipeline.Clock.phase

    def file_backed() -> int:
        """Resident pages of file mappings (``RssFile``: the columnar cache's columns, the
        libraries): the kernel can drop them under pressure, unlike the rest of the resident set."""
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("RssFile:"):
                    return int(line.split()[1]) * 1024
        return 0

    def measured(self, name, fn):
        reset()
        start, t, cpu = rss(), time.perf_counter(), time.process_time()
        out = phase(self, name, fn)
        print(f"{name:<44} {time.perf_counter() - t:8.1f} s {time.process_time() - cpu:8.1f} cpu s  "
              f"start {start / G:6.2f}  peak {hwm() / G:6.2f}  end {rss() / G:6.2f} GiB"
              f"  (file-backed {file_backed() / G:5.2f})",
              file=sys.stderr, flush=True)  # fmt: skip
        return out

    pipeline.Clock.phase = measured
    sys.argv = ["bridgewatch", *sys.argv[1:]]
    cli()


if __name__ == "__main__":
    main()
