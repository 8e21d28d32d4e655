-- persons: {"q": "example.com", "sort": "revenue", "limit": 20, "where": {"filters": [{"key": "plan", "source": "person", "op": "is_set"}]}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = "example.com"
--   p2 = 21

SELECT
    y.person,
    y.first_seen,
    y.last_seen,
    y.events,
    y.revenue
FROM
(
    SELECT
        x.*,
        tuple((pp.person_properties.plan IS NOT NULL), toJSONString(pp.person_properties)) AS bd
    FROM
    (
        SELECT
            if(ids.person_key = 0, x.id_key, ids.person_key) AS person,
            any(if(ids.person_id = '', x.distinct_id, ids.person_id)) AS name,
            groupArray(x.distinct_id) AS distinct_ids,
            min(x.first_seen) AS first_seen,
            max(x.last_seen) AS last_seen,
            sum(x.events) AS events,
            sum(x.revenue) AS revenue
        FROM
        (
            SELECT
                e.id_key AS id_key,
                any(e.distinct_id) AS distinct_id,
                min(e.ts) AS first_seen,
                max(e.ts) AS last_seen,
                count() AS events,
                sum(ifNull(toDecimal128OrNull(toString(e.properties.revenue), 9), 0)) AS revenue
            FROM events AS e
            WHERE e.project_id = {project_id:UInt32}
            GROUP BY e.id_key
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
) AS y
WHERE (y.bd.1) AND ((positionCaseInsensitiveUTF8(y.name, {p1:String}) > 0) OR arrayExists(d -> (positionCaseInsensitiveUTF8(d, {p1:String}) > 0), y.distinct_ids) OR arrayExists(kv -> (positionCaseInsensitiveUTF8(if(JSONExtractString(kv.2) = '', kv.2, JSONExtractString(kv.2)), {p1:String}) > 0), JSONExtractKeysAndValuesRaw(y.bd.2)))
ORDER BY
    y.revenue DESC,
    y.person ASC
LIMIT {p2:UInt32}
