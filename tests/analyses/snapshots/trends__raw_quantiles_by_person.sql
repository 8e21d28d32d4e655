-- trends: {"series": [{"event": "purchase", "metric": "p90", "property": "revenue", "label": "p90"}, {"metric": "persons"}], "interval": "hour", "timezone": "Asia/Kolkata", "date_range": {"date_from": "-24h"}, "where": {"match": "any", "filters": [{"key": "plan", "source": "person", "op": "is_set"}, {"key": "path", "source": "column", "op": "regex", "value": "^/pricing"}]}, "breakdown": {"key": "plan", "source": "person", "limit": 3}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "2026-10-30T13:30:00Z"
--   p2 = "2026-10-31T13:30:00Z"
--   p3 = "purchase"
--   p4 = "Asia/Kolkata"
--   p5 = "2026-10-30T13:30:00Z"
--   p6 = "^/pricing"
--   p7 = 3
--   p8 = "$other"
--   p9 = "2026-10-30T13:30:00Z"
--   p10 = "2026-10-31T13:30:00Z"
--   p11 = "Asia/Kolkata"
--   p12 = "2026-10-30T13:30:00Z"
--   p13 = "^/pricing"
--   p14 = 3
--   p15 = "$other"

SELECT
    0 AS series,
    current,
    label,
    bucket,
    grouping(bucket) AS is_total,
    toFloat64(quantileExactInclusiveMerge(0.9)(m)) AS value
FROM
(
    SELECT
        *,
        if((bd_weight > 0) AND (bd_rank <= {p7:UInt32}), bd, {p8:String}) AS label
    FROM
    (
        SELECT
            *,
            dense_rank() OVER (ORDER BY bd_weight DESC, bd ASC) AS bd_rank
        FROM
        (
            SELECT
                *,
                sum(weight) OVER (PARTITION BY bd) AS bd_weight
            FROM
            (
                SELECT
                    current,
                    bd,
                    bucket,
                    quantileExactInclusiveState(0.9)(value) AS m,
                    if(current, count(), 0) AS weight
                FROM
                (
                    SELECT
                        e.ts >= {p5:DateTime64(3, 'UTC')} AS current,
                        toUnixTimestamp(toStartOfHour(e.ts, {p4:String})) AS bucket,
                        toString(pp.person_properties.plan) AS bd,
                        if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                        e.distinct_id AS distinct_id,
                        nullIf(e.session_id, '') AS session,
                        toFloat64OrNull(toString(e.properties.revenue)) AS value,
                        ifNull(toDecimal128OrNull(toString(e.properties.revenue), 9), 0) AS amount
                    FROM events AS e
                    ANY LEFT JOIN
                    (
                        SELECT
                            cityHash64(distinct_id) AS id_key,
                            toString(person_id) AS person_id,
                            cityHash64(toString(person_id)) AS person_key
                        FROM identities
                        FINAL
                        WHERE project_id = {project_id:UInt32}
                    ) AS ids ON ids.id_key = e.id_key
                    ANY LEFT JOIN
                    (
                        SELECT
                            toString(person_id) AS person_key,
                            properties AS person_properties
                        FROM persons
                        FINAL
                        WHERE project_id = {project_id:UInt32}
                    ) AS pp ON pp.person_key = if(ids.person_id = '', e.distinct_id, ids.person_id)
                    WHERE (e.project_id = {project_id:UInt32}) AND ((e.ts >= {p1:DateTime64(3, 'UTC')}) AND (e.ts < {p2:DateTime64(3, 'UTC')})) AND (e.event = {p3:String}) AND ((pp.person_properties.plan IS NOT NULL) OR match(e.path, {p6:String}))
                )
                GROUP BY
                    current,
                    bd,
                    bucket
            )
        )
    )
)
GROUP BY
    GROUPING SETS (
        (current, label, bucket),
        (current, label))
UNION ALL
SELECT
    1 AS series,
    current,
    label,
    bucket,
    grouping(bucket) AS is_total,
    toFloat64(uniqMerge(m)) AS value
FROM
(
    SELECT
        *,
        if((bd_weight > 0) AND (bd_rank <= {p14:UInt32}), bd, {p15:String}) AS label
    FROM
    (
        SELECT
            *,
            dense_rank() OVER (ORDER BY bd_weight DESC, bd ASC) AS bd_rank
        FROM
        (
            SELECT
                *,
                sum(weight) OVER (PARTITION BY bd) AS bd_weight
            FROM
            (
                SELECT
                    current,
                    bd,
                    bucket,
                    uniqState(person) AS m,
                    if(current, count(), 0) AS weight
                FROM
                (
                    SELECT
                        e.ts >= {p12:DateTime64(3, 'UTC')} AS current,
                        toUnixTimestamp(toStartOfHour(e.ts, {p11:String})) AS bucket,
                        toString(pp.person_properties.plan) AS bd,
                        if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                        e.distinct_id AS distinct_id,
                        nullIf(e.session_id, '') AS session,
                        CAST(NULL, 'Nullable(Float64)') AS value,
                        toDecimal128(0, 9) AS amount
                    FROM events AS e
                    ANY LEFT JOIN
                    (
                        SELECT
                            cityHash64(distinct_id) AS id_key,
                            toString(person_id) AS person_id,
                            cityHash64(toString(person_id)) AS person_key
                        FROM identities
                        FINAL
                        WHERE project_id = {project_id:UInt32}
                    ) AS ids ON ids.id_key = e.id_key
                    ANY LEFT JOIN
                    (
                        SELECT
                            toString(person_id) AS person_key,
                            properties AS person_properties
                        FROM persons
                        FINAL
                        WHERE project_id = {project_id:UInt32}
                    ) AS pp ON pp.person_key = if(ids.person_id = '', e.distinct_id, ids.person_id)
                    WHERE (e.project_id = {project_id:UInt32}) AND ((e.ts >= {p9:DateTime64(3, 'UTC')}) AND (e.ts < {p10:DateTime64(3, 'UTC')})) AND 1 AND ((pp.person_properties.plan IS NOT NULL) OR match(e.path, {p13:String}))
                )
                GROUP BY
                    current,
                    bd,
                    bucket
            )
        )
    )
)
GROUP BY
    GROUPING SETS (
        (current, label, bucket),
        (current, label))
