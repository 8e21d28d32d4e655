-- Cohorts: saved sets of persons, by behaviour and properties (dynamic: recomputed when used) or by a list
-- of ids (static). The metadata pattern of 009: ReplacingMergeTree(version, is_deleted), a whole new version
-- per change, read with FINAL. Neither table is readable through ad-hoc SQL (nexus.adhoc.policy): a static
-- cohort's members are person ids uploaded as a list, not events a project's engineers query.
CREATE TABLE IF NOT EXISTS cohorts
(
    project_id   UInt32 COMMENT 'Project the cohort belongs to',
    cohort_id    String COMMENT 'Public id of the cohort (c_ + 12 characters)',
    name         String COMMENT 'Unique name within the project, as the user typed it',
    description  String COMMENT 'What the cohort is for',
    kind         LowCardinality(String) COMMENT 'dynamic (a definition) or static (a list of members)',
    definition   String COMMENT 'JSON of the conditions of a dynamic cohort; {} for a static one',
    source       String COMMENT 'Where a static cohort''s members came from: csv, or the JSON of the analysis',
    members_generation UInt64 COMMENT 'A static cohort''s current member list in cohort_members (0: none)',
    created_by   String COMMENT 'Id of the API key that created the cohort',
    created_at   DateTime64(3, 'UTC') COMMENT 'When the cohort was created',
    updated_at   DateTime64(3, 'UTC') COMMENT 'When the cohort was last changed',
    version      UInt64 COMMENT 'Row version: the highest wins',
    is_deleted   UInt8 DEFAULT 0 COMMENT '1 when the cohort was deleted'
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY project_id
ORDER BY (project_id, cohort_id)
COMMENT 'Saved cohorts: dynamic definitions and static member lists; read with FINAL';

-- A static cohort's members: the ids as given (a person id or any distinct id), resolved to persons through
-- identities when the cohort is used, so later identity merges apply. A new list is a new generation; the
-- cohort's record names the current one, and older generations are deleted once it is in place.
CREATE TABLE IF NOT EXISTS cohort_members
(
    project_id   UInt32 COMMENT 'Project the cohort belongs to',
    cohort_id    String COMMENT 'The static cohort',
    generation   UInt64 COMMENT 'Which upload of the cohort this member belongs to',
    member_id    String COMMENT 'A person id or distinct id, as uploaded or as the analysis named the person'
)
ENGINE = MergeTree
PARTITION BY project_id
ORDER BY (project_id, cohort_id, generation, member_id)
COMMENT 'Members of static cohorts, one row per id and upload generation';
