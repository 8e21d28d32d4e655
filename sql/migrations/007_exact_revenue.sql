-- Revenue sums in Decimal128(9) instead of Float64. Float addition depends on its order: the hourly
-- rollup adds an hour's events and then the hours, raw events are added in storage order, and the two
-- could differ in the last digits (0.1 + 0.2 + 0.3). Decimal addition is exact, so trends give the same
-- sum from either source. Values keep nine decimal places; those beyond ±10^29 read as not numeric.
--
-- The rollups are rebuilt from events, since sums already stored as floats carry their rounding. This
-- runs before Nexus serves or ingests (at start, or compose's `migrate` service), so no insert can land
-- between the emptying and the refill.

ALTER TABLE events_hourly
    MODIFY COLUMN revenue SimpleAggregateFunction(sum, Decimal128(9)) COMMENT 'Sum of numeric properties.revenue (exact to 9 decimals)';

ALTER TABLE events_hourly_mv MODIFY QUERY
SELECT
    project_id,
    toStartOfHour(ts) AS hour,
    event,
    count() AS events,
    uniqState(distinct_id) AS distinct_ids,
    sum(ifNull(toDecimal128OrNull(toString(properties.revenue), 9), 0)) AS revenue
FROM events
GROUP BY project_id, hour, event;

TRUNCATE TABLE events_hourly;

INSERT INTO events_hourly
SELECT
    project_id,
    toStartOfHour(ts) AS hour,
    event,
    count() AS events,
    uniqState(distinct_id) AS distinct_ids,
    sum(ifNull(toDecimal128OrNull(toString(properties.revenue), 9), 0)) AS revenue
FROM events
GROUP BY project_id, hour, event;

ALTER TABLE events_daily
    MODIFY COLUMN revenue SimpleAggregateFunction(sum, Decimal128(9)) COMMENT 'Sum of numeric properties.revenue (exact to 9 decimals)';

ALTER TABLE events_daily_mv MODIFY QUERY
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
    sum(ifNull(toDecimal128OrNull(toString(properties.revenue), 9), 0)) AS revenue
FROM events
GROUP BY project_id, day, event, country, browser, os, device_type, referrer_class, utm_source;

TRUNCATE TABLE events_daily;

INSERT INTO events_daily
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
    sum(ifNull(toDecimal128OrNull(toString(properties.revenue), 9), 0)) AS revenue
FROM events
GROUP BY project_id, day, event, country, browser, os, device_type, referrer_class, utm_source;
