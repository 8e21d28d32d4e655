-- funnel: {"steps": [{"event": "page_view"}, {"event": "signup"}, {"event": "purchase"}], "mode": "unordered", "window": 2, "date_range": {"date_from": "2026-10-01", "date_to": "2026-10-28"}, "breakdown": {"key": "plan", "source": "person"}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "page_view"
--   p2 = "signup"
--   p3 = "purchase"
--   p4 = 172800000
--   p5 = 1790805600000
--   p6 = "2026-10-28T23:00:00Z"
--   p7 = "2026-09-30T22:00:00Z"
--   p8 = "2026-10-30T23:00:00Z"
--   p9 = 10
--   p10 = "$other"

SELECT
    label,
    grouping(label) AS is_total,
    countMerge(v0),
    sumMerge(v1),
    sumMerge(v2),
    avgMerge(v3) / 1000,
    avgMerge(v4) / 1000,
    quantileExactInclusiveMerge(0.5)(v5) / 1000,
    quantileExactInclusiveMerge(0.5)(v6) / 1000
FROM
(
    SELECT
        *,
        if((bd_weight > 0) AND (bd_rank <= {p9:UInt32}), bd, {p10:String}) AS label
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
                    bd,
                    count() AS weight,
                    countState() AS v0,
                    sumState(toUInt64(depth > 1)) AS v1,
                    sumState(toUInt64(depth > 2)) AS v2,
                    avgState(if(depth > 1, (times[2]) - (times[1]), NULL)) AS v3,
                    avgState(if(depth > 2, (times[3]) - (times[2]), NULL)) AS v4,
                    quantileExactInclusiveState(0.5)(if(depth > 1, (times[2]) - (times[1]), NULL)) AS v5,
                    quantileExactInclusiveState(0.5)(if(depth > 2, (times[3]) - (times[2]), NULL)) AS v6
                FROM
                (
                    SELECT
                        person,
                        name,
                        depth,
                        arrayMap(x -> (x + {p5:Int64}), times) AS times,
                        bds[entry] AS bd
                    FROM
                    (
                        SELECT
                            *,
                            reached[entry] AS depth,
                            arrayResize(arraySort(arrayFilter(x -> (x >= 0), [if(((next0[entry]) >= 0) AND (((next0[entry]) - (t[entry])) <= {p4:Int64}), next0[entry], -1), if(((next1[entry]) >= 0) AND (((next1[entry]) - (t[entry])) <= {p4:Int64}), next1[entry], -1), if(((next2[entry]) >= 0) AND (((next2[entry]) - (t[entry])) <= {p4:Int64}), next2[entry], -1)])), 3, 0) AS times
                        FROM
                        (
                            SELECT
                                *,
                                indexOf(reached, arrayMax(reached)) AS entry
                            FROM
                            (
                                SELECT
                                    *,
                                    arrayMap((x, ti, n0, n1, n2) -> if(bitTest(x, 15) AND (bitAnd(x, 7) != 0), (((n0 >= 0) AND ((n0 - ti) <= {p4:Int64})) + ((n1 >= 0) AND ((n1 - ti) <= {p4:Int64}))) + ((n2 >= 0) AND ((n2 - ti) <= {p4:Int64})), 0), m, t, next0, next1, next2) AS reached
                                FROM
                                (
                                    SELECT
                                        *,
                                        arrayReverseFill((v, x) -> bitTest(x, 0), arrayMap((x, ti) -> if(bitTest(x, 0), ti, -1), m, t), m) AS next0,
                                        arrayReverseFill((v, x) -> bitTest(x, 1), arrayMap((x, ti) -> if(bitTest(x, 1), ti, -1), m, t), m) AS next1,
                                        arrayReverseFill((v, x) -> bitTest(x, 2), arrayMap((x, ti) -> if(bitTest(x, 2), ti, -1), m, t), m) AS next2
                                    FROM
                                    (
                                        SELECT
                                            person,
                                            name,
                                            kept_bds AS bds,
                                            arrayMap(x -> (bitShiftRight(x, 20) - {p5:Int64}), kept_keys) AS t,
                                            arrayMap(x -> toUInt16(bitAnd(x, 65535)), kept_keys) AS m,
                                            arrayEnumerate(kept_keys) AS idx
                                        FROM
                                        (
                                            SELECT
                                                person,
                                                name,
                                                k AS kept_keys,
                                                bds AS kept_bds
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
                                                        e.ts < {p6:DateTime64(3, 'UTC')} AS in_range,
                                                        (e.event = {p1:String}) AS s0,
                                                        (e.event = {p2:String}) AS s1,
                                                        (e.event = {p3:String}) AS s2,
                                                        (bitShiftLeft(toUnixTimestamp64Milli(e.ts), 20) + bitShiftLeft(toInt64(multiIf(s0, 0, s1, 1, s2, 2, 3)), 16)) + ((((1 * s0) + (2 * s1)) + (4 * s2)) + (32768 * in_range)) AS key,
                                                        toString(pp.person_properties.plan) AS bd
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
                                                    ANY LEFT JOIN
                                                    (
                                                        SELECT
                                                            toString(person_id) AS person_key,
                                                            properties AS person_properties
                                                        FROM persons
                                                        FINAL
                                                        WHERE project_id = {project_id:UInt32}
                                                    ) AS pp ON pp.person_key = if(ids.person_id = '', e.distinct_id, ids.person_id)
                                                    WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p7:DateTime64(3, 'UTC')}) AND (e.ts < {p8:DateTime64(3, 'UTC')}) AND (e.event IN ({p1:String}, {p2:String}, {p3:String}))
                                                )
                                                GROUP BY person
                                                HAVING max((bitAnd(key, 7) != 0) AND bitTest(key, 15))
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
)
GROUP BY
    GROUPING SETS (
        (label),
        ())
