-- goals: {"goals": [{"event": "purchase", "value_property": "revenue", "currency": "USD"}, {"path": "/blog/**"}], "date_range": {"date_from": "-14d"}, "breakdown": {"key": "country", "source": "column", "limit": 3}, "where": {"filters": [{"key": "device_type", "source": "column", "op": "neq", "value": "bot"}]}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "purchase"
--   p2 = "page"
--   p3 = "^/blog/.*$"
--   p4 = ["bot"]
--   p5 = "Europe/Berlin"
--   p6 = "2026-10-17T22:00:00Z"
--   p7 = "2026-10-31T23:00:00Z"
--   p8 = 1800000
--   p9 = 3
--   p10 = "$other"

SELECT
    part,
    key,
    label,
    bucket,
    grouping(bucket) AS is_total,
    sum(n) AS n,
    uniqExactMerge(p) AS persons,
    toFloat64(sumMerge(a)) AS amount
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
                    0 AS part,
                    key,
                    bd,
                    bucket,
                    if(key > 0, count(), 0) AS weight,
                    count() AS n,
                    uniqExactState(person) AS p,
                    sumState(amount) AS a
                FROM
                (
                    SELECT
                        arrayJoin(arrayPushFront(arrayFilter((k, c) -> c, range(1, 3), [(e.event = {p1:String}), ((e.type = {p2:String}) AND match(e.path, {p3:String}))]), 0)) AS key,
                        toUnixTimestamp(toStartOfDay(e.ts, {p5:String})) AS bucket,
                        e.country AS bd,
                        if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                        multiIf(key = 1, ifNull(toDecimal128OrNull(toString(e.properties.revenue), 9), 0), toDecimal128(0, 9)) AS amount
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
                    WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p6:DateTime64(3, 'UTC')}) AND (e.ts < {p7:DateTime64(3, 'UTC')}) AND (NOT has({p4:Array(String)}, e.device_type))
                )
                GROUP BY
                    key,
                    bd,
                    bucket
                UNION ALL
                SELECT
                    1 AS part,
                    key,
                    bd,
                    bucket,
                    toUInt64(0) AS weight,
                    count() AS n,
                    uniqExactState(person) AS p,
                    sumState(amount) AS a
                FROM
                (
                    SELECT
                        arrayJoin(arrayPushFront(arrayFilter(k -> bitTest(session.4, k - 1), range(1, 3)), 0)) AS key,
                        toUnixTimestamp(toStartOfDay(fromUnixTimestamp64Milli(session.1, 'UTC'), {p5:String})) AS bucket,
                        session.2 AS bd,
                        person,
                        toDecimal128(0, 9) AS amount
                    FROM
                    (
                        SELECT
                            person,
                            arrayJoin(arrayMap(s -> ((s[1]).1, (s[1]).3, (s[1]).4, arrayFold((acc, x) -> bitOr(acc, x.2), s, toUInt16(0))), arraySplit((x, new) -> new, evs, arrayMap((t, p) -> ((t - p) > {p8:Int64}), evs.1, arrayPushFront(arrayPopBack(evs.1), (evs.1)[1]))))) AS session
                        FROM
                        (
                            SELECT
                                person,
                                arraySort(groupArray(ev)) AS evs
                            FROM
                            (
                                SELECT
                                    if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                                    (toUnixTimestamp64Milli(e.ts), if((NOT has({p4:Array(String)}, e.device_type)), toUInt16(((e.event = {p1:String}) * 1) + (((e.type = {p2:String}) AND match(e.path, {p3:String})) * 2)), 0), e.country, (NOT has({p4:Array(String)}, e.device_type))) AS ev
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
                                WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p6:DateTime64(3, 'UTC')}) AND (e.ts < {p7:DateTime64(3, 'UTC')})
                            )
                            GROUP BY person
                        )
                    )
                    WHERE session.3
                )
                GROUP BY
                    key,
                    bd,
                    bucket
            )
        )
    )
)
GROUP BY
    GROUPING SETS (
        (part, key, label, bucket),
        (part, key, label))
