-- funnel: {"steps": [{"event": "page_view"}, {"event": "signup", "where": {"filters": [{"key": "plan", "value": "pro"}]}}, {"event": "purchase"}], "mode": "strict", "window": 6, "window_unit": "hour", "date_range": {"date_from": "-14d"}, "where": {"filters": [{"key": "device_type", "source": "column", "op": "neq", "value": "bot"}]}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "page_view"
--   p2 = "signup"
--   p3 = "purchase"
--   p4 = ["pro"]
--   p5 = 21600000
--   p6 = 1792274400000
--   p7 = "2026-10-31T23:00:00Z"
--   p8 = "2026-10-17T22:00:00Z"
--   p9 = "2026-11-01T05:00:00Z"
--   p10 = ["bot"]

SELECT
    '' AS label,
    1 AS is_total,
    count(),
    sum(toUInt64(depth > 1)),
    sum(toUInt64(depth > 2)),
    avg(if(depth > 1, (times[2]) - (times[1]), NULL)) / 1000,
    avg(if(depth > 2, (times[3]) - (times[2]), NULL)) / 1000,
    quantileExactInclusive(0.5)(if(depth > 1, (times[2]) - (times[1]), NULL)) / 1000,
    quantileExactInclusive(0.5)(if(depth > 2, (times[3]) - (times[2]), NULL)) / 1000
FROM
(
    SELECT
        person,
        name,
        depth,
        arrayMap(x -> (x + {p6:Int64}), times) AS times,
        '' AS bd
    FROM
    (
        SELECT
            *,
            (((via0 > 0) + (via1 > 0)) + (via2 > 0)) + throwIf(length(idx) > 8388607, 'a person has more events in this funnel than it can follow (8 million)') AS depth,
            [t[via0], t[via1], t[via2]] AS times,
            via0 AS entry
        FROM
        (
            SELECT
                *,
                if(via1 > 0, bitAnd(before1[via1], 8388607), first0) AS via0
            FROM
            (
                SELECT
                    *,
                    if(via2 > 0, bitAnd(before2[via2], 8388607), first1) AS via1
                FROM
                (
                    SELECT
                        *,
                        first2 AS via2
                    FROM
                    (
                        SELECT
                            *,
                            arrayFirstIndex(x -> (x > 0), moved0) AS first0,
                            arrayFirstIndex(x -> (x > 0), moved1) AS first1,
                            arrayFirstIndex(x -> (x > 0), moved2) AS first2
                        FROM
                        (
                            SELECT
                                *,
                                arrayMap((x, ti, i, p) -> if(bitTest(x, 2) AND (p > 0) AND ((ti - bitShiftRight(p, 23)) <= {p5:Int64}), bitShiftLeft(bitShiftRight(p, 23), 23) + i, 0), m, t, idx, before2) AS moved2
                            FROM
                            (
                                SELECT
                                    *,
                                    arrayShiftRight(at1, 1) AS before2
                                FROM
                                (
                                    SELECT
                                        *,
                                        moved1 AS at1
                                    FROM
                                    (
                                        SELECT
                                            *,
                                            arrayMap((x, ti, i, p) -> if(bitTest(x, 1) AND (p > 0) AND ((ti - bitShiftRight(p, 23)) <= {p5:Int64}), bitShiftLeft(bitShiftRight(p, 23), 23) + i, 0), m, t, idx, before1) AS moved1
                                        FROM
                                        (
                                            SELECT
                                                *,
                                                arrayShiftRight(at0, 1) AS before1
                                            FROM
                                            (
                                                SELECT
                                                    *,
                                                    moved0 AS at0
                                                FROM
                                                (
                                                    SELECT
                                                        *,
                                                        arrayMap((x, ti, i) -> if(bitTest(x, 0), bitShiftLeft(ti, 23) + i, 0), m, t, idx) AS moved0
                                                    FROM
                                                    (
                                                        SELECT
                                                            person,
                                                            name,
                                                            arrayMap(x -> (bitShiftRight(x, 20) - {p6:Int64}), kept_keys) AS t,
                                                            arrayMap(x -> toUInt16(bitAnd(x, 65535)), kept_keys) AS m,
                                                            arrayEnumerate(kept_keys) AS idx
                                                        FROM
                                                        (
                                                            SELECT
                                                                person,
                                                                name,
                                                                arrayFilter((v, x, p, n) -> (NOT ((bitAnd(x, 7) IN (0, 1)) AND (bitAnd(p, 7) = bitAnd(x, 7)) AND (bitAnd(n, 7) = bitAnd(x, 7)))), k, k, arrayShiftRight(k, 1, -1), arrayShiftLeft(k, 1, -1)) AS kept_keys
                                                            FROM
                                                            (
                                                                SELECT
                                                                    person,
                                                                    any(name) AS name,
                                                                    arraySort(groupArray(key)) AS k
                                                                FROM
                                                                (
                                                                    SELECT
                                                                        if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                                                                        '' AS name,
                                                                        e.ts < {p7:DateTime64(3, 'UTC')} AS in_range,
                                                                        (e.event = {p1:String}) AND in_range AS s0,
                                                                        ((e.event = {p2:String}) AND (has({p4:Array(String)}, toString(e.properties.plan)))) AS s1,
                                                                        (e.event = {p3:String}) AS s2,
                                                                        (bitShiftLeft(toUnixTimestamp64Milli(e.ts), 20) + bitShiftLeft(toInt64(multiIf(s0, 0, s1, 1, s2, 2, 3)), 16)) + ((((1 * s0) + (2 * s1)) + (4 * s2)) + (32768 * in_range)) AS key
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
                                                                    WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p8:DateTime64(3, 'UTC')}) AND (e.ts < {p9:DateTime64(3, 'UTC')}) AND (NOT has({p10:Array(String)}, e.device_type))
                                                                )
                                                                GROUP BY person
                                                                HAVING max((bitAnd(key, 1) != 0) AND bitTest(key, 15))
                                                            )
                                                        )
                                                    )
                                                )
                                            )
                                        )
                                    )
                                )
                            )
                        )
                    )
                )
            )
        )
    )
)
