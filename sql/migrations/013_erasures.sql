-- Erasures: one record per person erased (nexus.store.erasure), kept to show that a request to erase was
-- carried out — when, by which key, how many rows left each table — and holding nothing of the person: no
-- id, no hash of one (a hash of a known id confirms that id was erased, so it is an identifier too), no
-- time range of their events. The metadata pattern of 009; not readable through ad-hoc SQL
-- (nexus.adhoc.policy), whose sessions are read-only anyway, so a project's SQL can neither read nor write it.
CREATE TABLE IF NOT EXISTS erasures
(
    project_id         UInt32 COMMENT 'Project the person was erased from',
    erasure_id         String COMMENT 'Public id of the erasure (x_ + 12 characters)',
    erased_at          DateTime64(3, 'UTC') COMMENT 'When the erasure finished',
    erased_by          String COMMENT 'Id of the API key that asked for it, or cli for the nexus command',
    distinct_ids       UInt32 COMMENT 'How many distinct ids the person had',
    rows               Map(String, UInt64) COMMENT 'Rows removed from each table, as stored (identities and persons keep a row per version until merged)',
    rebuilt_partitions UInt32 COMMENT 'Rollup partitions (project, month) recomputed from the remaining events',
    duration_ms        UInt32 COMMENT 'How long the erasure took',
    version            UInt64 COMMENT 'Row version: the highest wins',
    is_deleted         UInt8 DEFAULT 0 COMMENT '1 when the record was removed'
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY project_id
ORDER BY (project_id, erasure_id)
COMMENT 'Erasures of persons (GDPR): when, by which key, rows removed per table; nothing identifying the person; read with FINAL';
