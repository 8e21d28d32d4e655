-- sessions: {"breakdown": {"key": "utm_source", "source": "column"}, "gap_minutes": 20, "where": {"match": "any", "filters": [{"key": "country", "source": "column", "value": "US"}, {"key": "plan", "source": "person", "op": "is_set"}]}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = 1200000
--   p2 = ["US"]
--   p3 = "2026-10-24T22:00:00Z"
--   p4 = "2026-10-31T23:00:00Z"
--   p5 = "Europe/Berlin"
--   p6 = 10
--   p7 = "$other"

SELECT
    label,
    bucket,
    grouping(bucket) AS is_total,
    countMerge(n),
    avgMerge(d),
    quantileExactInclusiveMerge(0.5)(md),
    avgMerge(pages),
    avgMerge(bounced),
    mapFromArrays((sumMapMerge(entries)).1, (sumMapMerge(entries)).2),
    mapFromArrays((sumMapMerge(exits)).1, (sumMapMerge(exits)).2)
FROM
(
    SELECT
        *,
        if((bd_weight > 0) AND (bd_rank <= {p6:UInt32}), bd, {p7:String}) AS label
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
                    session.7 AS bd,
                    toUnixTimestamp(toStartOfDay(fromUnixTimestamp64Milli(session.1, 'UTC'), {p5:String})) AS bucket,
                    count() AS weight,
                    countState() AS n,
                    avgState((session.2) / 1000) AS d,
                    quantileExactInclusiveState(0.5)((session.2) / 1000) AS md,
                    avgState(session.4) AS pages,
                    avgState(((session.3) = 1) AND ((session.4) = 1)) AS bounced,
                    sumMapState([session.5], [toUInt64((session.5) != '')]) AS entries,
                    sumMapState([session.6], [toUInt64((session.6) != '')]) AS exits
                FROM
                (
                    SELECT arrayJoin(arrayMap(s -> ((s[1]).1, ((s[-1]).1) - ((s[1]).1), length(s), arrayCount(x -> (x.2), s), (arrayFirst(x -> (x.2), s)).3, (arrayLast(x -> (x.2), s)).3, (s[1]).4, (s[1]).5), arraySplit((x, new) -> new, evs, arrayMap((t, p) -> ((t - p) > {p1:Int64}), evs.1, arrayPushFront(arrayPopBack(evs.1), (evs.1)[1]))))) AS session
                    FROM
                    (
                        SELECT
                            person,
                            arraySort(groupArray(ev)) AS evs
                        FROM
                        (
                            SELECT
                                if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                                (toUnixTimestamp64Milli(e.ts), e.type IN ('page', 'screen'), if((e.type IN ('page', 'screen')), e.path, ''), e.utm_source, (has({p2:Array(String)}, e.country) OR (pp.person_properties.plan IS NOT NULL))) AS ev
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
                            WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p3:DateTime64(3, 'UTC')}) AND (e.ts < {p4:DateTime64(3, 'UTC')})
                        )
                        GROUP BY person
                    )
                )
                WHERE session.8
                GROUP BY
                    bd,
                    bucket
            )
        )
    )
)
GROUP BY
    GROUPING SETS (
        (label, bucket),
        (label))
