-- Metadata follows one pattern: ReplacingMergeTree(version, is_deleted), ordered by the record's key,
-- written as whole new versions and read with FINAL. Later metadata (dashboards, cohorts, goals, ...)
-- follows it too, in the same database: no second store.
CREATE TABLE IF NOT EXISTS projects
(
    project_id UInt32 COMMENT 'Project number, used in every other table',
    name       String COMMENT 'Unique project name',
    timezone   String DEFAULT 'UTC' COMMENT 'Time zone analyses bucket by unless a request says otherwise',
    created_at DateTime64(3, 'UTC'),
    version    UInt64,
    is_deleted UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY project_id
COMMENT 'Projects (tenants); read with FINAL';

CREATE TABLE IF NOT EXISTS api_keys
(
    project_id UInt32 COMMENT 'Project the key works for',
    key_id     String COMMENT 'Public prefix of the key, shown in listings',
    key_hash   String COMMENT 'SHA-256 of the whole key; the key itself is never stored',
    scope      LowCardinality(String) COMMENT 'write (ingest only), read, or admin',
    name       String COMMENT 'What the key is for',
    created_at DateTime64(3, 'UTC'),
    revoked_at Nullable(DateTime64(3, 'UTC')) COMMENT 'Set when the key was revoked',
    version    UInt64,
    is_deleted UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (project_id, key_id)
COMMENT 'API keys per project, stored hashed; read with FINAL';
