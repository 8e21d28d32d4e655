-- Saved dashboards: a named, ordered grid of tiles, each a pinned analysis (or saved query) with its chart.
-- The metadata pattern of 004 and 005: ReplacingMergeTree(version, is_deleted), written as whole new
-- versions and read with FINAL. Partitioned by project like every table ad-hoc SQL reads (migration
-- 008): dashboards are readable there as saved queries are, and a part must never hold two projects.
CREATE TABLE IF NOT EXISTS dashboards
(
    project_id   UInt32 COMMENT 'Project the dashboard belongs to',
    dashboard_id String COMMENT 'Public id of the dashboard (d_ + 12 characters)',
    name         String COMMENT 'Unique name within the project, as the user typed it',
    description  String COMMENT 'What the dashboard is for',
    tiles        String COMMENT 'JSON array of tiles in grid order: [{"tile_id", "title", "kind", "request", "chart", "width", "height"}]',
    is_default   Bool COMMENT 'true for the dashboard every new project gets',
    created_by   String COMMENT 'Id of the API key that created the dashboard (empty for the default one)',
    created_at   DateTime64(3, 'UTC') COMMENT 'When the dashboard was created',
    updated_at   DateTime64(3, 'UTC') COMMENT 'When the dashboard was last changed',
    version      UInt64 COMMENT 'Row version: the highest wins',
    is_deleted   UInt8 DEFAULT 0 COMMENT '1 when the dashboard was deleted'
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY project_id
ORDER BY (project_id, dashboard_id)
COMMENT 'Saved dashboards: named, ordered grids of analysis and saved-query tiles; read with FINAL';
