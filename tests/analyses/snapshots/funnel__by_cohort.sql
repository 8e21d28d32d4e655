-- funnel: {"steps": [{"event": "page_view"}, {"event": "signup"}], "breakdown": {"source": "cohort", "cohorts": ["c_examplecohor"]}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "page_view"
--   p2 = "signup"
--   p3 = 1209600000
--   p4 = 1792879200000
--   p5 = "2026-10-31T12:30:00Z"
--   p6 = "purchase"
--   p7 = "2026-10-01T12:30:00Z"
--   p8 = 1
--   p9 = "purchasers"
--   p10 = "2026-10-31T23:00:00Z"
--   p11 = "2026-10-24T22:00:00Z"
--   p12 = "2026-11-14T23:00:00Z"
--   p13 = "$other"

SELECT
    label,
    grouping(label) AS is_total,
    countMerge(v0),
    sumMerge(v1),
    avgMerge(v2) / 1000,
    quantileExactInclusiveMerge(0.5)(v3) / 1000
FROM
(
    SELECT
        * EXCEPT (bd, c),
        c.1 AS bd,
        c.2 AS copy,
        c.1 AS label
    FROM
    (
        SELECT
            *,
            arrayJoin(arrayZip(if(empty(bd), [{p13:String}], bd), arrayEnumerate(if(empty(bd), [{p13:String}], bd)))) AS c
        FROM
        (
            SELECT
                bd,
                count() AS weight,
                countState() AS v0,
                sumState(toUInt64(depth > 1)) AS v1,
                avgState(if(depth > 1, (times[2]) - (times[1]), NULL)) AS v2,
                quantileExactInclusiveState(0.5)(if(depth > 1, (times[2]) - (times[1]), NULL)) AS v3
            FROM
            (
                SELECT
                    person,
                    name,
                    depth,
                    arrayMap(x -> (x + {p4:Int64}), times) AS times,
                    bds[entry] AS bd
                FROM
                (
                    SELECT
                        *,
                        ((via0 > 0) + (via1 > 0)) + throwIf(length(idx) > 8388607, 'a person has more events in this funnel than it can follow (8 million)') AS depth,
                        [t[via0], t[via1]] AS times,
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
                                first1 AS via1
                            FROM
                            (
                                SELECT
                                    *,
                                    arrayFirstIndex(x -> (x > 0), moved0) AS first0,
                                    arrayFirstIndex(x -> (x > 0), moved1) AS first1
                                FROM
                                (
                                    SELECT
                                        *,
                                        arrayMap((x, ti, i, p) -> if(bitTest(x, 1) AND (p > 0) AND ((ti - bitShiftRight(p, 23)) <= {p3:Int64}), bitShiftLeft(bitShiftRight(p, 23), 23) + i, 0), m, t, idx, before1) AS moved1
                                    FROM
                                    (
                                        SELECT
                                            *,
                                            arrayShiftRight(at0, 1) AS before1
                                        FROM
                                        (
                                            SELECT
                                                *,
                                                arrayFill(x -> (x > 0), moved0) AS at0
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
                                                        kept_bds AS bds,
                                                        arrayMap(x -> (bitShiftRight(x, 20) - {p4:Int64}), kept_keys) AS t,
                                                        arrayMap(x -> toUInt16(bitAnd(x, 65535)), kept_keys) AS m,
                                                        arrayEnumerate(kept_keys) AS idx
                                                    FROM
                                                    (
                                                        SELECT
                                                            person,
                                                            name,
                                                            arrayFilter((v, x, p, n) -> (NOT ((bitAnd(x, 3) = 0) OR ((bitAnd(x, 3) IN (1)) AND (bitAnd(p, 3) = bitAnd(x, 3)) AND (bitAnd(n, 3) = bitAnd(x, 3))))), k, k, arrayShiftRight(k, 1, -1), arrayShiftLeft(k, 1, -1)) AS kept_keys,
                                                            arrayFilter((v, x, p, n) -> (NOT ((bitAnd(x, 3) = 0) OR ((bitAnd(x, 3) IN (1)) AND (bitAnd(p, 3) = bitAnd(x, 3)) AND (bitAnd(n, 3) = bitAnd(x, 3))))), bds, k, arrayShiftRight(k, 1, -1), arrayShiftLeft(k, 1, -1)) AS kept_bds
                                                        FROM
                                                        (
                                                            SELECT
                                                                person,
                                                                any(name) AS name,
                                                                arraySort(groupArray(key)) AS k,
                                                                arraySort((b, x) -> x, groupArray(bd), groupArray(key)) AS bds
                                                            FROM
                                                            (
                                                                SELECT
                                                                    if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                                                                    '' AS name,
                                                                    e.ts < {p10:DateTime64(3, 'UTC')} AS in_range,
                                                                    (e.event = {p1:String}) AND in_range AS s0,
                                                                    (e.event = {p2:String}) AS s1,
                                                                    (bitShiftLeft(toUnixTimestamp64Milli(e.ts), 20) + bitShiftLeft(toInt64(multiIf(s0, 0, s1, 1, 2)), 16)) + (((1 * s0) + (2 * s1)) + (32768 * in_range)) AS key,
                                                                    arrayFilter(x -> (x != ''), [if((if(ids.person_key = 0, e.id_key, ids.person_key) IN (
                                                                        SELECT person
                                                                        FROM
                                                                        (
                                                                            SELECT
                                                                                if(ids.person_key = 0, x.id_key, ids.person_key) AS person,
                                                                                sum(c0) AS c0,
                                                                                count() AS ids
                                                                            FROM
                                                                            (
                                                                                SELECT
                                                                                    e.id_key AS id_key,
                                                                                    countIf((e.event = {p6:String}) AND (e.ts >= {p7:DateTime64(3, 'UTC')}) AND (e.ts < {p5:DateTime64(3, 'UTC')})) AS c0
                                                                                FROM events AS e
                                                                                WHERE (e.project_id = {project_id:UInt32}) AND ((e.event = {p6:String}) AND (e.ts >= {p7:DateTime64(3, 'UTC')}) AND (e.ts < {p5:DateTime64(3, 'UTC')}))
                                                                                GROUP BY id_key
                                                                            ) AS x
                                                                            ANY LEFT JOIN
                                                                            (
                                                                                SELECT
                                                                                    cityHash64(distinct_id) AS id_key,
                                                                                    toString(person_id) AS person_id,
                                                                                    cityHash64(toString(person_id)) AS person_key
                                                                                FROM identities
                                                                                FINAL
                                                                                WHERE project_id = {project_id:UInt32}
                                                                            ) AS ids ON ids.id_key = x.id_key
                                                                            GROUP BY person
                                                                        )
                                                                        WHERE (c0 >= {p8:UInt64})
                                                                    )), {p9:String}, '')]) AS bd
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
                                                                WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p11:DateTime64(3, 'UTC')}) AND (e.ts < {p12:DateTime64(3, 'UTC')}) AND (e.event IN ({p1:String}, {p2:String}))
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
            GROUP BY bd
        )
    )
)
GROUP BY
    GROUPING SETS (
        (label),
        (copy))
HAVING (grouping(label) = 0) OR (copy = 1)
