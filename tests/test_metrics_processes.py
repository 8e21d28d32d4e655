"""Several processes' metrics in one exposition (server mode): each writes its values to files in the
shared directory, a scrape from any of them adds them up, and a process gone stops counting in gauges."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

RECORD = """
import sys
from pathlib import Path
from nexus.observe.metrics import forget_process, metrics, use_directory
use_directory(Path(sys.argv[1]))
metrics().events.labels("received").inc(3)
metrics().writer_queued.set(5)
if sys.argv[2] == "exit":
    forget_process()
"""

SCRAPE = """
import sys
from pathlib import Path
from nexus.observe.metrics import exposition, use_directory
use_directory(Path(sys.argv[1]))
sys.stdout.write(exposition().decode())
"""


def _run(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_processes_add_up_and_a_gone_one_leaves_the_gauges(tmp_path: Path):
    _run(RECORD, str(tmp_path), "exit")
    _run(RECORD, str(tmp_path), "stay")  # as a process killed without its exit
    samples = {(s.name, tuple(s.labels.items())): s.value
               for family in text_string_to_metric_families(_run(SCRAPE, str(tmp_path))) for s in family.samples}
    assert samples[("nexus_ingest_events_total", (("outcome", "received"),))] == 6
    assert samples[("nexus_writer_queued_events", ())] == 5  # the exited process's 5 no longer counts
