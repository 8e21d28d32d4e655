-- conversion_paths: {"conversion": {"event": "signup"}, "by": "source", "limit": 5, "date_range": {"date_from": "-14d"}}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = 2592000000
--   p2 = "2026-10-17T22:00:00Z"
--   p3 = "signup"
--   p4 = ["cpc", "paid", "paid-search", "paid_search", "paidsearch", "ppc"]
--   p5 = ["baidu", "bing", "brave", "duckduckgo", "ecosia", "google", "kagi", "naver", "qwant", "seznam", "startpage", "yahoo", "yandex"]
--   p6 = ["cpc", "paid", "paid-search", "paid_search", "paidsearch", "ppc"]
--   p7 = ["search"]
--   p8 = ["paid social", "paid-social", "paid_social", "paidsocial"]
--   p9 = ["cpc", "cpm", "display", "paid", "paid-search", "paid_search", "paidsearch", "ppc"]
--   p10 = ["bsky", "facebook", "fb", "ig", "instagram", "linkedin", "mastodon", "meta", "pinterest", "reddit", "snapchat", "t.co", "threads", "tiktok", "twitter", "x", "youtube"]
--   p11 = ["e-mail", "e_mail", "email", "newsletter"]
--   p12 = ["e-mail", "e_mail", "email", "newsletter"]
--   p13 = ["email"]
--   p14 = ["organic"]
--   p15 = ["search"]
--   p16 = ["sm", "social", "social-media", "social-network", "social_media", "social_network"]
--   p17 = ["social"]
--   p18 = ["bsky", "facebook", "fb", "ig", "instagram", "linkedin", "mastodon", "meta", "pinterest", "reddit", "snapchat", "t.co", "threads", "tiktok", "twitter", "x", "youtube"]
--   p19 = ["referral"]
--   p20 = ["other"]
--   p21 = ["", "direct", "internal"]
--   p22 = "(direct)"
--   p23 = "2026-10-31T23:00:00Z"
--   p24 = 1800000
--   p25 = 7
--   p26 = 1

SELECT
    arrayMap(x -> (x.3), path) AS labels,
    converted,
    count() AS journeys,
    sum(toDecimal128(value, 18)) AS value,
    sumIf(at - ((path[1]).1), converted AND notEmpty(path)) AS milliseconds
FROM
(
    SELECT
        j.1 AS converted,
        j.2 AS at,
        j.3 AS value,
        if({p26:UInt8} AND arrayExists(x -> ((x.2) != {p25:UInt8}), j.4), arrayFilter(x -> ((x.2) != {p25:UInt8}), j.4), j.4) AS path
    FROM
    (
        SELECT
            arraySort(groupArray(ev)) AS evs,
            arrayMap(x -> toInt64(intDiv(x.1, 256)), evs) AS times,
            arrayMap(x -> (toInt64(intDiv(x.1, 256)), toUInt8((x.1) % 256), x.2), arrayFilter((x, t, previous) -> ((t - previous) > {p24:Int64}), evs, times, arrayPushFront(arrayPopBack(times), ((times[1]) - {p24:Int64}) - 1))) AS touches,
            groupArrayIf((t, value), converts) AS conversions,
            arrayMax(arrayPushFront(conversions.1, toInt64(0))) AS last_conversion,
            arrayPushBack(arrayMap(c -> (toUInt8(1), c.1, c.2, arrayFilter(x -> (((x.1) >= ((c.1) - {p1:Int64})) AND ((x.1) <= (c.1))), touches)), conversions), (toUInt8(0), toInt64(0), toFloat64(0), arrayFilter(x -> (((x.1) >= toUnixTimestamp64Milli({p2:DateTime64(3, 'UTC')})) AND ((x.1) > last_conversion)), touches))) AS found
        FROM
        (
            SELECT
                if(ids.person_key = 0, e.id_key, ids.person_key) AS person,
                ((toUInt64(toUnixTimestamp64Milli(e.ts)) * 256) + toUInt8(multiIf((lower(e.utm_medium) IN ({p4:Array(String)})) AND (lower(e.utm_source) IN ({p5:Array(String)})), 1, (lower(e.utm_medium) IN ({p6:Array(String)})) AND (e.referrer_class IN ({p7:Array(String)})), 1, (lower(e.utm_medium) IN ({p8:Array(String)})), 2, (lower(e.utm_medium) IN ({p9:Array(String)})) AND (lower(e.utm_source) IN ({p10:Array(String)})), 2, (lower(e.utm_medium) IN ({p11:Array(String)})), 3, (lower(e.utm_source) IN ({p12:Array(String)})), 3, (e.utm_medium = '') AND (e.referrer_class IN ({p13:Array(String)})), 3, (lower(e.utm_medium) IN ({p14:Array(String)})), 4, (e.utm_medium = '') AND (e.referrer_class IN ({p15:Array(String)})), 4, (lower(e.utm_medium) IN ({p16:Array(String)})), 5, (e.utm_medium = '') AND (e.referrer_class IN ({p17:Array(String)})), 5, (lower(e.utm_source) IN ({p18:Array(String)})) AND (e.utm_medium = ''), 5, (lower(e.utm_medium) IN ({p19:Array(String)})), 6, (e.utm_medium = '') AND (e.referrer_class IN ({p20:Array(String)})), 6, (e.utm_source = '') AND (e.utm_medium = '') AND (e.referrer_class IN ({p21:Array(String)})), 7, 8)), multiIf(e.utm_source != '', e.utm_source, e.referrer_domain != '', e.referrer_domain, {p22:String})) AS ev,
                toInt64(toUnixTimestamp64Milli(e.ts)) AS t,
                (e.event = {p3:String}) AND (e.ts >= {p2:DateTime64(3, 'UTC')}) AS converts,
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
            WHERE (e.project_id = {project_id:UInt32}) AND (e.ts >= ({p2:DateTime64(3, 'UTC')} - toIntervalMillisecond({p1:Int64}))) AND (e.ts < {p23:DateTime64(3, 'UTC')})
        )
        GROUP BY person
    )
    ARRAY JOIN found AS j
    WHERE converted OR notEmpty(j.4)
)
GROUP BY
    labels,
    converted
ORDER BY
    labels ASC,
    converted ASC
