-- trends: {"series": [{"event": "page_view"}], "where": {"filters": [{"key": "c_examplecohor", "source": "cohort", "op": "not_in"}]}, "breakdown": {"source": "cohort", "cohorts": ["c_examplecohor"]}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "2026-10-24T22:00:00Z"
--   p2 = "2026-10-31T23:00:00Z"
--   p3 = ["page_view"]
--   p4 = ["page_view"]
--   p5 = [0]
--   p6 = "Europe/Berlin"
--   p7 = "2026-10-31T12:30:00Z"
--   p8 = "purchase"
--   p9 = "2026-10-01T12:30:00Z"
--   p10 = 1
--   p11 = "purchasers"
--   p12 = "2026-10-24T22:00:00Z"
--   p13 = "2026-10-31T12:30:00Z"
--   p14 = "purchase"
--   p15 = "2026-10-01T12:30:00Z"
--   p16 = 1
--   p17 = "$other"

SELECT
    {p5:Array(UInt8)}[(indexOf({p4:Array(String)}, toString(key)) - 1) + 1] AS series,
    current,
    label,
    bucket,
    grouping(bucket) AS is_total,
    toFloat64(countMerge(m)) AS value
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
            arrayJoin(arrayZip(if(empty(bd), [{p17:String}], bd), arrayEnumerate(if(empty(bd), [{p17:String}], bd)))) AS c
        FROM
        (
            SELECT
                key,
                current,
                bd,
                bucket,
                countState() AS m,
                if(current, count(), 0) AS weight
            FROM
            (
                SELECT
                    e.event AS key,
                    e.ts >= {p12:DateTime64(3, 'UTC')} AS current,
                    toUnixTimestamp(toStartOfDay(e.ts, {p6:String})) AS bucket,
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
                                    countIf((e.event = {p8:String}) AND (e.ts >= {p9:DateTime64(3, 'UTC')}) AND (e.ts < {p7:DateTime64(3, 'UTC')})) AS c0
                                FROM events AS e
                                WHERE (e.project_id = {project_id:UInt32}) AND ((e.event = {p8:String}) AND (e.ts >= {p9:DateTime64(3, 'UTC')}) AND (e.ts < {p7:DateTime64(3, 'UTC')}))
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
                        WHERE (c0 >= {p10:UInt64})
                    )), {p11:String}, '')]) AS bd,
                    if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                    e.distinct_id AS distinct_id,
                    nullIf(e.session_id, '') AS session,
                    CAST(NULL, 'Nullable(Float64)') AS value,
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
                WHERE (e.project_id = {project_id:UInt32}) AND ((e.ts >= {p1:DateTime64(3, 'UTC')}) AND (e.ts < {p2:DateTime64(3, 'UTC')})) AND (e.event IN ({p3:Array(String)})) AND (NOT (if(ids.person_key = 0, e.id_key, ids.person_key) IN (
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
                                countIf((e.event = {p14:String}) AND (e.ts >= {p15:DateTime64(3, 'UTC')}) AND (e.ts < {p13:DateTime64(3, 'UTC')})) AS c0
                            FROM events AS e
                            WHERE (e.project_id = {project_id:UInt32}) AND ((e.event = {p14:String}) AND (e.ts >= {p15:DateTime64(3, 'UTC')}) AND (e.ts < {p13:DateTime64(3, 'UTC')}))
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
                    WHERE (c0 >= {p16:UInt64})
                )))
            )
            GROUP BY
                key,
                current,
                bd,
                bucket
        )
    )
)
GROUP BY
    GROUPING SETS (
        (key, current, label, bucket),
        (key, current, label))
