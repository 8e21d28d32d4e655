-- events.id_key: cityHash64(distinct_id), computed once when a row is inserted. Analyses resolve ids to
-- persons by this key (joined with identities, grouped by person); reading 8 bytes that repeat along the
-- sort order is cheaper than reading and hashing every distinct_id string in every query (measured on
-- 10M demo events: 0.035-0.045 s off each funnel and retention, about 8%).
-- MATERIALIZED: inserts never send it, and parts written before this migration compute it on read
-- until the MATERIALIZE mutation below has rewritten them.
ALTER TABLE events
    ADD COLUMN IF NOT EXISTS id_key UInt64 MATERIALIZED cityHash64(distinct_id)
    COMMENT 'cityHash64(distinct_id): the key analyses join identities on' AFTER distinct_id;

ALTER TABLE events MATERIALIZE COLUMN id_key;
