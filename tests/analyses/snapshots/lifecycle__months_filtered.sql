-- lifecycle: {"event": null, "period": "month", "date_range": {"date_from": "-6m"}, "where": {"filters": [{"key": "revenue", "op": "gt", "value": 10}]}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "2026-05-01"
--   p2 = "2026-10-01"
--   p3 = "2026-04-01T00:00:00+02:00"
--   p4 = "2026-11-01T00:00:00+01:00"
--   p5 = "Europe/Berlin"
--   p6 = 10.0

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
        arrayJoin(arrayConcat(arrayMap(a -> (a, if(a = first_ever, 'new', if(has(seen, addMonths(a, -1)), 'returning', 'resurrecting'))), arrayFilter(a -> ((a >= {p1:Date}) AND (a <= {p2:Date})), seen)), arrayMap(a -> (addMonths(a, 1), 'dormant'), arrayFilter(a -> (((addMonths(a, 1) >= {p1:Date}) AND (addMonths(a, 1) <= {p2:Date})) AND (NOT has(seen, addMonths(a, 1)))), seen)))) AS status
    FROM
    (
        SELECT
            person,
            '' AS label,
            1 AS is_total,
            min(first_seen) AS first_ever,
            groupUniqArrayArray(active) AS seen
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
                    '' AS bd,
                    min(toStartOfMonth(e.ts, {p5:String})) AS first_seen,
                    groupUniqArrayIf(toStartOfMonth(e.ts, {p5:String}), e.ts >= {p3:DateTime64(3, 'UTC')}) AS active
                FROM events AS e
                WHERE (e.project_id = {project_id:UInt32}) AND (e.ts < {p4:DateTime64(3, 'UTC')}) AND (ifNull(toFloat64OrNull(toString(e.properties.revenue)) > {p6:Float64}, 0))
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
        GROUP BY person
    )
)
GROUP BY
    label,
    is_total,
    p,
    kind
