-- experiment: {"experiment": {"key": "pricing-page", "variants": [{"key": "a", "weight": 2}, {"key": "b"}, {"key": "c"}], "start": "2026-10-20T08:00:00+02:00", "end": "2026-10-30T00:00:00Z", "exposure_event": "pricing_seen", "conversion_window": 36, "window_unit": "hour", "primary_metric": {"path": "/docs/*/setup", "measure": "count", "where": {"filters": [{"key": "plan", "source": "person", "value": "pro"}]}}, "targeting": {"filters": [{"key": "c_examplecohor", "source": "cohort", "op": "in"}]}}, "timezone": "America/New_York", "cuped": false, "correction": "bh"}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "pricing_seen"
--   p2 = "pricing-page"
--   p3 = "2026-10-20T06:00:00Z"
--   p4 = "2026-10-30T00:00:00Z"
--   p5 = "2026-10-31T12:30:00Z"
--   p6 = "purchase"
--   p7 = "2026-10-01T12:30:00Z"
--   p8 = 1
--   p9 = "page"
--   p10 = "^/docs/[^/]*/setup$"
--   p11 = ["pro"]
--   p12 = ["pricing_seen"]
--   p13 = "page"
--   p14 = "2026-10-18T18:00:00Z"
--   p15 = "2026-10-31T12:00:00Z"
--   p16 = 129600000
--   p17 = "America/New_York"

SELECT
    length(variants) > 1 AS mixed,
    if(mixed, '', variants[1]) AS variant,
    toUnixTimestamp(toStartOfDay(fromUnixTimestamp64Milli(first, 'UTC'), {p17:String})) AS day,
    count() AS n,
    sum(y0),
    sum(y0 * y0),
    sum(x0),
    sum(x0 * x0),
    sum(x0 * y0)
FROM
(
    SELECT
        first,
        variants,
        toFloat64(arrayCount(x -> (bitTest(x.2, 0) AND ((x.1) >= first) AND ((x.1) < (first + {p16:Int64}))), evs)) AS y0,
        toFloat64(arrayCount(x -> (bitTest(x.2, 0) AND ((x.1) >= (first - {p16:Int64})) AND ((x.1) < first)), evs)) AS x0
    FROM
    (
        SELECT
            person,
            minIf(ev.1, exposed) AS first,
            countIf(exposed) AS exposures,
            groupUniqArrayIf(variant, exposed) AS variants,
            groupArrayIf(ev, (ev.2) != 0) AS evs
        FROM
        (
            SELECT
                if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                (e.event = {p1:String}) AND (toString(e.properties.experiment) = {p2:String}) AND (e.ts >= {p3:DateTime64(3, 'UTC')}) AND (e.ts < {p4:DateTime64(3, 'UTC')}) AND (if(ids.person_key = 0, e.id_key, ids.person_key) IN (
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
                )) AS exposed,
                if(exposed, toString(e.properties.variant), '') AS variant,
                (toUnixTimestamp64Milli(e.ts), toUInt32(((e.type = {p9:String}) AND match(e.path, {p10:String}) AND (has({p11:Array(String)}, toString(pp.person_properties.plan)))) * 1)) AS ev
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
            WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p14:DateTime64(3, 'UTC')}) AND (e.ts < {p15:DateTime64(3, 'UTC')}) AND ((e.event IN ({p12:Array(String)})) OR (e.type = {p13:String})) AND (exposed OR ((e.type = {p9:String}) AND match(e.path, {p10:String}) AND (has({p11:Array(String)}, toString(pp.person_properties.plan)))))
        )
        GROUP BY person
        HAVING exposures > 0
    )
)
GROUP BY
    mixed,
    variant,
    day
ORDER BY
    mixed ASC,
    variant ASC,
    day ASC
