-- cohort_size: {"cohort": "c_examplecohor", "interval": "week", "date_range": {"date_from": "-4w"}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "2026-10-31T12:30:00Z"
--   p2 = "purchase"
--   p3 = "2026-10-01T12:30:00Z"
--   p4 = 1
--   p5 = "2026-10-12T00:00:00+02:00"
--   p6 = "purchase"
--   p7 = "2026-09-12T00:00:00+02:00"
--   p8 = 1
--   p9 = "2026-10-19T00:00:00+02:00"
--   p10 = "purchase"
--   p11 = "2026-09-19T00:00:00+02:00"
--   p12 = 1
--   p13 = "2026-10-26T00:00:00+01:00"
--   p14 = "purchase"
--   p15 = "2026-09-26T00:00:00+02:00"
--   p16 = 1
--   p17 = "2026-10-31T12:30:00Z"
--   p18 = "purchase"
--   p19 = "2026-10-01T12:30:00Z"
--   p20 = 1

SELECT
    -1 AS bucket,
    count() AS persons
FROM
(
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
                countIf((e.event = {p2:String}) AND (e.ts >= {p3:DateTime64(3, 'UTC')}) AND (e.ts < {p1:DateTime64(3, 'UTC')})) AS c0
            FROM events AS e
            WHERE (e.project_id = {project_id:UInt32}) AND ((e.event = {p2:String}) AND (e.ts >= {p3:DateTime64(3, 'UTC')}) AND (e.ts < {p1:DateTime64(3, 'UTC')}))
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
    WHERE (c0 >= {p4:UInt64})
)
UNION ALL
SELECT
    0 AS bucket,
    count() AS persons
FROM
(
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
                countIf((e.event = {p6:String}) AND (e.ts >= {p7:DateTime64(3, 'UTC')}) AND (e.ts < {p5:DateTime64(3, 'UTC')})) AS c0
            FROM events AS e
            WHERE (e.project_id = {project_id:UInt32}) AND ((e.event = {p6:String}) AND (e.ts >= {p7:DateTime64(3, 'UTC')}) AND (e.ts < {p5:DateTime64(3, 'UTC')}))
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
    WHERE (c0 >= {p8:UInt64})
)
UNION ALL
SELECT
    1 AS bucket,
    count() AS persons
FROM
(
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
                countIf((e.event = {p10:String}) AND (e.ts >= {p11:DateTime64(3, 'UTC')}) AND (e.ts < {p9:DateTime64(3, 'UTC')})) AS c0
            FROM events AS e
            WHERE (e.project_id = {project_id:UInt32}) AND ((e.event = {p10:String}) AND (e.ts >= {p11:DateTime64(3, 'UTC')}) AND (e.ts < {p9:DateTime64(3, 'UTC')}))
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
    WHERE (c0 >= {p12:UInt64})
)
UNION ALL
SELECT
    2 AS bucket,
    count() AS persons
FROM
(
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
)
UNION ALL
SELECT
    3 AS bucket,
    count() AS persons
FROM
(
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
                countIf((e.event = {p18:String}) AND (e.ts >= {p19:DateTime64(3, 'UTC')}) AND (e.ts < {p17:DateTime64(3, 'UTC')})) AS c0
            FROM events AS e
            WHERE (e.project_id = {project_id:UInt32}) AND ((e.event = {p18:String}) AND (e.ts >= {p19:DateTime64(3, 'UTC')}) AND (e.ts < {p17:DateTime64(3, 'UTC')}))
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
    WHERE (c0 >= {p20:UInt64})
)
