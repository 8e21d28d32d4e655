-- stickiness: {"event": "purchase", "period": "week", "date_range": {"date_from": "-6w"}, "breakdown": {"key": "plan", "source": "person", "limit": 2}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "purchase"
--   p2 = "Europe/Berlin"
--   p3 = "2026-09-20T22:00:00Z"
--   p4 = "2026-11-01T23:00:00Z"
--   p5 = 2
--   p6 = "$other"

SELECT
    label,
    is_total,
    days,
    count()
FROM
(
    SELECT
        person,
        label,
        grouping(label) AS is_total,
        length(groupUniqArrayArray(active)) AS days
    FROM
    (
        SELECT
            *,
            if((bd_weight > 0) AND (bd_rank <= {p5:UInt32}), bd, {p6:String}) AS label
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
                            x.*,
                            toString(pp.person_properties.plan) AS bd
                        FROM
                        (
                            SELECT
                                if(ids.person_key = 0, x.id_key, ids.person_key) AS person,
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
        )
    )
    GROUP BY
        GROUPING SETS (
            (person, label),
            (person))
)
GROUP BY
    label,
    is_total,
    days
