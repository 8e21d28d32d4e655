-- goals: {"goals": [{"event": "purchase"}]}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "purchase"
--   p2 = "Europe/Berlin"
--   p3 = "2026-10-24T22:00:00Z"
--   p4 = "2026-10-31T23:00:00Z"
--   p5 = 1800000

SELECT
    0 AS part,
    key,
    '' AS label,
    bucket,
    grouping(bucket) AS is_total,
    count() AS n,
    uniqExact(person) AS persons,
    toFloat64(sum(amount)) AS amount
FROM
(
    SELECT
        arrayJoin(arrayPushFront(arrayFilter((k, c) -> c, range(1, 2), [(e.event = {p1:String})]), 0)) AS key,
        toUnixTimestamp(toStartOfDay(e.ts, {p2:String})) AS bucket,
        '' AS bd,
        if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
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
    WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p3:DateTime64(3, 'UTC')}) AND (e.ts < {p4:DateTime64(3, 'UTC')})
)
GROUP BY
    GROUPING SETS (
        (key, bucket),
        (key))
UNION ALL
SELECT
    1 AS part,
    key,
    '' AS label,
    bucket,
    grouping(bucket) AS is_total,
    count() AS n,
    toUInt64(0) AS persons,
    toFloat64(sum(amount)) AS amount
FROM
(
    SELECT
        arrayJoin(arrayPushFront(arrayFilter(k -> bitTest(session.4, k - 1), range(1, 2)), 0)) AS key,
        toUnixTimestamp(toStartOfDay(fromUnixTimestamp64Milli(session.1, 'UTC'), {p2:String})) AS bucket,
        session.2 AS bd,
        person,
        toDecimal128(0, 9) AS amount
    FROM
    (
        SELECT
            person,
            arrayJoin(arrayMap(s -> ((s[1]).1, '', 1, arrayFold((acc, x) -> bitOr(acc, x.2), s, toUInt16(0))), arraySplit((x, new) -> new, evs, arrayMap((t, p) -> ((t - p) > {p5:Int64}), evs.1, arrayPushFront(arrayPopBack(evs.1), (evs.1)[1]))))) AS session
        FROM
        (
            SELECT
                person,
                arraySort(groupArray(ev)) AS evs
            FROM
            (
                SELECT
                    if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                    (toUnixTimestamp64Milli(e.ts), toUInt16((e.event = {p1:String}) * 1)) AS ev
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
                WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p3:DateTime64(3, 'UTC')}) AND (e.ts < {p4:DateTime64(3, 'UTC')})
            )
            GROUP BY person
        )
    )
    WHERE session.3
)
GROUP BY
    GROUPING SETS (
        (key, bucket),
        (key))
