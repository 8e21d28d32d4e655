-- Saved goals: what counts as a conversion (an event with property filters, or a page path pattern) and
-- the property that holds its value. The metadata pattern of 004, 005 and 009: ReplacingMergeTree(version,
-- is_deleted), each change a whole new version, read with FINAL; partitioned by project like every
-- metadata table. Not readable through ad-hoc SQL: the goals analysis and GET /v1/goals show them.
CREATE TABLE IF NOT EXISTS goals
(
    project_id  UInt32 COMMENT 'Project the goal belongs to',
    goal_id     String COMMENT 'Public id of the goal (g_ + 12 characters)',
    name        String COMMENT 'Unique name within the project, as the user typed it',
    description String COMMENT 'What the goal is for',
    definition  String COMMENT 'JSON of what converts: {"event", "where", "path", "value_property", "currency"} (GoalDefinition in nexus/meta/goals.py)',
    created_by  String COMMENT 'Id of the API key that created the goal',
    created_at  DateTime64(3, 'UTC') COMMENT 'When the goal was created',
    updated_at  DateTime64(3, 'UTC') COMMENT 'When the goal was last changed',
    version     UInt64 COMMENT 'Row version: the highest wins',
    is_deleted  UInt8 DEFAULT 0 COMMENT '1 when the goal was deleted'
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY project_id
ORDER BY (project_id, goal_id)
COMMENT 'Saved goals: conversion definitions for the goals analysis, the overview, experiments and attribution; read with FINAL';
