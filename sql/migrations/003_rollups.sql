-- Rollups, fed by materialized views from events. A materialized view sees one inserted block at a
-- time, never merges, so rollups store partial aggregates (-State, or SimpleAggregateFunction for sums
-- and extremes) that merge correctly, and are read with -Merge ... GROUP BY. Duplicates must never reach
-- events (ingest dedups before inserting), or they would be counted here too.
--
-- distinct_ids counts the ids events were sent with, not persons after identity resolution (that needs
-- the identities table at query time), so it answers "unique persons" only where no ids were merged.

-- Hourly in UTC: any time zone with a whole-hour offset can be assembled from hours.
CREATE TABLE IF NOT EXISTS events_hourly
(
    project_id   UInt32,
    hour         DateTime('UTC') COMMENT 'Start of the UTC hour',
    event        LowCardinality(String),
    events       SimpleAggregateFunction(sum, UInt64) COMMENT 'Number of events',
    distinct_ids AggregateFunction(uniq, String) COMMENT 'uniq() of distinct_id: read with uniqMerge',
    revenue      SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of numeric properties.revenue'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (project_id, event, hour)
COMMENT 'Events per project, event name and UTC hour; read with sum() and uniqMerge()';

CREATE MATERIALIZED VIEW IF NOT EXISTS events_hourly_mv TO events_hourly AS
SELECT
    project_id,
    toStartOfHour(ts) AS hour,
    event,
    count() AS events,
    uniqState(distinct_id) AS distinct_ids,
    sum(ifNull(toFloat64OrNull(toString(properties.revenue)), 0)) AS revenue
FROM events
GROUP BY project_id, hour, event;

-- Daily in UTC, by the dimensions analysts break down by most.
CREATE TABLE IF NOT EXISTS events_daily
(
    project_id     UInt32,
    day            Date COMMENT 'UTC day',
    event          LowCardinality(String),
    country        LowCardinality(String),
    browser        LowCardinality(String),
    os             LowCardinality(String),
    device_type    LowCardinality(String),
    referrer_class LowCardinality(String),
    utm_source     LowCardinality(String),
    events         SimpleAggregateFunction(sum, UInt64) COMMENT 'Number of events',
    distinct_ids   AggregateFunction(uniq, String) COMMENT 'uniq() of distinct_id: read with uniqMerge',
    revenue        SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of numeric properties.revenue'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, event, day, country, browser, os, device_type, referrer_class, utm_source)
COMMENT 'Events per project, event, UTC day and key dimensions; read with sum() and uniqMerge()';

CREATE MATERIALIZED VIEW IF NOT EXISTS events_daily_mv TO events_daily AS
SELECT
    project_id,
    toDate(ts) AS day,
    event,
    country,
    browser,
    os,
    device_type,
    referrer_class,
    utm_source,
    count() AS events,
    uniqState(distinct_id) AS distinct_ids,
    sum(ifNull(toFloat64OrNull(toString(properties.revenue)), 0)) AS revenue
FROM events
GROUP BY project_id, day, event, country, browser, os, device_type, referrer_class, utm_source;

-- One row per session (after merges): a session's events may arrive in several blocks, and every
-- column here merges across them. Not partitioned: a session may span a month boundary.
CREATE TABLE IF NOT EXISTS sessions
(
    project_id  UInt32,
    session_id  String,
    distinct_id SimpleAggregateFunction(any, String) COMMENT 'Id the session''s events were sent with',
    started_at  SimpleAggregateFunction(min, DateTime64(3, 'UTC')) COMMENT 'First event',
    ended_at    SimpleAggregateFunction(max, DateTime64(3, 'UTC')) COMMENT 'Last event',
    events      SimpleAggregateFunction(sum, UInt64) COMMENT 'Events in the session',
    pageviews   SimpleAggregateFunction(sum, UInt64) COMMENT 'Page and screen views in the session',
    entry_url   AggregateFunction(argMin, String, DateTime64(3, 'UTC')) COMMENT 'URL of the first page view: argMinMerge',
    exit_url    AggregateFunction(argMax, String, DateTime64(3, 'UTC')) COMMENT 'URL of the last page view: argMaxMerge',
    utm_source  SimpleAggregateFunction(any, LowCardinality(String)) COMMENT 'Campaign source of the session',
    referrer_domain SimpleAggregateFunction(any, String) COMMENT 'Referrer of the session',
    country     SimpleAggregateFunction(any, LowCardinality(String)),
    device_type SimpleAggregateFunction(any, LowCardinality(String)),
    browser     SimpleAggregateFunction(any, LowCardinality(String))
)
ENGINE = AggregatingMergeTree
ORDER BY (project_id, session_id)
COMMENT 'One row per session (merge with GROUP BY session_id): start, end, events, page views, entry and exit';

CREATE MATERIALIZED VIEW IF NOT EXISTS sessions_mv TO sessions AS
SELECT
    project_id,
    session_id,
    any(distinct_id) AS distinct_id,
    min(ts) AS started_at,
    max(ts) AS ended_at,
    count() AS events,
    countIf(type IN ('page', 'screen')) AS pageviews,
    argMinStateIf(url, ts, type IN ('page', 'screen')) AS entry_url,
    argMaxStateIf(url, ts, type IN ('page', 'screen')) AS exit_url,
    anyIf(utm_source, utm_source != '') AS utm_source,
    anyIf(referrer_domain, referrer_domain != '') AS referrer_domain,
    any(country) AS country,
    any(device_type) AS device_type,
    any(browser) AS browser
FROM events
WHERE session_id != ''
GROUP BY project_id, session_id;
