-- A/B experiments: each one's key (the public id, also what assignment hashes), its hypothesis and its
-- definition (variants and weights, metrics, exposure event, targeting, dates, window, design). The metadata
-- pattern of 004, 005, 009 and 012: ReplacingMergeTree(version, is_deleted), each change a whole new version,
-- read with FINAL; partitioned by project like every metadata table. Not readable through ad-hoc SQL: GET
-- /v1/experiments and the experiment analysis show them.
CREATE TABLE IF NOT EXISTS experiments
(
    project_id  UInt32 COMMENT 'Project the experiment belongs to',
    key         String COMMENT 'The experiment''s key, unique within the project: its id, hashed by assignment',
    name        String COMMENT 'Display name, as the user typed it',
    hypothesis  String COMMENT 'What the experiment is expected to show',
    description String COMMENT 'Notes on the experiment',
    definition  String COMMENT 'JSON of variants, metrics, exposure, targeting, dates and design (ExperimentDefinition in nexus/meta/experiments.py)',
    created_by  String COMMENT 'Id of the API key that created the experiment',
    created_at  DateTime64(3, 'UTC') COMMENT 'When the experiment was created',
    updated_at  DateTime64(3, 'UTC') COMMENT 'When the experiment was last changed',
    version     UInt64 COMMENT 'Row version: the highest wins',
    is_deleted  UInt8 DEFAULT 0 COMMENT '1 when the experiment was deleted'
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY project_id
ORDER BY (project_id, key)
COMMENT 'Saved A/B experiments: definitions for assignment and the experiment analysis; read with FINAL';
