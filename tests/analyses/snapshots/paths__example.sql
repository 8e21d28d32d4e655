-- paths: {"start": "/", "step_type": "pages", "within": "window", "window": 2, "window_unit": "hour", "steps": 4, "nodes_per_step": 3, "cleaning": [{"pattern": "^/blog/.*", "replacement": "/blog/*"}], "exclude": ["/about"], "date_range": {"date_from": "-14d"}, "where": {"filters": [{"key": "country", "source": "column", "value": "US"}]}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = 0
--   p2 = 1213200000
--   p3 = "^/blog/.*"
--   p4 = "/blog/*"
--   p5 = "2026-10-17T22:00:00Z"
--   p6 = "2026-11-01T01:00:00Z"
--   p7 = "/"
--   p8 = ["/about"]
--   p9 = 1792274400000
--   p10 = ["US"]
--   p11 = 7200000
--   p12 = 1792274400000
--   p13 = 3
--   p14 = "$other"

WITH
    (
        SELECT arraySort(`all`)
        FROM
        (
            SELECT groupUniqArray(replaceRegexpAll(e.path, {p3:String}, {p4:String})) AS `all`
            FROM events AS e
            WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p5:DateTime64(3, 'UTC')}) AND (e.ts < {p6:DateTime64(3, 'UTC')}) AND (e.type = 'page')
        )
        WHERE throwIf(length(`all`) > 1048575, 'a path follows at most 1048575 distinct step names: add cleaning rules') = 0
    ) AS step_names
SELECT
    k,
    source,
    grouping(target) AS is_node,
    target,
    sum(value),
    sum(ended),
    sum(people)
FROM
(
    SELECT
        k,
        if(node_rank <= {p13:UInt32}, step_names[id], {p14:String}) AS source,
        next > 0 AS has_next,
        if(next = 0, '', if(has(kept, (k + 1, next)), step_names[next], {p14:String})) AS target,
        value,
        ended,
        people
    FROM
    (
        SELECT
            *,
            groupUniqArrayIf((k, id), node_rank <= {p13:UInt32}) OVER () AS kept
        FROM
        (
            SELECT
                *,
                dense_rank() OVER (PARTITION BY k ORDER BY node_value DESC, id ASC) AS node_rank
            FROM
            (
                SELECT
                    *,
                    sum(value) OVER (PARTITION BY k, id) AS node_value
                FROM
                (
                    SELECT
                        bitShiftRight(node, 40) AS k,
                        bitAnd(bitShiftRight(node, 20), 1048575) AS id,
                        bitAnd(node, 1048575) AS next,
                        value,
                        ended,
                        people
                    FROM
                    (
                        SELECT
                            bitShiftRight(n, 1) AS node,
                            count() AS value,
                            countIf(bitTest(n, 0)) AS ended,
                            count() AS people
                        FROM
                        (
                            SELECT
                                person,
                                arrayJoin(arrayMap(k -> (((bitShiftLeft(toUInt64(k - 1), 41) + bitShiftLeft(toUInt64(p[k]), 21)) + bitShiftLeft(toUInt64(if((k < 4) AND (k < length(p)), p[k + 1], 0)), 1)) + (length(p) = k)), range(1, least(length(p), 4) + 1))) AS n
                            FROM
                            (
                                SELECT
                                    person,
                                    person_name AS name,
                                    arrayMap(x -> toUInt32(bitAnd(x, 1048575)), arrayFilter(x -> ((bitShiftRight(x, 20) - bitShiftRight(o[a], 20)) <= {p11:Int64}), arraySlice(o, a, 5))) AS p,
                                    bitShiftRight(o[a], 20) + {p12:Int64} AS at
                                FROM
                                (
                                    SELECT
                                        person,
                                        person_name,
                                        s AS o,
                                        arrayFirstIndex(x -> ((bitAnd(x, 1048575) = indexOf(step_names, {p7:String})) AND (bitShiftRight(x, 20) >= {p1:Int64}) AND (bitShiftRight(x, 20) < {p2:Int64})), o) AS a
                                    FROM
                                    (
                                        SELECT
                                            person,
                                            person_name,
                                            arrayFilter((x, previous, i) -> ((i = 1) OR (bitAnd(x, 1048575) != bitAnd(previous, 1048575))), s, arrayShiftRight(s, 1), arrayEnumerate(s)) AS s
                                        FROM
                                        (
                                            SELECT
                                                person,
                                                person_name,
                                                keys AS s
                                            FROM
                                            (
                                                SELECT
                                                    person,
                                                    any(person_name) AS person_name,
                                                    arraySort(groupArray(key)) AS keys
                                                FROM
                                                (
                                                    SELECT
                                                        if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                                                        '' AS person_name,
                                                        bitShiftLeft(toUnixTimestamp64Milli(e.ts) - {p9:Int64}, 20) + transform(replaceRegexpAll(e.path, {p3:String}, {p4:String}), step_names, arrayEnumerate(step_names), 0) AS key
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
                                                    WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p5:DateTime64(3, 'UTC')}) AND (e.ts < {p6:DateTime64(3, 'UTC')}) AND (e.type = 'page') AND (has({p10:Array(String)}, e.country)) AND (NOT has({p8:Array(String)}, replaceRegexpAll(e.path, {p3:String}, {p4:String})))
                                                )
                                                GROUP BY person
                                                HAVING max((bitAnd(key, 1048575) = indexOf(step_names, {p7:String})) AND (bitShiftRight(key, 20) >= {p1:Int64}) AND (bitShiftRight(key, 20) < {p2:Int64}))
                                            )
                                        )
                                    )
                                )
                                WHERE a > 0
                            )
                        )
                        GROUP BY node
                    )
                )
            )
        )
    )
)
GROUP BY
    GROUPING SETS (
        (k, source),
        (k, source, has_next, target))
HAVING is_node OR has_next
