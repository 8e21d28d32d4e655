-- stickiness: {"event": "page_view", "period": "week", "date_range": {"date_from": "this_month"}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "page_view"
--   p2 = "Europe/Berlin"
--   p3 = "2026-09-30T22:00:00Z"
--   p4 = "2026-10-31T23:00:00Z"

SELECT
    label,
    is_total,
    days,
    count()
FROM
(
    SELECT
        person,
        '' AS label,
        1 AS is_total,
        length(groupUniqArrayArray(active)) AS days
    FROM
    (
        SELECT
            if(ids.person_key = 0, x.id_key, ids.person_key) AS person,
            x.bd AS bd,
            groupUniqArrayArray(active) AS active
        FROM
        (
            SELECT
                e.id_key AS id_key,
                '' AS bd,
                groupUniqArray(toMonday(e.ts, {p2:String})) AS active
            FROM events AS e
            WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p3:DateTime64(3, 'UTC')}) AND (e.ts < {p4:DateTime64(3, 'UTC')}) AND (e.event = {p1:String})
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
GROUP BY
    label,
    is_total,
    days
