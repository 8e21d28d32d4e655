-- trends: {"series": [{"event": "purchase", "metric": "sum", "property": "revenue"}, {"metric": "distinct_ids"}], "interval": "week", "timezone": "UTC", "date_range": {"date_from": "last_month"}, "where": {"filters": [{"key": "country", "source": "column", "op": "in", "value": ["DE", "FR"]}]}, "breakdown": {"key": "browser", "source": "column", "limit": 5}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "UTC"
--   p2 = "2026-09-01"
--   p3 = "2026-10-01"
--   p4 = "purchase"
--   p5 = "2026-09-01"
--   p6 = ["DE", "FR"]
--   p7 = 5
--   p8 = "$other"
--   p9 = "UTC"
--   p10 = "2026-09-01"
--   p11 = "2026-10-01"
--   p12 = "2026-09-01"
--   p13 = ["DE", "FR"]
--   p14 = 5
--   p15 = "$other"

SELECT
    0 AS series,
    current,
    label,
    bucket,
    grouping(bucket) AS is_total,
    toFloat64(sumMerge(m)) AS value
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
                    day >= {p5:Date} AS current,
                    browser AS bd,
                    toUnixTimestamp(toDateTime(toMonday(toDateTime(day, 'UTC'), {p1:String}), {p1:String})) AS bucket,
                    sumState(revenue) AS m,
                    if(current, sum(events), 0) AS weight
                FROM events_daily
                WHERE (project_id = {project_id:UInt32}) AND ((day >= {p2:Date}) AND (day < {p3:Date})) AND (event = {p4:String}) AND (has({p6:Array(String)}, country)) AND 1
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
                    day >= {p12:Date} AS current,
                    browser AS bd,
                    toUnixTimestamp(toDateTime(toMonday(toDateTime(day, 'UTC'), {p9:String}), {p9:String})) AS bucket,
                    uniqMergeState(distinct_ids) AS m,
                    if(current, sum(events), 0) AS weight
                FROM events_daily
                WHERE (project_id = {project_id:UInt32}) AND ((day >= {p10:Date}) AND (day < {p11:Date})) AND 1 AND (has({p13:Array(String)}, country)) AND 1
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
