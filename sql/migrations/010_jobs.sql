-- Jobs (exports, reports, their scheduled runs) and the schedules that start them. The metadata pattern:
-- ReplacingMergeTree(version, is_deleted), each change a whole new version, read with FINAL. A job's
-- progress, liveness and cancel flag change too often for rows: they live in Redis (nexus.jobs.store).
-- Neither table is readable through ad-hoc SQL: a schedule holds its webhook's signing secret.
CREATE TABLE IF NOT EXISTS jobs
(
    project_id   UInt32 COMMENT 'Project the job reads (and only that one)',
    job_id       String COMMENT 'Public id of the job (j_ + 16 characters)',
    kind         LowCardinality(String) COMMENT 'What the job does: export',
    definition   String COMMENT 'JSON of what to do, as checked when the job was created (an export request)',
    state        LowCardinality(String) COMMENT 'queued, running, done, failed or cancelled',
    attempts     UInt8 COMMENT 'Attempts started so far',
    error        String COMMENT 'Why the job failed, or why the last attempt did when it will be retried',
    rows         UInt64 COMMENT 'Rows written to the file',
    bytes        UInt64 COMMENT 'Size of the file in bytes',
    file_name    String COMMENT 'The download name of the file (empty until done, and once removed)',
    schedule_id  String COMMENT 'The schedule that started this run (empty for a job asked for directly)',
    due_at       Nullable(DateTime64(3, 'UTC')) COMMENT 'For a scheduled run: the time it was due',
    deliveries   String COMMENT 'JSON array of delivery results: [{"destination", "ok", "detail", "at"}]',
    created_by   String COMMENT 'Id of the API key that asked for the job (empty: a schedule)',
    created_at   DateTime64(3, 'UTC') COMMENT 'When the job was queued',
    started_at   Nullable(DateTime64(3, 'UTC')) COMMENT 'When its latest attempt started',
    finished_at  Nullable(DateTime64(3, 'UTC')) COMMENT 'When it ended (done, failed or cancelled)',
    version      UInt64 COMMENT 'Row version: the highest wins',
    is_deleted   UInt8 DEFAULT 0 COMMENT '1 when the job record was removed'
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY project_id
ORDER BY (project_id, job_id)
COMMENT 'Background jobs and their state; read with FINAL';

CREATE TABLE IF NOT EXISTS schedules
(
    project_id   UInt32 COMMENT 'Project the schedule exports from',
    schedule_id  String COMMENT 'Public id of the schedule (s_ + 12 characters)',
    name         String COMMENT 'Name as the user typed it',
    definition   String COMMENT 'JSON of the schedule: cron, time zone, export request, destinations, missed-run policy',
    paused       Bool COMMENT 'true while paused: no run is started',
    created_by   String COMMENT 'Id of the API key that created the schedule',
    created_at   DateTime64(3, 'UTC') COMMENT 'When the schedule was created',
    updated_at   DateTime64(3, 'UTC') COMMENT 'When the schedule was last changed',
    version      UInt64 COMMENT 'Row version: the highest wins',
    is_deleted   UInt8 DEFAULT 0 COMMENT '1 when the schedule was deleted'
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY project_id
ORDER BY (project_id, schedule_id)
COMMENT 'Export and report schedules (cron with a time zone); read with FINAL';
