-- paths: {}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = 0
--   p2 = 608400000
--   p3 = "2026-10-24T22:00:00Z"
--   p4 = "2026-10-31T23:00:00Z"
--   p5 = 1792879200000
--   p6 = 1800000
--   p7 = 1792879200000
--   p8 = 10
--   p9 = "$other"

WITH
    (
        SELECT arraySort(`all`)
        FROM
        (
            SELECT groupUniqArray(if(e.type = 'page', e.path, toString(e.event))) AS `all`
            FROM events AS e
            WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p3:DateTime64(3, 'UTC')}) AND (e.ts < {p4:DateTime64(3, 'UTC')}) AND (e.type IN ('track', 'page', 'screen'))
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
    uniqExactMerge(people)
FROM
(
    SELECT
        k,
        if(node_rank <= {p8:UInt32}, step_names[id], {p9:String}) AS source,
        next > 0 AS has_next,
        if(next = 0, '', if(has(kept, (k + 1, next)), step_names[next], {p9:String})) AS target,
        value,
        ended,
        people
    FROM
    (
        SELECT
            *,
            groupUniqArrayIf((k, id), node_rank <= {p8:UInt32}) OVER () AS kept
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
                            uniqExactState(person) AS people
                        FROM
                        (
                            SELECT
                                person,
                                arrayJoin(arrayMap(k -> (((bitShiftLeft(toUInt64(k - 1), 41) + bitShiftLeft(toUInt64(p[k]), 21)) + bitShiftLeft(toUInt64(if((k < 5) AND (k < length(p)), p[k + 1], 0)), 1)) + (length(p) = k)), range(1, least(length(p), 5) + 1))) AS n
                            FROM
                            (
                                SELECT
                                    person,
                                    person_name AS name,
                                    arrayMap(x -> toUInt32(bitAnd(x, 1048575)), arraySlice(o, a, 6)) AS p,
                                    bitShiftRight(o[a], 20) + {p7:Int64} AS at
                                FROM
                                (
                                    SELECT
                                        person,
                                        person_name,
                                        s AS o,
                                        arrayFirstIndex(x -> ((bitShiftRight(x, 20) >= {p1:Int64}) AND (bitShiftRight(x, 20) < {p2:Int64})), o) AS a
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
                                                arrayJoin(arraySplit((x, new) -> new, keys, arrayMap((x, previous) -> ((bitShiftRight(x, 20) - bitShiftRight(previous, 20)) > {p6:Int64}), keys, arrayShiftRight(keys, 1, keys[1])))) AS s
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
                                                        bitShiftLeft(toUnixTimestamp64Milli(e.ts) - {p5:Int64}, 20) + transform(if(e.type = 'page', e.path, toString(e.event)), step_names, arrayEnumerate(step_names), 0) AS key
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
                                                    WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= {p3:DateTime64(3, 'UTC')}) AND (e.ts < {p4:DateTime64(3, 'UTC')}) AND (e.type IN ('track', 'page', 'screen'))
                                                )
                                                GROUP BY person
                                                HAVING max((bitShiftRight(key, 20) >= {p1:Int64}) AND (bitShiftRight(key, 20) < {p2:Int64}))
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
