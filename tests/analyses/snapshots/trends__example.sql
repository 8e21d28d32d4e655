-- trends: {"series": [{"event": "purchase", "metric": "sum", "property": "revenue"}], "interval": "week", "date_range": {"date_from": "-14d"}, "breakdown": {"key": "plan"}, "compare": true}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "2026-10-17T22:00:00Z"
--   p2 = "2026-10-31T23:00:00Z"
--   p3 = "2026-10-03T22:00:00Z"
--   p4 = "2026-10-17T22:00:00Z"
--   p5 = ["purchase"]
--   p6 = ["purchase"]
--   p7 = [0]
--   p8 = "Europe/Berlin"
--   p9 = "2026-10-17T22:00:00Z"
--   p10 = 10
--   p11 = "$other"

SELECT
    {p7:Array(UInt8)}[(indexOf({p6:Array(String)}, toString(key)) - 1) + 1] AS series,
    current,
    label,
    bucket,
    grouping(bucket) AS is_total,
    toFloat64(sumMerge(m)) AS value
FROM
(
    SELECT
        *,
        if((bd_weight > 0) AND (bd_rank <= {p10:UInt32}), bd, {p11:String}) AS label
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
                    sumState(amount) AS m,
                    if(current, count(), 0) AS weight
                FROM
                (
                    SELECT
                        e.event AS key,
                        e.ts >= {p9:DateTime64(3, 'UTC')} AS current,
                        toUnixTimestamp(toDateTime(toMonday(e.ts, {p8:String}), {p8:String})) AS bucket,
                        toString(e.properties.plan) AS bd,
                        e.id_key AS person,
                        e.distinct_id AS distinct_id,
                        nullIf(e.session_id, '') AS session,
                        toFloat64OrNull(toString(e.properties.revenue)) AS value,
                        ifNull(toDecimal128OrNull(toString(e.properties.revenue), 9), 0) AS amount
                    FROM events AS e
                    WHERE (e.project_id = {project_id:UInt32}) AND (((e.ts >= {p1:DateTime64(3, 'UTC')}) AND (e.ts < {p2:DateTime64(3, 'UTC')})) OR ((e.ts >= {p3:DateTime64(3, 'UTC')}) AND (e.ts < {p4:DateTime64(3, 'UTC')}))) AND (e.event IN ({p5:Array(String)})) AND 1
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
