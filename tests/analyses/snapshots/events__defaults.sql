-- events: {}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "2026-10-24T22:00:00Z"
--   p2 = "2026-10-31T23:00:00Z"
--   p3 = 101

SELECT
    e.ts,
    toString(e.event),
    e.distinct_id,
    nullIf(ids.person_id, ''),
    e.path,
    toString(e.country),
    toString(e.browser),
    toString(e.os),
    toString(e.device_type),
    e.message_id,
    toJSONString(e.properties)
FROM
(
    SELECT
        e.ts AS ts,
        e.event AS event,
        e.distinct_id AS distinct_id,
        e.id_key AS id_key,
        e.path AS path,
        e.country AS country,
        e.browser AS browser,
        e.os AS os,
        e.device_type AS device_type,
        e.message_id AS message_id,
        e.properties AS properties
    FROM events AS e
    WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p1:DateTime64(3, 'UTC')}) AND (e.ts < {p2:DateTime64(3, 'UTC')})
    ORDER BY
        e.ts DESC,
        e.message_id DESC
    LIMIT {p3:UInt32}
) AS e
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
ORDER BY
    e.ts DESC,
    e.message_id DESC
