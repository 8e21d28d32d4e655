-- overview: {"interval": "hour", "date_range": {"date_from": "yesterday"}, "top": 5, "where": {"filters": [{"key": "plan", "source": "person", "value": "pro"}]}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "2026-10-29T23:00:00Z"
--   p2 = "Europe/Berlin"
--   p3 = ["pro"]
--   p4 = "2026-10-30T23:00:00Z"
--   p5 = "2026-10-28T23:00:00Z"
--   p6 = 5
--   p7 = "internal"
--   p8 = 1800000

SELECT
    0 AS part,
    current,
    bucket,
    grouping(bucket) AS is_total,
    '' AS value,
    count() AS count,
    uniqExact(person) AS persons,
    toFloat64(sum(amount)) AS amount,
    0 AS duration,
    0 AS bounces
FROM
(
    SELECT
        e.ts >= {p1:DateTime64(3, 'UTC')} AS current,
        if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
        toUnixTimestamp(toStartOfHour(e.ts, {p2:String})) AS bucket,
        ifNull(toDecimal128OrNull(toString(e.properties.revenue), 9), 0) AS amount
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
    WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p5:DateTime64(3, 'UTC')}) AND (e.ts < {p4:DateTime64(3, 'UTC')}) AND (has({p3:Array(String)}, toString(pp.person_properties.plan)))
)
GROUP BY
    GROUPING SETS (
        (current, bucket),
        (current))
UNION ALL
SELECT
    part,
    1 AS current,
    0 AS bucket,
    1 AS is_total,
    assumeNotNull(value) AS value,
    count,
    persons,
    0 AS amount,
    0 AS duration,
    0 AS bounces
FROM
(
    SELECT
        multiIf(grouping(d0) = 0, 10, grouping(d1) = 0, 11, grouping(d3) = 0, 13, grouping(d4) = 0, 14, grouping(d5) = 0, 15, grouping(d6) = 0, 16, grouping(d7) = 0, 17, 0) AS part,
        multiIf(grouping(d0) = 0, d0, grouping(d1) = 0, d1, grouping(d3) = 0, d3, grouping(d4) = 0, d4, grouping(d5) = 0, d5, grouping(d6) = 0, d6, grouping(d7) = 0, d7, NULL) AS value,
        count() AS count,
        uniqExact(person) AS persons
    FROM
    (
        SELECT
            e.ts >= {p1:DateTime64(3, 'UTC')} AS current,
            if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
            toString(e.event) AS d0,
            nullIf(e.path, '') AS d1,
            if(e.referrer_class = {p7:String}, NULL, e.referrer_domain) AS d3,
            toString(e.country) AS d4,
            toString(e.browser) AS d5,
            toString(e.os) AS d6,
            toString(e.device_type) AS d7
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
        WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p1:DateTime64(3, 'UTC')}) AND (e.ts < {p4:DateTime64(3, 'UTC')}) AND (has({p3:Array(String)}, toString(pp.person_properties.plan)))
    )
    GROUP BY
        GROUPING SETS (
            (d0),
            (d1),
            (d3),
            (d4),
            (d5),
            (d6),
            (d7))
    HAVING value IS NOT NULL
)
ORDER BY
    part ASC,
    persons DESC,
    value ASC
LIMIT {p6:UInt32} BY part
UNION ALL
SELECT
    part,
    current,
    bucket,
    is_total,
    value,
    sum(sessions) AS count,
    count() AS persons,
    0 AS amount,
    sum(milliseconds) AS duration,
    sum(bounced) AS bounces
FROM
(
    SELECT
        if(grouping(value) = 0, 12, 1) AS part,
        current,
        bucket,
        grouping(bucket) AS is_total,
        value,
        count() AS sessions,
        sum(duration) AS milliseconds,
        countIf(bounce) AS bounced
    FROM
    (
        SELECT
            current,
            person,
            toUnixTimestamp(toStartOfHour(fromUnixTimestamp64Milli(session.1, 'UTC'), {p2:String})) AS bucket,
            session.5 AS value,
            session.2 AS duration,
            ((session.3) = 1) AND ((session.4) = 1) AS bounce
        FROM
        (
            SELECT
                current,
                person,
                arrayJoin(arrayMap(s -> ((s[1]).1, ((s[-1]).1) - ((s[1]).1), length(s), arrayCount(x -> (x.2), s), (arrayFirst(x -> (x.2), s)).3, (s[1]).4), arraySplit((x, new) -> new, evs, arrayMap((t, p) -> ((t - p) > {p8:Int64}), evs.1, arrayPushFront(arrayPopBack(evs.1), (evs.1)[1]))))) AS session
            FROM
            (
                SELECT
                    current,
                    person,
                    arraySort(groupArray(ev)) AS evs
                FROM
                (
                    SELECT
                        e.ts >= {p1:DateTime64(3, 'UTC')} AS current,
                        if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                        (toUnixTimestamp64Milli(e.ts), e.type IN ('page', 'screen'), if((e.type IN ('page', 'screen')), e.path, ''), (has({p3:Array(String)}, toString(pp.person_properties.plan)))) AS ev
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
                    WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p5:DateTime64(3, 'UTC')}) AND (e.ts < {p4:DateTime64(3, 'UTC')})
                )
                GROUP BY
                    current,
                    person
            )
        )
        WHERE session.6
    )
    GROUP BY
        GROUPING SETS (
            (current, bucket),
            (current),
            (current, value, person))
    HAVING (part = 1) OR (current AND (value != ''))
)
GROUP BY
    part,
    current,
    bucket,
    is_total,
    value
ORDER BY
    part ASC,
    persons DESC,
    value ASC
LIMIT {p6:UInt32} BY
    part,
    current,
    is_total,
    bucket
