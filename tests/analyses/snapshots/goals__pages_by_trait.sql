-- goals: {"goals": [{"path": "/docs/*/setup", "where": {"filters": [{"key": "plan", "source": "person", "value": "pro"}]}}, {"path": "/pricing"}], "interval": "week", "gap_minutes": 10, "date_range": {"date_from": "-8w"}, "breakdown": {"key": "plan", "source": "person"}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "page"
--   p2 = "^/docs/[^/]*/setup$"
--   p3 = ["pro"]
--   p4 = "page"
--   p5 = "/pricing"
--   p6 = "Europe/Berlin"
--   p7 = "2026-09-06T22:00:00Z"
--   p8 = "2026-11-01T23:00:00Z"
--   p9 = 600000
--   p10 = 10
--   p11 = "$other"

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
        if((bd_weight > 0) AND (bd_rank <= {p10:UInt32}), bd, {p11:String}) AS label
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
                        arrayJoin(arrayPushFront(arrayFilter((k, c) -> c, range(1, 3), [((e.type = {p1:String}) AND match(e.path, {p2:String}) AND (has({p3:Array(String)}, toString(pp.person_properties.plan)))), ((e.type = {p4:String}) AND (e.path = {p5:String}))]), 0)) AS key,
                        toUnixTimestamp(toDateTime(toMonday(e.ts, {p6:String}), {p6:String})) AS bucket,
                        toString(pp.person_properties.plan) AS bd,
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
                    ANY LEFT JOIN
                    (
                        SELECT
                            toString(person_id) AS person_key,
                            properties AS person_properties
                        FROM persons
                        FINAL
                        WHERE project_id = {project_id:UInt32}
                    ) AS pp ON pp.person_key = if(ids.person_id = '', e.distinct_id, ids.person_id)
                    WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p7:DateTime64(3, 'UTC')}) AND (e.ts < {p8:DateTime64(3, 'UTC')})
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
                        toUnixTimestamp(toDateTime(toMonday(fromUnixTimestamp64Milli(session.1, 'UTC'), {p6:String}), {p6:String})) AS bucket,
                        session.2 AS bd,
                        person,
                        toDecimal128(0, 9) AS amount
                    FROM
                    (
                        SELECT
                            person,
                            arrayJoin(arrayMap(s -> ((s[1]).1, (s[1]).3, 1, arrayFold((acc, x) -> bitOr(acc, x.2), s, toUInt16(0))), arraySplit((x, new) -> new, evs, arrayMap((t, p) -> ((t - p) > {p9:Int64}), evs.1, arrayPushFront(arrayPopBack(evs.1), (evs.1)[1]))))) AS session
                        FROM
                        (
                            SELECT
                                person,
                                arraySort(groupArray(ev)) AS evs
                            FROM
                            (
                                SELECT
                                    if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                                    (toUnixTimestamp64Milli(e.ts), toUInt16((((e.type = {p1:String}) AND match(e.path, {p2:String}) AND (has({p3:Array(String)}, toString(pp.person_properties.plan)))) * 1) + (((e.type = {p4:String}) AND (e.path = {p5:String})) * 2)), toString(pp.person_properties.plan)) AS ev
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
                                WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p7:DateTime64(3, 'UTC')}) AND (e.ts < {p8:DateTime64(3, 'UTC')})
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
