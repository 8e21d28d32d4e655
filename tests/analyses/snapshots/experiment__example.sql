-- experiment: {"experiment": {"key": "new-checkout", "variants": [{"key": "control"}, {"key": "treatment"}], "start": "2026-10-11T00:00:00Z", "end": "2026-10-31T00:00:00Z", "primary_metric": {"event": "purchase"}, "secondary_metrics": [{"event": "purchase", "measure": "sum", "value_property": "revenue"}], "targeting": {"filters": [{"key": "device_type", "source": "column", "op": "neq", "value": "bot"}]}}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "$experiment_exposure"
--   p2 = "new-checkout"
--   p3 = "2026-10-11T00:00:00Z"
--   p4 = "2026-10-31T00:00:00Z"
--   p5 = ["bot"]
--   p6 = "purchase"
--   p7 = "purchase"
--   p8 = ["$experiment_exposure", "purchase"]
--   p9 = "2026-09-27T00:00:00Z"
--   p10 = "2026-10-31T12:30:00Z"
--   p11 = 1209600000
--   p12 = "Europe/Berlin"

SELECT
    length(variants) > 1 AS mixed,
    if(mixed, '', variants[1]) AS variant,
    toUnixTimestamp(toStartOfDay(fromUnixTimestamp64Milli(first, 'UTC'), {p12:String})) AS day,
    count() AS n,
    sum(y0),
    sum(y0 * y0),
    sum(x0),
    sum(x0 * x0),
    sum(x0 * y0),
    sum(y1),
    sum(y1 * y1),
    sum(x1),
    sum(x1 * x1),
    sum(x1 * y1)
FROM
(
    SELECT
        first,
        variants,
        toFloat64(arrayExists(x -> (bitTest(x.2, 0) AND ((x.1) >= first) AND ((x.1) < (first + {p11:Int64}))), evs)) AS y0,
        toFloat64(arrayExists(x -> (bitTest(x.2, 0) AND ((x.1) >= (first - {p11:Int64})) AND ((x.1) < first)), evs)) AS x0,
        arraySum(x -> if(bitTest(x.2, 1) AND ((x.1) >= first) AND ((x.1) < (first + {p11:Int64})), x.3, 0), evs) AS y1,
        arraySum(x -> if(bitTest(x.2, 1) AND ((x.1) >= (first - {p11:Int64})) AND ((x.1) < first), x.3, 0), evs) AS x1
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
                (e.event = {p1:String}) AND (toString(e.properties.experiment) = {p2:String}) AND (e.ts >= {p3:DateTime64(3, 'UTC')}) AND (e.ts < {p4:DateTime64(3, 'UTC')}) AND (NOT has({p5:Array(String)}, e.device_type)) AS exposed,
                if(exposed, toString(e.properties.variant), '') AS variant,
                (toUnixTimestamp64Milli(e.ts), toUInt32(((e.event = {p6:String}) * 1) + ((e.event = {p7:String}) * 2)), ifNull(toFloat64OrNull(toString(e.properties.revenue)), 0)) AS ev
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
            WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p9:DateTime64(3, 'UTC')}) AND (e.ts < {p10:DateTime64(3, 'UTC')}) AND (e.event IN ({p8:Array(String)})) AND (exposed OR (e.event = {p6:String}) OR (e.event = {p7:String}))
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
