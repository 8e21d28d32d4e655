-- trends: {"series": [{"event": "purchase", "metric": "p90", "property": "revenue", "label": "p90"}, {"metric": "persons"}], "interval": "hour", "timezone": "Asia/Kolkata", "date_range": {"date_from": "-24h"}, "where": {"match": "any", "filters": [{"key": "plan", "source": "person", "op": "is_set"}, {"key": "path", "source": "column", "op": "regex", "value": "^/pricing"}]}, "breakdown": {"key": "plan", "source": "person", "limit": 3}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "2026-10-30T13:30:00Z"
--   p2 = "2026-10-31T13:30:00Z"
--   p3 = ["purchase"]
--   p4 = ["purchase"]
--   p5 = [0]
--   p6 = "Asia/Kolkata"
--   p7 = "2026-10-30T13:30:00Z"
--   p8 = "^/pricing"
--   p9 = 3
--   p10 = "$other"
--   p11 = "2026-10-30T13:30:00Z"
--   p12 = "2026-10-31T13:30:00Z"
--   p13 = [1]
--   p14 = "Asia/Kolkata"
--   p15 = "2026-10-30T13:30:00Z"
--   p16 = "^/pricing"
--   p17 = 3
--   p18 = "$other"

SELECT
    {p5:Array(UInt8)}[(indexOf({p4:Array(String)}, toString(key)) - 1) + 1] AS series,
    current,
    label,
    bucket,
    grouping(bucket) AS is_total,
    toFloat64(quantileExactInclusiveMerge(0.9)(m)) AS value
FROM
(
    SELECT
        *,
        if((bd_weight > 0) AND (bd_rank <= {p9:UInt32}), bd, {p10:String}) AS label
    FROM
    (
        SELECT
            *,
            dense_rank() OVER (PARTITION BY key ORDER BY bd_weight DESC, bd ASC) AS bd_rank
        FROM
        (
            SELECT
                *,
                sum(weight) OVER (PARTITION BY key, bd) AS bd_weight
            FROM
            (
                SELECT
                    key,
                    current,
                    bd,
                    bucket,
                    quantileExactInclusiveState(0.9)(value) AS m,
                    if(current, count(), 0) AS weight
                FROM
                (
                    SELECT
                        e.event AS key,
                        e.ts >= {p7:DateTime64(3, 'UTC')} AS current,
                        toUnixTimestamp(toStartOfHour(e.ts, {p6:String})) AS bucket,
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
                    WHERE (e.project_id = {project_id:UInt32}) AND ((e.ts >= {p1:DateTime64(3, 'UTC')}) AND (e.ts < {p2:DateTime64(3, 'UTC')})) AND (e.event IN ({p3:Array(String)})) AND ((pp.person_properties.plan IS NOT NULL) OR match(e.path, {p8:String}))
                )
                GROUP BY
                    key,
                    current,
                    bd,
                    bucket
            )
        )
    )
)
GROUP BY
    GROUPING SETS (
        (key, current, label, bucket),
        (key, current, label))
UNION ALL
SELECT
    {p13:Array(UInt8)}[key + 1] AS series,
    current,
    label,
    bucket,
    grouping(bucket) AS is_total,
    toFloat64(uniqMerge(m)) AS value
FROM
(
    SELECT
        *,
        if((bd_weight > 0) AND (bd_rank <= {p17:UInt32}), bd, {p18:String}) AS label
    FROM
    (
        SELECT
            *,
            dense_rank() OVER (PARTITION BY key ORDER BY bd_weight DESC, bd ASC) AS bd_rank
        FROM
        (
            SELECT
                *,
                sum(weight) OVER (PARTITION BY key, bd) AS bd_weight
            FROM
            (
                SELECT
                    key,
                    current,
                    bd,
                    bucket,
                    uniqState(person) AS m,
                    if(current, count(), 0) AS weight
                FROM
                (
                    SELECT
                        arrayJoin(arrayFilter((i, c) -> c, range(1), [1])) AS key,
                        e.ts >= {p15:DateTime64(3, 'UTC')} AS current,
                        toUnixTimestamp(toStartOfHour(e.ts, {p14:String})) AS bucket,
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
                    WHERE (e.project_id = {project_id:UInt32}) AND ((e.ts >= {p11:DateTime64(3, 'UTC')}) AND (e.ts < {p12:DateTime64(3, 'UTC')})) AND (1) AND ((pp.person_properties.plan IS NOT NULL) OR match(e.path, {p16:String}))
                )
                GROUP BY
                    key,
                    current,
                    bd,
                    bucket
            )
        )
    )
)
GROUP BY
    GROUPING SETS (
        (key, current, label, bucket),
        (key, current, label))
