-- retention_persons: {"retention": {"start": {"event": "signup"}, "returning": {}, "period": "week", "periods": 3, "date_range": {"date_from": "-4w"}}, "cohort": "2026-10-12", "k": 1, "limit": 5}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "2026-10-12"
--   p2 = 1
--   p3 = "2026-10-05T00:00:00+02:00"
--   p4 = "2026-11-02T00:00:00+01:00"
--   p5 = "2026-11-23T00:00:00+01:00"
--   p6 = "signup"
--   p7 = "Europe/Berlin"
--   p8 = "2026-10-05"
--   p9 = "2026-10-26"
--   p10 = 3
--   p11 = 6
--   p12 = 0

SELECT name
FROM
(
    SELECT
        cohort,
        '' AS bd,
        arrayJoin(arrayPushFront(arrayDistinct(arrayFilter(k -> ((k >= 0) AND (k <= {p10:UInt32})), arrayMap(r -> intDiv(dateDiff('day', cohort, r), 7), return_periods))), -1)) AS k,
        name
    FROM
    (
        SELECT
            arrayJoin(arrayFilter(c -> (c <= {p9:Date}), if(has_start AND (first_ever >= {p8:Date}), [first_ever], []))) AS cohort,
            *
        FROM
        (
            SELECT
                if(ids.person_key = 0, x.id_key, ids.person_key) AS person,
                max(started) AS has_start,
                minIf(first_start, started) AS first_ever,
                groupUniqArrayArray(starts) AS start_events,
                groupUniqArrayArray(returns) AS return_periods,
                any(if(ids.person_id = '', x.distinct_id, ids.person_id)) AS name
            FROM
            (
                SELECT
                    id_key,
                    any(distinct_id) AS distinct_id,
                    max(is_start) AS started,
                    minIf(p, is_start) AS first_start,
                    groupUniqArrayIf(p, is_start AND (p >= {p8:Date})) AS starts,
                    groupUniqArrayIf(p, is_return AND (e_ts >= {p3:DateTime64(3, 'UTC')}) AND (e_ts < {p5:DateTime64(3, 'UTC')})) AS returns
                FROM
                (
                    SELECT
                        e.id_key AS id_key,
                        e.distinct_id AS distinct_id,
                        e.ts AS e_ts,
                        toMonday(e.ts, {p7:String}) AS p,
                        '' AS bd,
                        (e.event = {p6:String}) AND (e.ts < {p4:DateTime64(3, 'UTC')}) AS is_start,
                        1 AS is_return
                    FROM events AS e
                    WHERE (e.project_id = {project_id:UInt32}) AND (e.ts < {p5:DateTime64(3, 'UTC')}) AND (is_start OR (is_return AND (e.ts >= {p3:DateTime64(3, 'UTC')})))
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
        )
    )
)
WHERE (cohort = {p1:Date}) AND (k = {p2:Int32})
ORDER BY name ASC
LIMIT {p12:UInt64}, {p11:UInt32}
