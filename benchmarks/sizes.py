"""What the benchmarks share: sizes as their options spell them (200k, 1M, 10M) and as their tables and data
folders name them, and the machine's load printed beside each run."""

from __future__ import annotations

from pathlib import Path


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * scale)


def size_label(size: int) -> str:
    return f"{size // 1_000_000}M" if size % 1_000_000 == 0 else f"{size // 1000}k"


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages: on 2 cores shared with others, a load of 4 means
    every process here gets about half the time it would get alone."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
