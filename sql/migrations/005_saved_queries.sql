-- Ad-hoc SQL: saved queries, per-key query limits, and comments on the columns engineers query.
-- Both tables follow the metadata pattern: ReplacingMergeTree(version, is_deleted), read with FINAL.
CREATE TABLE IF NOT EXISTS saved_queries
(
    project_id     UInt32 COMMENT 'Project the query belongs to (and runs in)',
    query_id       String COMMENT 'Public id of the query (q_ + 12 characters)',
    name           String COMMENT 'Unique name within the project',
    description    String COMMENT 'What the query answers',
    sql            String COMMENT 'ClickHouse SELECT, with {name:Type} parameters',
    parameters     String COMMENT 'JSON array of the parameters the SQL declares: [{"name", "type"}]',
    default_params String COMMENT 'JSON object of parameter values used when a run does not give them',
    created_by     String COMMENT 'Id of the API key that saved the query',
    created_at     DateTime64(3, 'UTC') COMMENT 'When the query was first saved',
    updated_at     DateTime64(3, 'UTC') COMMENT 'When the query was last changed',
    version        UInt64 COMMENT 'Row version: the highest wins',
    is_deleted     UInt8 DEFAULT 0 COMMENT '1 when the query was deleted'
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (project_id, query_id)
COMMENT 'Saved ad-hoc SQL queries, runnable by id with parameters (dashboard tiles, export sources); read with FINAL';

-- A limit left NULL takes the installation's default.
CREATE TABLE IF NOT EXISTS query_limits
(
    project_id       UInt32 COMMENT 'Project of the key',
    key_id           String COMMENT 'API key the limits apply to',
    max_seconds      Nullable(UInt32) COMMENT 'Longest run time of a query (0: none)',
    max_memory_bytes Nullable(UInt64) COMMENT 'Most memory a query may use (0: none)',
    max_rows_to_read Nullable(UInt64) COMMENT 'Most rows a query may read from tables (0: none)',
    max_result_rows  Nullable(UInt64) COMMENT 'Most rows a streamed result may have (0: none)',
    max_result_bytes Nullable(UInt64) COMMENT 'Most uncompressed bytes a result may have (0: none)',
    max_json_rows    Nullable(UInt64) COMMENT 'Most rows a JSON answer may have (0: none)',
    updated_at       DateTime64(3, 'UTC') COMMENT 'When the limits were last set',
    version          UInt64 COMMENT 'Row version: the highest wins',
    is_deleted       UInt8 DEFAULT 0 COMMENT '1 when the limits were removed'
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (project_id, key_id)
COMMENT 'Ad-hoc SQL limits per API key, over the installation defaults; read with FINAL';

-- GET /v1/schema shows these comments to the people writing SQL. Setting a comment is idempotent.
ALTER TABLE events_hourly
    COMMENT COLUMN project_id 'Project the events belong to',
    COMMENT COLUMN event 'Event name';

ALTER TABLE events_daily
    COMMENT COLUMN project_id 'Project the events belong to',
    COMMENT COLUMN event 'Event name',
    COMMENT COLUMN country 'ISO 3166-1 alpha-2 country from the IP',
    COMMENT COLUMN browser 'Browser family from the user agent',
    COMMENT COLUMN os 'Operating system family',
    COMMENT COLUMN device_type 'desktop, mobile, tablet or bot',
    COMMENT COLUMN referrer_class 'search, social, email, direct or other',
    COMMENT COLUMN utm_source 'Campaign source';

ALTER TABLE sessions
    COMMENT COLUMN project_id 'Project the session belongs to',
    COMMENT COLUMN session_id 'Session id as sent with the events',
    COMMENT COLUMN country 'Country of the session''s first event (any)',
    COMMENT COLUMN device_type 'Device type of the session (any of its events)',
    COMMENT COLUMN browser 'Browser family of the session (any of its events)';

ALTER TABLE projects
    COMMENT COLUMN created_at 'When the project was created',
    COMMENT COLUMN version 'Row version: the highest wins',
    COMMENT COLUMN is_deleted '1 when the project was deleted';
