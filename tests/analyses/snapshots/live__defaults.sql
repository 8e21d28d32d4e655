-- live: {}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = 20
--   p2 = "2026-10-31T12:01:00Z"
--   p3 = "2026-10-31T12:31:00Z"

SELECT
    count(),
    uniqExact(if(ids.person_key = 0, e.id_key, ids.person_key)),
    sumMap([toUInt32(toUnixTimestamp(toStartOfMinute(e.ts)))], [toUInt64(1)]),
    groupArraySorted({p1:UInt32})((-toUnixTimestamp64Milli(e.ts), e.message_id, toString(e.event), e.distinct_id, e.path, toString(e.country), toString(e.browser)))
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
WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p2:DateTime64(3, 'UTC')}) AND (e.ts < {p3:DateTime64(3, 'UTC')})
