"""What a dashboard page reads through: the signed-in person's project, and the read services asked on
their behalf, each call checking first that the key behind the project is still active (a revoked key's
open pages stop answering at once, and their next check closes them)."""

from __future__ import annotations

from typing import Any

import msgspec
import panel as pn

from nexus.adhoc import saved
from nexus.adhoc.sandbox import JsonAnswer
from nexus.analyses import catalog
from nexus.api.limits import RateLimiter
from nexus.dashboard.signin import COOKIE, Grant, SignIns, Viewer
from nexus.errors import Forbidden, Unauthorized
from nexus.exports import request as export_request
from nexus.exports.request import ExportRequest
from nexus.jobs import files, schedules, store
from nexus.jobs.schedules import Schedule
from nexus.jobs.store import JobView
from nexus.meta import dashboards
from nexus.meta import channels as channel_rules
from nexus.meta import cohorts as saved_cohorts
from nexus.meta import experiments as saved_experiments
from nexus.predict import versions
from nexus.predict.versions import VersionView
from nexus.meta import goals as saved_goals
from nexus.meta.erasures import Erasure
from nexus.runtime import Runtime
from nexus.services.analyses import Answer
from nexus.store import erasure


class Dashboard:
    """The process's dashboard: its runtime and sign-ins, shared by every page session."""

    def __init__(self, runtime: Runtime, signins: SignIns):
        self.runtime = runtime
        self.signins = signins
        # The key's rate limit counts the dashboard's reads as the API's (NEXUS_RATE_LIMIT per key).
        self.limiter = RateLimiter(runtime.redis.client, runtime.settings.rate_limit)

    def viewer(self) -> Viewer | None:
        """Who opened the current page (Bokeh passes the page's cookies into its session), if still signed in."""
        cookies = pn.state.cookies or {}
        return self.signins.viewer(self.signins.token_from_cookie(cookies.get(COOKIE)))


class Reader:
    """The read services for one project, as one signed-in person."""

    def __init__(self, dashboard: Dashboard, viewer: Viewer, grant: Grant):
        self.dashboard = dashboard
        self.viewer = viewer
        self.grant = grant

    @property
    def project_id(self) -> int:
        return self.grant.project_id

    @property
    def can_edit(self) -> bool:
        return self.grant.scope == "admin"

    def still_allowed(self) -> bool:
        current = self.dashboard.signins.viewer(self.viewer.token)
        return current is not None and current.grant(self.project_id) is not None

    def _check(self) -> None:
        if not self.still_allowed():
            raise Unauthorized("your sign-in ended or its key was revoked: sign in again")
        self.dashboard.limiter.check(self.grant.key_id)

    def answer(self, kind: str, request: dict[str, Any] | msgspec.Struct) -> Answer:
        self._check()
        return self.dashboard.runtime.analyses.answer(self.project_id, kind, request)

    def query(self, sql: str, params: dict[str, Any], max_rows: int) -> JsonAnswer:
        """Ad-hoc SQL in the same sandbox, limits and slots as POST /v1/query, as this key."""
        self._check()
        queries = self.dashboard.runtime.queries
        limits = queries.limits_for(self.grant.key_id)
        return queries.answer_json(self.project_id, sql, params, limits, max_rows, key_id=self.grant.key_id)

    def query_file(self, sql: str, params: dict[str, Any], fmt: str) -> bytes:
        """The whole result of ad-hoc SQL as a CSV or Parquet file, within the key's limits."""
        self._check()
        queries = self.dashboard.runtime.queries
        result = queries.open(self.project_id, sql, params, fmt, queries.limits_for(self.grant.key_id),  # type: ignore[arg-type]
                              key_id=self.grant.key_id)
        try:
            return b"".join(result)
        finally:
            result.close()

    def event_names(self) -> list[catalog.EventName]:
        self._check()
        return catalog.event_names(self.dashboard.runtime.clickhouse, self.project_id)

    def properties(self, event: str | None = None) -> list[catalog.PropertyName]:
        self._check()
        return catalog.properties(self.dashboard.runtime.clickhouse, self.project_id, event)

    def dashboards(self) -> list[dashboards.Dashboard]:
        """The project's saved dashboards; a project made before dashboards existed gets its default now."""
        self._check()
        client = self.dashboard.runtime.clickhouse
        return dashboards.list_all(client, self.project_id) or [dashboards.ensure_default(client, self.project_id)]

    def goals(self) -> list[saved_goals.Goal]:
        """The project's saved goals, by name (any key that may read lists them, as GET /v1/goals)."""
        self._check()
        return saved_goals.list_all(self.dashboard.runtime.clickhouse, self.project_id)

    def cohorts(self) -> list[saved_cohorts.Cohort]:
        """The project's saved cohorts, by name (any key that may read lists them, as GET /v1/cohorts)."""
        self._check()
        return saved_cohorts.list_all(self.dashboard.runtime.clickhouse, self.project_id)

    def model_versions(self) -> list[VersionView]:
        """The project's prediction model versions, newest first (any key that may read lists them, as GET
        /v1/models)."""
        self._check()
        return versions.listing(self.dashboard.runtime.settings.data_dir, self.project_id)

    def experiments(self) -> list[saved_experiments.Experiment]:
        """The project's saved experiments, by key (any key that may read lists them, as GET /v1/experiments)."""
        self._check()
        return saved_experiments.list_all(self.dashboard.runtime.clickhouse, self.project_id)

    def channels(self) -> channel_rules.Channels:
        """The project's channel rules, as GET /v1/channels."""
        self._check()
        return channel_rules.get(self.dashboard.runtime.clickhouse, self.project_id)

    def save_channels(self, body: bytes) -> channel_rules.Channels:
        """Save rules given as PUT /v1/channels's JSON body, checked as that route checks them (an admin key's)."""
        self._check_admin("changing the channel rules")
        return channel_rules.replace(self.dashboard.runtime.clickhouse, self.project_id, channel_rules.decode(body),
                                     self.grant.key_id)

    def reset_channels(self) -> channel_rules.Channels:
        self._check_admin("restoring the default channel rules")
        return channel_rules.reset(self.dashboard.runtime.clickhouse, self.project_id)

    def saved_dashboard(self, dashboard_id: str) -> dashboards.Dashboard:
        self._check()
        return dashboards.get(self.dashboard.runtime.clickhouse, self.project_id, dashboard_id)

    def save_dashboard(self, dashboard_id: str | None, data: dashboards.DashboardInput) -> dashboards.Dashboard:
        """Create (no id) or replace a saved dashboard: an admin key's right, as through /v1/dashboards."""
        self._check_admin()
        client = self.dashboard.runtime.clickhouse
        if dashboard_id is None:
            return dashboards.create(client, self.project_id, data, self.grant.key_id)
        return dashboards.replace(client, self.project_id, dashboard_id, data)

    def delete_dashboard(self, dashboard_id: str) -> None:
        self._check_admin()
        dashboards.delete(self.dashboard.runtime.clickhouse, self.project_id, dashboard_id)

    def erase_person(self, person: str) -> Erasure:
        """Erase a person of the project for good (GDPR): an admin key's right, as DELETE /v1/persons/{id}."""
        self._check_admin("erasing a person")
        runtime = self.dashboard.runtime
        return erasure.erase(runtime.clickhouse, self.project_id, person, self.grant.key_id, runtime.redis.client)

    def _check_admin(self, action: str = "changing dashboards") -> None:
        self._check()
        if not self.can_edit:
            raise Forbidden(f"{action} takes an admin key: sign in with one of this project's")

    def saved_queries(self) -> list[saved.SavedQueryView]:
        """The project's saved queries, by name (any key that may read lists them, as GET /v1/queries)."""
        self._check()
        return [saved.view(q) for q in saved.list_all(self.dashboard.runtime.queries.client, self.project_id)]

    def save_query(self, name: str, sql: str, params: dict[str, Any]) -> saved.SavedQueryView:
        """Save ad-hoc SQL under a new name with `params` as its defaults, checked in the sandbox first.
        An admin key only, as POST /v1/queries: saved queries feed the project's dashboards and scheduled
        exports. The key's id is recorded as the author."""
        self._check()
        if not self.can_edit:
            raise Forbidden("saving a query takes an admin key of this project (read keys list and run them)")
        data = saved.SavedQueryInput(name=name, sql=sql, default_params=params)
        return saved.view(saved.create(self.dashboard.runtime.queries, self.project_id, data, self.grant.key_id))

    # Jobs and exports, as /v1/exports and /v1/jobs do them --------------------------------------------

    def jobs(self, limit: int = 50) -> list[JobView]:
        """The project's jobs, newest first, with the progress of those running."""
        self._check()
        runtime = self.dashboard.runtime
        found = store.list_for(runtime.clickhouse, self.project_id, limit=limit)
        return [store.view(job, runtime.redis.client) for job in found]

    def export(self, request: ExportRequest) -> JobView:
        """Queue an export as POST /v1/exports does: checked first (InvalidRequest names the field), then run
        as this key, whose reads it may export (a read key may)."""
        self._check()
        runtime = self.dashboard.runtime
        wanted = export_request.checked(runtime.queries, self.project_id, request, runtime.settings.export_max_rows)
        job = runtime.jobs.submit(self.project_id, "export", wanted, self.grant.key_id)
        return store.view(job, runtime.redis.client)

    def cancel_job(self, job_id: str) -> JobView:
        """Cancel a queued or running job of this project; a finished one is answered as it is."""
        self._check()
        runtime = self.dashboard.runtime
        job = runtime.jobs.cancel(store.get(runtime.clickhouse, self.project_id, job_id))
        return store.view(job, runtime.redis.client)

    def job_file(self, job_id: str) -> files.ExportFile:
        """A finished export's file, its name and media type, as GET /v1/exports/{id}/file serves them;
        NotFound for another project's job, one without a file, or a file removed after its retention."""
        self._check()
        runtime = self.dashboard.runtime
        return files.finished(runtime.clickhouse, runtime.settings, self.project_id, job_id)

    # Schedules, as /v1/schedules shows them: any key reads them, an admin key pauses and resumes ------------

    def schedules(self) -> list[Schedule]:
        self._check()
        return schedules.list_all(self.dashboard.runtime.clickhouse, self.project_id)

    def schedule_runs(self, schedule_id: str, limit: int = 5) -> list[JobView]:
        """The schedule's latest runs, newest first."""
        self._check()
        runtime = self.dashboard.runtime
        schedules.find(runtime.clickhouse, self.project_id, schedule_id)
        found = store.list_for(runtime.clickhouse, self.project_id, schedule_id=schedule_id, limit=limit)
        return [store.view(job, runtime.redis.client) for job in found]

    def pause_schedule(self, schedule_id: str) -> Schedule:
        self._check_admin("pausing a schedule")
        return schedules.set_paused(self.dashboard.runtime.clickhouse, self.project_id, schedule_id, True)

    def resume_schedule(self, schedule_id: str) -> Schedule:
        self._check_admin("resuming a schedule")
        return schedules.set_paused(self.dashboard.runtime.clickhouse, self.project_id, schedule_id, False)
