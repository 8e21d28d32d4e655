-- paths_persons: {"paths": {"start": "/"}, "step": 1, "node": "/pricing"}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = 2
--   p2 = 0
--   p3 = 608400000
--   p4 = "2026-10-24T22:00:00Z"
--   p5 = "2026-10-31T23:00:00Z"
--   p6 = "/"
--   p7 = 1792879200000
--   p8 = 1800000
--   p9 = 1792879200000
--   p10 = "/pricing"
--   p11 = 101
--   p12 = 0

WITH
    (
        SELECT arraySort(`all`)
        FROM
        (
            SELECT groupUniqArray(if(e.type = 'page', e.path, toString(e.event))) AS `all`
            FROM events AS e
            WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p4:DateTime64(3, 'UTC')}) AND (e.ts < {p5:DateTime64(3, 'UTC')}) AND (e.type IN ('track', 'page', 'screen'))
        )
        WHERE throwIf(length(`all`) > 1048575, 'a path follows at most 1048575 distinct step names: add cleaning rules') = 0
    ) AS step_names
SELECT
    any(name) AS person_name,
    count() AS paths,
    min(at) AS first
FROM
(
    SELECT *
    FROM
    (
        SELECT
            *,
            p[{p1:UInt8}] AS id
        FROM
        (
            SELECT
                person,
                person_name AS name,
                arrayMap(x -> toUInt32(bitAnd(x, 1048575)), arraySlice(o, a, 6)) AS p,
                bitShiftRight(o[a], 20) + {p9:Int64} AS at
            FROM
            (
                SELECT
                    person,
                    person_name,
                    s AS o,
                    arrayFirstIndex(x -> ((bitAnd(x, 1048575) = indexOf(step_names, {p6:String})) AND (bitShiftRight(x, 20) >= {p2:Int64}) AND (bitShiftRight(x, 20) < {p3:Int64})), o) AS a
                FROM
                (
                    SELECT
                        person,
                        person_name,
                        arrayFilter((x, previous, i) -> ((i = 1) OR (bitAnd(x, 1048575) != bitAnd(previous, 1048575))), s, arrayShiftRight(s, 1), arrayEnumerate(s)) AS s
                    FROM
                    (
                        SELECT
                            person,
                            person_name,
                            arrayJoin(arraySplit((x, new) -> new, keys, arrayMap((x, previous) -> ((bitShiftRight(x, 20) - bitShiftRight(previous, 20)) > {p8:Int64}), keys, arrayShiftRight(keys, 1, keys[1])))) AS s
                        FROM
                        (
                            SELECT
                                person,
                                any(person_name) AS person_name,
                                arraySort(groupArray(key)) AS keys
                            FROM
                            (
                                SELECT
                                    if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                                    if(ids.person_id = '', e.distinct_id, ids.person_id) AS person_name,
                                    bitShiftLeft(toUnixTimestamp64Milli(e.ts) - {p7:Int64}, 20) + transform(if(e.type = 'page', e.path, toString(e.event)), step_names, arrayEnumerate(step_names), 0) AS key
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
                                WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p4:DateTime64(3, 'UTC')}) AND (e.ts < {p5:DateTime64(3, 'UTC')}) AND (e.type IN ('track', 'page', 'screen'))
                            )
                            GROUP BY person
                            HAVING max((bitAnd(key, 1048575) = indexOf(step_names, {p6:String})) AND (bitShiftRight(key, 20) >= {p2:Int64}) AND (bitShiftRight(key, 20) < {p3:Int64}))
                        )
                    )
                )
            )
            WHERE a > 0
        )
        WHERE length(p) >= {p1:UInt8}
    )
    WHERE (step_names[id]) = {p10:String}
)
GROUP BY person
ORDER BY person_name ASC
LIMIT {p12:UInt64}, {p11:UInt32}
