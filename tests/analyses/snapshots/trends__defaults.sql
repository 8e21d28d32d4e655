-- trends: {"series": [{"event": "page_view"}]}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "Europe/Berlin"
--   p2 = "2026-10-24T22:00:00Z"
--   p3 = "2026-10-31T23:00:00Z"
--   p4 = "page_view"
--   p5 = "2026-10-24T22:00:00Z"

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
        '' AS label
    FROM
    (
        SELECT
            hour >= {p5:DateTime('UTC')} AS current,
            '' AS bd,
            toUnixTimestamp(toStartOfDay(hour, {p1:String})) AS bucket,
            sumState(events) AS m,
            if(current, sum(events), 0) AS weight
        FROM events_hourly
        WHERE (project_id = {project_id:UInt32}) AND ((hour >= {p2:DateTime('UTC')}) AND (hour < {p3:DateTime('UTC')})) AND (event = {p4:String}) AND 1 AND 1
        GROUP BY
            current,
            bd,
            bucket
    )
)
GROUP BY
    GROUPING SETS (
        (current, label, bucket),
        (current, label))
