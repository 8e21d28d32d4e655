-- person: {"person": "db5b5fab-8f4d-4e27-9da1-494c73cf256d", "limit": 10, "gap_minutes": 20}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = 1200000
--   p2 = ["db5b5fab-8f4d-4e27-9da1-494c73cf256d"]
--   p3 = 11

SELECT
    ts,
    name,
    distinct_id,
    toUInt32(session),
    toBool(starts_session),
    path,
    message_id,
    toJSONString(properties)
FROM
(
    SELECT
        *,
        sum(starts_session) OVER (ORDER BY ts ASC, message_id ASC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session
    FROM
    (
        SELECT
            ts,
            toString(event) AS name,
            distinct_id,
            path,
            message_id,
            properties,
            (row_number() OVER w = 1) OR ((toUnixTimestamp64Milli(ts) - lagInFrame(toUnixTimestamp64Milli(ts)) OVER w) > {p1:Int64}) AS starts_session
        FROM events
        WHERE (project_id = {project_id:UInt32}) AND (distinct_id IN ({p2:Array(String)}))
        WINDOW w AS (ORDER BY ts ASC, message_id ASC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    )
)
ORDER BY
    ts DESC,
    message_id DESC
LIMIT {p3:UInt32}
