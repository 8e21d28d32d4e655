-- Predictions: each scoring run (nexus.predict.scoring) writes one row per person — churn probability,
-- expected revenue (LTV), engagement, their deciles and the model versions that made them — so analyses
-- and cohorts can filter and break down on a person's latest scores. A run deletes its own rows before it
-- writes them, so a retried run leaves exactly one row per person; older runs stay, for history.
-- PARTITION BY project_id as the events since 008: no part holds two projects' rows, so ad-hoc SQL
-- (nexus.adhoc.policy) may read a project's own scores under the engine's row filter.
CREATE TABLE IF NOT EXISTS person_predictions
(
    project_id        UInt32 COMMENT 'Project the person belongs to',
    run_id            String COMMENT 'The scoring run: the id of its job',
    scored_at         DateTime64(3, 'UTC') COMMENT 'The cutoff the features were computed at (the run''s start)',
    person_id         String COMMENT 'The person as analyses resolve them: identities.person_id, else the distinct id',
    person_key        UInt64 COMMENT 'cityHash64(person_id): the key analyses group persons by',
    churn_probability Nullable(Float64) COMMENT 'Calibrated probability of no event in the churn model''s horizon; NULL without an active churn model',
    churn_decile      Nullable(UInt8) COMMENT '10 = the tenth most likely to churn, 1 = the least',
    ltv               Nullable(Float64) COMMENT 'Expected revenue over the LTV model''s horizon; NULL without an active LTV model',
    ltv_decile        Nullable(UInt8) COMMENT '10 = the tenth with the highest expected revenue',
    engagement        Float64 COMMENT 'Engagement score, 0-100 (docs/metrics.md)',
    engagement_decile UInt8 COMMENT '10 = the most engaged tenth',
    churn_version     String COMMENT 'The churn model version that scored, or empty',
    ltv_version       String COMMENT 'The LTV model version that scored, or empty',
    drivers           String COMMENT 'JSON: per model, the features that moved this person''s score most (the score minus the score with the feature at its training median) and the model''s top features by permutation importance'
)
ENGINE = MergeTree
PARTITION BY project_id
ORDER BY (project_id, scored_at, run_id, person_key)
COMMENT 'Per-person churn, LTV and engagement scores, one row per person per scoring run';
