"""Who may read Nexus's files: only the account that runs it. The data dir holds every project's events,
so it is created 700 and everything in it 600, and a start on an existing dir that others can enter says so.

The root of it is the process umask, set to 077 before anything is created: chDB writes its parts from
this process's threads and the embedded redis-server inherits the umask, and both create their files
with mode 666/777 less the umask (measured: chDB 26.9 gives 600/700 under it, 644/755 without).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from nexus.errors import StorageUnavailable

PRIVATE_UMASK = 0o077

log = logging.getLogger("nexus.permissions")


def private_files() -> None:
    """From now on this process (and the processes it starts) creates files 600 and directories 700."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) 700; an existing one is left as it is, but checked."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise StorageUnavailable(f"cannot create {path}: {e.strerror}") from None
    warn_if_open(path)
    return path


def open_to_others(path: Path) -> int:
    """The permission bits of `path` that let other users in (group or other), 0 when none or missing."""
    try:
        return stat.S_IMODE(path.stat().st_mode) & 0o077
    except OSError:
        return 0


def warn_if_open(path: Path) -> bool:
    """Log a warning when other local users may read or enter `path`; True if so."""
    if not open_to_others(path):
        return False
    mode = stat.S_IMODE(path.stat().st_mode)
    log.warning("%s is open to other local users (mode %o), who can read every project's data there: "
                "chmod -R go-rwx %s", path, mode, path)
    return True
