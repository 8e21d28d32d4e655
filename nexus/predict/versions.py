"""The model store: each trained model a version under `<data dir>/models/<project>/<kind>/<version id>/`
(`model.pickle`, the fitted scikit-learn estimator, and `version.json`, what it is: parameters, features,
metrics, training range, row counts, content hash), and per kind an `active.json` naming the version that
scores, with the versions active before it, newest last, to roll back to.

The content hash is SHA-256 over the pickled estimator and the version's parameters, features and training
range: the same data, request and seed give the same hash (tested), so a retrained model that changed
nothing is recognisable. Files are written to a temporary name and renamed, so a reader never sees half a
version; `active.json` changes under a lock file, so two activations cannot interleave. Pickles are only
ever read from this directory, which only Nexus writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pickle
import secrets
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

from nexus.errors import InvalidRequest, NotFound
from nexus.meta import records
from nexus.predict.dataset import TrainingRange
from nexus.predict.training import Trained

Kind = Literal["churn", "ltv"]
KINDS: tuple[str, ...] = ("churn", "ltv")


class ModelVersion(msgspec.Struct, frozen=True):
    version_id: str
    kind: str
    project_id: int
    created_at: datetime
    job_id: str
    parameters: dict[str, Any]
    features: list[str]
    metrics: dict[str, Any]
    training: TrainingRange
    rows: dict[str, int]
    content_hash: str
    reference: dict[str, Any] = {}  # the typical feature values per-person drivers are measured against


class VersionView(msgspec.Struct, frozen=True):
    """A version as the API lists it: the record and whether it scores now."""

    active: bool
    version: ModelVersion


class _Active(msgspec.Struct):
    version_id: str | None = None
    previous: list[str] = msgspec.field(default_factory=list)


def root(data_dir: Path) -> Path:
    return data_dir / "models"


def _kind_dir(data_dir: Path, project_id: int, kind: str) -> Path:
    if kind not in KINDS:
        raise InvalidRequest("the model kind must be churn or ltv", field="kind")
    return root(data_dir) / str(project_id) / kind


def content_hash(trained: Trained) -> str:
    digest = hashlib.sha256(pickle.dumps(trained.estimator, protocol=5))
    digest.update(msgspec.json.encode([trained.kind, trained.parameters, trained.features, trained.training]))
    return digest.hexdigest()


def save(data_dir: Path, project_id: int, trained: Trained, job_id: str = "",
         version_id: str | None = None) -> ModelVersion:
    """Store `trained` as a new version (not yet active); a `version_id` already stored is kept as it is
    (a retried training job saves once)."""
    directory = _kind_dir(data_dir, project_id, trained.kind)
    if version_id and (directory / version_id / "version.json").is_file():
        return get(data_dir, project_id, trained.kind, version_id)
    version = ModelVersion(version_id or "mv_" + secrets.token_hex(8), trained.kind, project_id, records.now(),
                           job_id, trained.parameters, trained.features, trained.metrics, trained.training,
                           trained.rows, content_hash(trained), trained.reference)
    staging = directory / f".{version.version_id}.partial"
    shutil.rmtree(staging, ignore_errors=True)  # left by an attempt that died while writing
    staging.mkdir(parents=True)
    try:
        (staging / "model.pickle").write_bytes(pickle.dumps(trained.estimator, protocol=5))
        (staging / "version.json").write_bytes(msgspec.json.encode(version))
        staging.rename(directory / version.version_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return version


def listing(data_dir: Path, project_id: int, kind: str | None = None) -> list[VersionView]:
    """The project's versions (of one kind, or of both), newest first."""
    found = []
    for each in (kind,) if kind else KINDS:
        active = _read_active(data_dir, project_id, each).version_id
        directory = _kind_dir(data_dir, project_id, each)
        for path in directory.glob("mv_*/version.json") if directory.is_dir() else []:
            version = msgspec.json.decode(path.read_bytes(), type=ModelVersion)
            found.append(VersionView(version.version_id == active, version))
    return sorted(found, key=lambda v: (v.version.created_at, v.version.version_id), reverse=True)


def get(data_dir: Path, project_id: int, kind: str, version_id: str) -> ModelVersion:
    path = _kind_dir(data_dir, project_id, kind) / version_id / "version.json"
    if not version_id.startswith("mv_") or "/" in version_id or not path.is_file():
        # The same answer for another project's version as for a missing one.
        raise NotFound(f"no {kind} model version {version_id!r} in this project")
    return msgspec.json.decode(path.read_bytes(), type=ModelVersion)


def estimator(data_dir: Path, version: ModelVersion) -> Any:
    return pickle.loads((_kind_dir(data_dir, version.project_id, version.kind) / version.version_id
                         / "model.pickle").read_bytes())


def active(data_dir: Path, project_id: int, kind: str) -> ModelVersion | None:
    version_id = _read_active(data_dir, project_id, kind).version_id
    return get(data_dir, project_id, kind, version_id) if version_id else None


def activate(data_dir: Path, project_id: int, kind: str, version_id: str) -> ModelVersion:
    """Make `version_id` the one that scores; the one it replaces can be rolled back to."""
    version = get(data_dir, project_id, kind, version_id)
    with _locked(data_dir, project_id, kind):
        state = _read_active(data_dir, project_id, kind)
        if state.version_id != version_id:
            if state.version_id:
                state.previous.append(state.version_id)
            state.version_id = version_id
            _write_active(data_dir, project_id, kind, state)
    return version


def roll_back(data_dir: Path, project_id: int, kind: str) -> ModelVersion:
    """Make the version active before the current one active again."""
    with _locked(data_dir, project_id, kind):
        state = _read_active(data_dir, project_id, kind)
        if not state.previous:
            raise InvalidRequest(f"no earlier active {kind} model to roll back to", field="kind")
        state.version_id = state.previous.pop()
        _write_active(data_dir, project_id, kind, state)
    return get(data_dir, project_id, kind, state.version_id)


def projects_with_active(data_dir: Path) -> list[int]:
    """Projects that have an active version of some kind: the ones a scoring run has work for."""
    base = root(data_dir)
    found = set()
    for path in base.glob("*/*/active.json") if base.is_dir() else []:
        if path.parent.name in KINDS and path.parent.parent.name.isdigit() and \
                msgspec.json.decode(path.read_bytes(), type=_Active).version_id:
            found.add(int(path.parent.parent.name))
    return sorted(found)


def _read_active(data_dir: Path, project_id: int, kind: str) -> _Active:
    path = _kind_dir(data_dir, project_id, kind) / "active.json"
    return msgspec.json.decode(path.read_bytes(), type=_Active) if path.is_file() else _Active()


def _write_active(data_dir: Path, project_id: int, kind: str, state: _Active) -> None:
    path = _kind_dir(data_dir, project_id, kind) / "active.json"
    staging = path.with_name("active.json.partial")
    staging.write_bytes(msgspec.json.encode(state))
    os.replace(staging, path)


@contextlib.contextmanager
def _locked(data_dir: Path, project_id: int, kind: str) -> Iterator[None]:
    directory = _kind_dir(data_dir, project_id, kind)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
