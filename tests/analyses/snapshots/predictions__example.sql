-- predictions: {"bins": 5, "top": 10}
-- now 2026-10-31T12:30:00Z, project time zone Europe/Berlin
-- parameters:
--   project_id = <the project>
--   p1 = 10

WITH
    latest AS
    (
        SELECT *
        FROM person_predictions
        WHERE (project_id = {project_id:UInt32}) AND (run_id = (
            SELECT argMax(run_id, (scored_at, run_id))
            FROM person_predictions
            WHERE project_id = {project_id:UInt32}
        ))
    )
SELECT
    (
        SELECT any(run_id)
        FROM latest
    ),
    (
        SELECT any(scored_at)
        FROM latest
    ),
    (
        SELECT count()
        FROM latest
    ),
    (
        SELECT any(churn_version)
        FROM latest
    ),
    (
        SELECT any(ltv_version)
        FROM latest
    ),
    (
        SELECT max(ltv)
        FROM latest
    ),
    (
        SELECT arraySort(groupArray((b, n)))
        FROM
        (
            SELECT
                if((((1) - (0)) / 5) = 0, 0, least(toUInt32(floor((churn_probability - (0)) / (((1) - (0)) / 5))), 4)) AS b,
                count() AS n
            FROM latest
            WHERE churn_probability IS NOT NULL
            GROUP BY b
        )
    ),
    (
        SELECT arraySort(groupArray((b, n)))
        FROM
        (
            SELECT
                if((((
                    SELECT max(ltv)
                    FROM latest
                ) - (0)) / 5) = 0, 0, least(toUInt32(floor((ltv - (0)) / (((
                    SELECT max(ltv)
                    FROM latest
                ) - (0)) / 5))), 4)) AS b,
                count() AS n
            FROM latest
            WHERE ltv IS NOT NULL
            GROUP BY b
        )
    ),
    (
        SELECT arraySort(groupArray((b, n)))
        FROM
        (
            SELECT
                if((((100) - (0)) / 5) = 0, 0, least(toUInt32(floor((engagement - (0)) / (((100) - (0)) / 5))), 4)) AS b,
                count() AS n
            FROM latest
            WHERE engagement IS NOT NULL
            GROUP BY b
        )
    ),
    (
        SELECT groupArray((person_id, churn_probability, ltv, loss, engagement))
        FROM
        (
            SELECT
                person_id,
                assumeNotNull(churn_probability) AS churn_probability,
                assumeNotNull(ltv) AS ltv,
                churn_probability * ltv AS loss,
                engagement
            FROM latest
            WHERE (churn_probability IS NOT NULL) AND (ltv IS NOT NULL)
            ORDER BY
                loss DESC,
                person_id ASC
            LIMIT {p1:UInt32}
        )
    )
