-- experiment: {"experiment": {"key": "x", "variants": [{"key": "a"}, {"key": "b"}], "start": "2026-10-01T00:00:00Z", "primary_metric": {"event": "purchase"}}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "$experiment_exposure"
--   p2 = "x"
--   p3 = "2026-10-01T00:00:00Z"
--   p4 = "2026-10-31T12:30:00Z"
--   p5 = "purchase"
--   p6 = ["$experiment_exposure", "purchase"]
--   p7 = "2026-09-17T00:00:00Z"
--   p8 = "2026-10-31T12:30:00Z"
--   p9 = 1209600000
--   p10 = "Europe/Berlin"

SELECT
    length(variants) > 1 AS mixed,
    if(mixed, '', variants[1]) AS variant,
    toUnixTimestamp(toStartOfDay(fromUnixTimestamp64Milli(first, 'UTC'), {p10:String})) AS day,
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
        toFloat64(arrayExists(x -> (bitTest(x.2, 0) AND ((x.1) >= first) AND ((x.1) < (first + {p9:Int64}))), evs)) AS y0,
        toFloat64(arrayExists(x -> (bitTest(x.2, 0) AND ((x.1) >= (first - {p9:Int64})) AND ((x.1) < first)), evs)) AS x0
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
                (e.event = {p1:String}) AND (toString(e.properties.experiment) = {p2:String}) AND (e.ts >= {p3:DateTime64(3, 'UTC')}) AND (e.ts < {p4:DateTime64(3, 'UTC')}) AS exposed,
                if(exposed, toString(e.properties.variant), '') AS variant,
                (toUnixTimestamp64Milli(e.ts), toUInt32((e.event = {p5:String}) * 1)) AS ev
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
            WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p7:DateTime64(3, 'UTC')}) AND (e.ts < {p8:DateTime64(3, 'UTC')}) AND (e.event IN ({p6:Array(String)})) AND (exposed OR (e.event = {p5:String}))
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
