-- retention: {"start": {"event": "signup"}, "returning": {}, "period": "week", "periods": 3, "date_range": {"date_from": "-4w"}, "breakdown": {"key": "plan", "source": "person", "limit": 2}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "2026-10-05T00:00:00+02:00"
--   p2 = "2026-11-02T00:00:00+01:00"
--   p3 = "2026-11-23T00:00:00+01:00"
--   p4 = "signup"
--   p5 = "Europe/Berlin"
--   p6 = "2026-10-05"
--   p7 = "2026-10-26"
--   p8 = 3
--   p9 = 2
--   p10 = "$other"

SELECT
    label,
    grouping(label) AS is_total,
    cohort,
    k,
    sum(n)
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
                    cohort,
                    k,
                    count() AS n,
                    if(k = -1, n, 0) AS weight
                FROM
                (
                    SELECT
                        cohort,
                        bd AS bd,
                        arrayJoin(arrayPushFront(arrayDistinct(arrayFilter(k -> ((k >= 0) AND (k <= {p8:UInt32})), arrayMap(r -> intDiv(dateDiff('day', cohort, r), 7), return_periods))), -1)) AS k
                    FROM
                    (
                        SELECT
                            arrayJoin(arrayFilter(c -> (c <= {p7:Date}), if(has_start AND (first_ever >= {p6:Date}), [first_ever], []))) AS cohort,
                            *
                        FROM
                        (
                            SELECT
                                x.*,
                                toString(pp.person_properties.plan) AS bd
                            FROM
                            (
                                SELECT
                                    if(ids.person_key = 0, x.id_key, ids.person_key) AS person,
                                    max(started) AS has_start,
                                    minIf(first_start, started) AS first_ever,
                                    groupUniqArrayArray(starts) AS start_events,
                                    groupUniqArrayArray(returns) AS return_periods
                                FROM
                                (
                                    SELECT
                                        id_key,
                                        max(is_start) AS started,
                                        minIf(p, is_start) AS first_start,
                                        groupUniqArrayIf(p, is_start AND (p >= {p6:Date})) AS starts,
                                        groupUniqArrayIf(p, is_return AND (e_ts >= {p1:DateTime64(3, 'UTC')}) AND (e_ts < {p3:DateTime64(3, 'UTC')})) AS returns
                                    FROM
                                    (
                                        SELECT
                                            e.id_key AS id_key,
                                            e.ts AS e_ts,
                                            toMonday(e.ts, {p5:String}) AS p,
                                            '' AS bd,
                                            (e.event = {p4:String}) AND (e.ts < {p2:DateTime64(3, 'UTC')}) AS is_start,
                                            1 AS is_return
                                        FROM events AS e
                                        WHERE (e.project_id = {project_id:UInt32}) AND (e.ts < {p3:DateTime64(3, 'UTC')}) AND (is_start OR (is_return AND (e.ts >= {p1:DateTime64(3, 'UTC')})))
                                    )
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
                            ) AS x
                            ANY LEFT JOIN
                            (
                                SELECT
                                    cityHash64(toString(person_id)) AS person_key,
                                    properties AS person_properties
                                FROM persons
                                FINAL
                                WHERE project_id = {project_id:UInt32}
                            ) AS pp ON pp.person_key = x.person
                        )
                    )
                )
                GROUP BY
                    bd,
                    cohort,
                    k
            )
        )
    )
)
GROUP BY
    GROUPING SETS (
        (label, cohort, k),
        (cohort, k))
