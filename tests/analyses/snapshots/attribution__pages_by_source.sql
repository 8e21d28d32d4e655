-- attribution: {"conversion": {"path": "/pricing", "where": {"filters": [{"key": "plan", "source": "person", "value": "pro"}]}}, "by": "source", "position_first": 0.3, "position_last": 0.5, "lookback_days": 7, "gap_minutes": 10}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = 604800000
--   p2 = "2026-10-24T22:00:00Z"
--   p3 = "page"
--   p4 = "/pricing"
--   p5 = ["pro"]
--   p6 = ["cpc", "paid", "paid-search", "paid_search", "paidsearch", "ppc"]
--   p7 = ["baidu", "bing", "brave", "duckduckgo", "ecosia", "google", "kagi", "naver", "qwant", "seznam", "startpage", "yahoo", "yandex"]
--   p8 = ["cpc", "paid", "paid-search", "paid_search", "paidsearch", "ppc"]
--   p9 = ["search"]
--   p10 = ["paid social", "paid-social", "paid_social", "paidsocial"]
--   p11 = ["cpc", "cpm", "display", "paid", "paid-search", "paid_search", "paidsearch", "ppc"]
--   p12 = ["bsky", "facebook", "fb", "ig", "instagram", "linkedin", "mastodon", "meta", "pinterest", "reddit", "snapchat", "t.co", "threads", "tiktok", "twitter", "x", "youtube"]
--   p13 = ["e-mail", "e_mail", "email", "newsletter"]
--   p14 = ["e-mail", "e_mail", "email", "newsletter"]
--   p15 = ["email"]
--   p16 = ["organic"]
--   p17 = ["search"]
--   p18 = ["sm", "social", "social-media", "social-network", "social_media", "social_network"]
--   p19 = ["social"]
--   p20 = ["bsky", "facebook", "fb", "ig", "instagram", "linkedin", "mastodon", "meta", "pinterest", "reddit", "snapchat", "t.co", "threads", "tiktok", "twitter", "x", "youtube"]
--   p21 = ["referral"]
--   p22 = ["other"]
--   p23 = ["", "direct", "internal"]
--   p24 = "(direct)"
--   p25 = "2026-10-31T23:00:00Z"
--   p26 = 600000
--   p27 = 7
--   p28 = 1
--   p29 = 604800000.0
--   p30 = 0.37499999999999994
--   p31 = 0.625
--   p32 = 0.3
--   p33 = 0.5
--   p34 = 0.19999999999999996

SELECT
    is_touch,
    label,
    route,
    converted,
    count() AS journeys,
    sum(toDecimal128(value, 18)) AS amount,
    arrayConcat(sumForEach(arrayMap(c -> toDecimal128(c, 18), credits)), sumForEach(arrayMap(c -> toDecimal128(c * value, 18), credits))) AS sums
FROM
(
    SELECT
        converted,
        value,
        arrayJoin(arrayPushFront(arrayMap(t -> (toUInt8(1), t.1, t.2), if(converted, arrayMap((i, x, w) -> (x.3, [toFloat64(i = 1), toFloat64(i = n), 1 / n, w / decay_sum, multiIf(n = 1, 1., n = 2, if(i = 1, {p30:Float64}, {p31:Float64}), i = 1, {p32:Float64}, i = n, {p33:Float64}, {p34:Float64} / (n - 2))]), arrayEnumerate(path), path, decay), [])), (toUInt8(0), '', arrayWithConstant(5, 0.)))) AS touch,
        (touch.1) = 1 AS is_touch,
        touch.2 AS label,
        if(is_touch, [], labels) AS route,
        touch.3 AS credits
    FROM
    (
        SELECT
            converted,
            value,
            path,
            length(path) AS n,
            arrayMap(x -> (x.3), path) AS labels,
            if(converted, arrayMap(x -> exp2(((x.1) - at) / {p29:Float64}), path), arrayWithConstant(n, 0.)) AS decay,
            arraySum(decay) AS decay_sum
        FROM
        (
            SELECT
                j.1 AS converted,
                j.2 AS at,
                j.3 AS value,
                if({p28:UInt8} AND arrayExists(x -> ((x.2) != {p27:UInt8}), j.4), arrayFilter(x -> ((x.2) != {p27:UInt8}), j.4), j.4) AS path
            FROM
            (
                SELECT
                    arraySort(groupArray(ev)) AS evs,
                    arrayMap(x -> toInt64(intDiv(x.1, 256)), evs) AS times,
                    arrayMap(x -> (toInt64(intDiv(x.1, 256)), toUInt8((x.1) % 256), x.2), arrayFilter((x, t, previous) -> ((t - previous) > {p26:Int64}), evs, times, arrayPushFront(arrayPopBack(times), ((times[1]) - {p26:Int64}) - 1))) AS touches,
                    groupArrayIf((t, value), converts) AS conversions,
                    arrayMax(arrayPushFront(conversions.1, toInt64(0))) AS last_conversion,
                    arrayPushBack(arrayMap(c -> (toUInt8(1), c.1, c.2, arrayFilter(x -> (((x.1) >= ((c.1) - {p1:Int64})) AND ((x.1) <= (c.1))), touches)), conversions), (toUInt8(0), toInt64(0), toFloat64(0), arrayFilter(x -> (((x.1) >= toUnixTimestamp64Milli({p2:DateTime64(3, 'UTC')})) AND ((x.1) > last_conversion)), touches))) AS found
                FROM
                (
                    SELECT
                        if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                        ((toUInt64(toUnixTimestamp64Milli(e.ts)) * 256) + toUInt8(multiIf((lower(e.utm_medium) IN ({p6:Array(String)})) AND (lower(e.utm_source) IN ({p7:Array(String)})), 1, (lower(e.utm_medium) IN ({p8:Array(String)})) AND (e.referrer_class IN ({p9:Array(String)})), 1, (lower(e.utm_medium) IN ({p10:Array(String)})), 2, (lower(e.utm_medium) IN ({p11:Array(String)})) AND (lower(e.utm_source) IN ({p12:Array(String)})), 2, (lower(e.utm_medium) IN ({p13:Array(String)})), 3, (lower(e.utm_source) IN ({p14:Array(String)})), 3, (e.utm_medium = '') AND (e.referrer_class IN ({p15:Array(String)})), 3, (lower(e.utm_medium) IN ({p16:Array(String)})), 4, (e.utm_medium = '') AND (e.referrer_class IN ({p17:Array(String)})), 4, (lower(e.utm_medium) IN ({p18:Array(String)})), 5, (e.utm_medium = '') AND (e.referrer_class IN ({p19:Array(String)})), 5, (lower(e.utm_source) IN ({p20:Array(String)})) AND (e.utm_medium = ''), 5, (lower(e.utm_medium) IN ({p21:Array(String)})), 6, (e.utm_medium = '') AND (e.referrer_class IN ({p22:Array(String)})), 6, (e.utm_source = '') AND (e.utm_medium = '') AND (e.referrer_class IN ({p23:Array(String)})), 7, 8)), multiIf(e.utm_source != '', e.utm_source, e.referrer_domain != '', e.referrer_domain, {p24:String})) AS ev,
                        toInt64(toUnixTimestamp64Milli(e.ts)) AS t,
                        ((e.type = {p3:String}) AND (e.path = {p4:String}) AND (has({p5:Array(String)}, toString(pp.person_properties.plan)))) AND (e.ts >= {p2:DateTime64(3, 'UTC')}) AS converts,
                        if(converts, toFloat64(toDecimal128(0, 9)), 0) AS value
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
                    WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= ({p2:DateTime64(3, 'UTC')} - toIntervalMillisecond({p1:Int64}))) AND (e.ts < {p25:DateTime64(3, 'UTC')})
                )
                GROUP BY person
            )
            ARRAY JOIN found AS j
            WHERE converted OR notEmpty(j.4)
        )
    )
)
GROUP BY
    is_touch,
    label,
    route,
    converted
ORDER BY
    is_touch ASC,
    label ASC,
    route ASC,
    converted ASC
