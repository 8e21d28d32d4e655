-- cohort_size: {"cohort": "c_examplecohor"}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "2026-10-31T12:30:00Z"
--   p2 = "purchase"
--   p3 = "2026-10-01T12:30:00Z"
--   p4 = 1
--   p5 = "2026-10-26T00:00:00+01:00"
--   p6 = "purchase"
--   p7 = "2026-09-26T00:00:00+02:00"
--   p8 = 1
--   p9 = "2026-10-27T00:00:00+01:00"
--   p10 = "purchase"
--   p11 = "2026-09-27T00:00:00+02:00"
--   p12 = 1
--   p13 = "2026-10-28T00:00:00+01:00"
--   p14 = "purchase"
--   p15 = "2026-09-28T00:00:00+02:00"
--   p16 = 1
--   p17 = "2026-10-29T00:00:00+01:00"
--   p18 = "purchase"
--   p19 = "2026-09-29T00:00:00+02:00"
--   p20 = 1
--   p21 = "2026-10-30T00:00:00+01:00"
--   p22 = "purchase"
--   p23 = "2026-09-30T00:00:00+02:00"
--   p24 = 1
--   p25 = "2026-10-31T00:00:00+01:00"
--   p26 = "purchase"
--   p27 = "2026-10-01T00:00:00+02:00"
--   p28 = 1
--   p29 = "2026-10-31T12:30:00Z"
--   p30 = "purchase"
--   p31 = "2026-10-01T12:30:00Z"
--   p32 = 1

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
UNION ALL
SELECT
    4 AS bucket,
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
                countIf((e.event = {p22:String}) AND (e.ts >= {p23:DateTime64(3, 'UTC')}) AND (e.ts < {p21:DateTime64(3, 'UTC')})) AS c0
            FROM events AS e
            WHERE (e.project_id = {project_id:UInt32}) AND ((e.event = {p22:String}) AND (e.ts >= {p23:DateTime64(3, 'UTC')}) AND (e.ts < {p21:DateTime64(3, 'UTC')}))
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
    WHERE (c0 >= {p24:UInt64})
)
UNION ALL
SELECT
    5 AS bucket,
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
                countIf((e.event = {p26:String}) AND (e.ts >= {p27:DateTime64(3, 'UTC')}) AND (e.ts < {p25:DateTime64(3, 'UTC')})) AS c0
            FROM events AS e
            WHERE (e.project_id = {project_id:UInt32}) AND ((e.event = {p26:String}) AND (e.ts >= {p27:DateTime64(3, 'UTC')}) AND (e.ts < {p25:DateTime64(3, 'UTC')}))
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
    WHERE (c0 >= {p28:UInt64})
)
UNION ALL
SELECT
    6 AS bucket,
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
                countIf((e.event = {p30:String}) AND (e.ts >= {p31:DateTime64(3, 'UTC')}) AND (e.ts < {p29:DateTime64(3, 'UTC')})) AS c0
            FROM events AS e
            WHERE (e.project_id = {project_id:UInt32}) AND ((e.event = {p30:String}) AND (e.ts >= {p31:DateTime64(3, 'UTC')}) AND (e.ts < {p29:DateTime64(3, 'UTC')}))
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
    WHERE (c0 >= {p32:UInt64})
)
