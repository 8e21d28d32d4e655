-- Persons and the ids that belong to them. Both are ReplacingMergeTree: the row with the highest
-- version wins, and rows with is_deleted = 1 are dropped; read them with FINAL (or argMax by version),
-- never as if rows were unique, because merges may never finish.
CREATE TABLE IF NOT EXISTS persons
(
    project_id UInt32 COMMENT 'Project the person belongs to',
    person_id  UUID COMMENT 'Nexus''s id of the person',
    properties JSON COMMENT 'Traits from identify calls, latest value of each',
    created_at DateTime64(3, 'UTC') COMMENT 'First time Nexus saw the person',
    version    UInt64 COMMENT 'Row version: the highest wins',
    is_deleted UInt8 DEFAULT 0 COMMENT '1 when the person was erased'
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (project_id, person_id)
COMMENT 'Persons and their traits; read with FINAL';

CREATE TABLE IF NOT EXISTS identities
(
    project_id  UInt32 COMMENT 'Project the id belongs to',
    distinct_id String COMMENT 'An id events are sent with (anonymous id or user id)',
    person_id   UUID COMMENT 'The person this id resolves to',
    version     UInt64 COMMENT 'Row version: the highest wins (a later identify or alias moves an id)',
    is_deleted  UInt8 DEFAULT 0 COMMENT '1 when the link was removed'
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (project_id, distinct_id)
COMMENT 'Which person each distinct id resolves to, after identify and alias; read with FINAL';
