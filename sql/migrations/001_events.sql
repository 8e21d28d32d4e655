-- Events: one row per stored event, as sent, enriched at ingest.
--
-- ORDER BY (project_id, distinct_id, ts): every query is scoped to one project, and the analyses that
-- matter most (funnels, sessions, retention, paths) walk each person's events in time order. With rows
-- already grouped by id and sorted by time, ClickHouse reads a person's events contiguously, and
-- aggregations per id can run in order. Measured on 10M events: (user, ts) beat (event, user, ts) for
-- funnels (0.58 vs 0.78 s), sessions (0.36 vs 0.64 s) and retention (0.84 vs 0.92 s); only per-day
-- trends preferred event-first, and trends are served from the rollups below.
--
-- PARTITION BY month: time ranges prune whole partitions; a month is large enough to keep the part
-- count low (ClickHouse wants few, large parts) and small enough to rebuild a rollup month after an
-- erasure. Clamping client timestamps at ingest keeps stray dates from creating partitions.
--
-- Free-form properties use the JSON type: each path becomes its own subcolumn, so filtering or
-- breaking down by one property reads only that property, and the types seen are discoverable.
CREATE TABLE IF NOT EXISTS events
(
    project_id      UInt32 COMMENT 'Project the event belongs to',
    ts              DateTime64(3, 'UTC') COMMENT 'When the event happened (client time corrected for clock skew)',
    event           LowCardinality(String) COMMENT 'Event name: the track event, or page_view, screen_view, identify, group, alias for other calls',
    type            LowCardinality(String) COMMENT 'Segment call type: track, page, screen, identify, group, alias',
    message_id      String COMMENT 'Sender''s id of the message; stored once per project',
    distinct_id     String COMMENT 'The id the event was sent with: user id when known, else anonymous id',
    anonymous_id    String COMMENT 'Segment anonymousId as sent',
    user_id         String COMMENT 'Segment userId as sent',
    session_id      String COMMENT 'Session the event belongs to',
    url             String COMMENT 'Full page URL',
    host            String COMMENT 'Host of the page URL',
    path            String COMMENT 'Path of the page URL',
    referrer        String COMMENT 'Full referrer URL',
    referrer_domain String COMMENT 'Host of the referrer URL',
    referrer_class  LowCardinality(String) COMMENT 'search, social, email, direct or other',
    utm_source      LowCardinality(String) COMMENT 'Campaign source',
    utm_medium      LowCardinality(String) COMMENT 'Campaign medium',
    utm_campaign    String COMMENT 'Campaign name',
    utm_term        String COMMENT 'Campaign term',
    utm_content     String COMMENT 'Campaign content',
    country         LowCardinality(String) COMMENT 'ISO 3166-1 alpha-2 country from the IP',
    region          LowCardinality(String) COMMENT 'Region from the IP, where known',
    city            String COMMENT 'City from the IP, where known',
    browser         LowCardinality(String) COMMENT 'Browser family from the user agent',
    browser_version LowCardinality(String) COMMENT 'Browser major version',
    os              LowCardinality(String) COMMENT 'Operating system family',
    os_version      LowCardinality(String) COMMENT 'Operating system major version',
    device_type     LowCardinality(String) COMMENT 'desktop, mobile, tablet or bot',
    library         LowCardinality(String) COMMENT 'SDK that sent the event',
    library_version LowCardinality(String) COMMENT 'SDK version',
    ip              String COMMENT 'Client IP, truncated or hashed unless configured otherwise',
    properties      JSON COMMENT 'Event properties as sent (revenue, plan, ...)',
    sent_at         Nullable(DateTime64(3, 'UTC')) COMMENT 'When the SDK sent the batch, by its clock',
    received_at     DateTime64(3, 'UTC') COMMENT 'When Nexus received the batch',
    skew_ms         Int64 COMMENT 'Clock-skew correction applied to ts, in milliseconds',
    INDEX message_id_bloom message_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX event_set event TYPE set(256) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (project_id, distinct_id, ts)
COMMENT 'Every stored event, one row each; ids as sent (resolve persons through identities)';
