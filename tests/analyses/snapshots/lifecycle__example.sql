-- lifecycle: {"event": "page_view", "date_range": {"date_from": "-7d"}, "timezone": "Asia/Tokyo", "breakdown": {"key": "device_type", "source": "column", "limit": 1}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "2026-10-25"
--   p2 = "2026-10-31"
--   p3 = "2026-10-24T00:00:00+09:00"
--   p4 = "2026-11-01T00:00:00+09:00"
--   p5 = "page_view"
--   p6 = "Asia/Tokyo"
--   p7 = 1
--   p8 = "$other"

SELECT
    label,
    is_total,
    status.1 AS p,
    status.2 AS kind,
    count()
FROM
(
    SELECT
        label,
        is_total,
        arrayJoin(arrayConcat(arrayMap(a -> (a, if(a = first_ever, 'new', if(has(seen, addDays(a, -1)), 'returning', 'resurrecting'))), arrayFilter(a -> ((a >= {p1:Date}) AND (a <= {p2:Date})), seen)), arrayMap(a -> (addDays(a, 1), 'dormant'), arrayFilter(a -> (((addDays(a, 1) >= {p1:Date}) AND (addDays(a, 1) <= {p2:Date})) AND (NOT has(seen, addDays(a, 1)))), seen)))) AS status
    FROM
    (
        SELECT
            person,
            label,
            grouping(label) AS is_total,
            min(first_seen) AS first_ever,
            groupUniqArrayArray(active) AS seen
        FROM
        (
            SELECT
                *,
                if((bd_weight > 0) AND (bd_rank <= {p7:UInt32}), bd, {p8:String}) AS label
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
                            *,
                            1 AS weight
                        FROM
                        (
                            SELECT
                                if(ids.person_key = 0, x.id_key, ids.person_key) AS person,
                                x.bd AS bd,
                                min(first_seen) AS first_seen,
                                groupUniqArrayArray(active) AS active
                            FROM
                            (
                                SELECT
                                    e.id_key AS id_key,
                                    e.device_type AS bd,
                                    min(toDate(e.ts, {p6:String})) AS first_seen,
                                    groupUniqArrayIf(toDate(e.ts, {p6:String}), e.ts >= {p3:DateTime64(3, 'UTC')}) AS active
                                FROM events AS e
                                WHERE (e.project_id = {project_id:UInt32}) AND (e.ts < {p4:DateTime64(3, 'UTC')}) AND (e.event = {p5:String})
                                GROUP BY
                                    id_key,
                                    bd
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
                            GROUP BY
                                person,
                                bd
                        )
                    )
                )
            )
        )
        GROUP BY
            GROUPING SETS (
                (person, label),
                (person))
    )
)
GROUP BY
    label,
    is_total,
    p,
    kind
