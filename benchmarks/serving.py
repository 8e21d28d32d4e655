"""What the benchmarks that start `nexus serve` share: finding the URL it serves on."""

from __future__ import annotations

import re
import subprocess


def served_url(server: subprocess.Popen) -> str:
    """The URL on serve's "serving" line; serve prints what it made first (the instance admin key, notes)."""
    for line in server.stdout:
        if serving := re.search(r"Nexus is serving (http://\S+)", line):
            return serving[1]
    raise SystemExit("nexus serve stopped before it served")
