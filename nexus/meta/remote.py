"""Administering a running Nexus over HTTP (`nexus project … --url`, `nexus key … --url`): the methods of
nexus.meta.admin.Administration, answered by the server's admin API for the key given. Like `nexus sql
--url` (nexus.adhoc.remote, whose error mapping it shares), it needs only the standard library."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import msgspec

from nexus.adhoc.remote import _error
from nexus.errors import StorageUnavailable
from nexus.meta import projects
from nexus.meta.admin import KeyInput, KeyView, LimitsView, NewKey, ProjectInput
from nexus.meta.projects import Project


class RemoteAdministration:
    def __init__(self, url: str, key: str, timeout: float = 60):
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout

    def create_project(self, data: ProjectInput) -> Project:
        return self._call("POST", "/v1/projects", Project, data)

    def list_projects(self) -> list[Project]:
        return self._call("GET", "/v1/projects", list[Project])

    def find_project(self, reference: str) -> Project:
        """The project named or numbered `reference`, among those this key administers."""
        text = reference.strip()
        for project in self.list_projects():
            if text in (project.name, str(project.project_id)):
                return project
        raise projects.not_found(text)

    def create_key(self, data: KeyInput) -> NewKey:
        return self._call("POST", "/v1/keys", NewKey, data)

    def list_keys(self, project_id: int | None = None) -> list[KeyView]:
        query = "" if project_id is None else f"?project_id={project_id}"
        return self._call("GET", f"/v1/keys{query}", list[KeyView])

    def revoke_key(self, key_id: str) -> KeyView:
        return self._call("DELETE", f"/v1/keys/{_segment(key_id)}", KeyView)

    def get_limits(self, key_id: str) -> LimitsView:
        return self._call("GET", f"/v1/keys/{_segment(key_id)}/limits", LimitsView)

    def set_limits(self, key_id: str, data: msgspec.Struct) -> LimitsView:
        return self._call("PUT", f"/v1/keys/{_segment(key_id)}/limits", LimitsView, data)

    def _call(self, method: str, path: str, answer: Any, body: msgspec.Struct | None = None) -> Any:
        return call(self.url, self.key, method, path, answer, body, self.timeout)


def call(url: str, key: str, method: str, path: str, answer: Any, body: msgspec.Struct | None = None,
         timeout: float = 60) -> Any:
    """One request to the Nexus API at `url` with `key`; the JSON answer decoded as `answer`, an error
    answer raised as the error it names (one line, as the server gave it)."""
    request = urllib.request.Request(
        url + path, method=method, data=None if body is None else msgspec.json.encode(body),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return msgspec.json.decode(response.read(), type=answer)
    except urllib.error.HTTPError as e:
        raise _error(e.code, e.read()) from None
    except (urllib.error.URLError, OSError) as e:
        raise StorageUnavailable(f"cannot reach Nexus at {url}: {getattr(e, 'reason', e)}") from None
    except msgspec.DecodeError as e:
        raise StorageUnavailable(f"{url} did not answer as Nexus does: {e}") from None


def _segment(text: str) -> str:
    return urllib.parse.quote(text, safe="")
