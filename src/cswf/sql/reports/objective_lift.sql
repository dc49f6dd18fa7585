-- Per workflow with a holdout: the objective's met rate of the treatment group against the
-- control group, and the difference (the lift) with its 95% confidence interval.
-- Both groups are judged alike: an enrollment counts once its window (holdout.window_days from
-- entry) has closed, and it met the objective if {{ ref('objective_outcomes') }} has it met
-- within that window (inside, or after leaving). Enrollments whose window is still open are
-- `pending`; manual deploys (no cohort) are left out.
-- The interval is Newcombe's hybrid score interval for a difference of two independent
-- proportions (Newcombe 1998, method 10): each rate's Wilson score interval, combined. It stays
-- inside [-1, 1] and behaves with small groups and rates near 0 or 1, where Wald's does not.
{% from "macros/latest_spec.sql" import latest_spec %}
WITH params AS (
    SELECT 1.959963984540054 AS z  -- the normal quantile of 97.5%: a two-sided 95% interval
),
holdout AS (  -- the workflow's latest spec version, when it has a holdout and an objective
    SELECT workflow, category,
           CAST(spec_json ->> '$.holdout.percent' AS DOUBLE)                  AS holdout_percent,
           coalesce(CAST(spec_json ->> '$.holdout.window_days' AS INTEGER), 30) AS window_days
    FROM ({{ latest_spec() }})
    WHERE has_objective AND (spec_json ->> '$.holdout.percent') IS NOT NULL
),
judged AS (
    SELECT
        o.workflow,
        e.cohort,
        o.entered_at + to_days(h.window_days) <= o.as_of                     AS window_closed,
        coalesce(o.met_at <= o.entered_at + to_days(h.window_days), false)    AS met
    FROM {{ ref('objective_outcomes') }} AS o
    JOIN {{ source('cswf', 'enrollments') }} AS e USING (enrollment_id)
    JOIN holdout AS h ON h.workflow = o.workflow
    WHERE e.cohort IN ('treatment', 'control')
),
counted AS (
    SELECT
        workflow,
        count(*) FILTER (cohort = 'treatment' AND window_closed)               AS treated,
        count(*) FILTER (cohort = 'treatment' AND window_closed AND met)       AS treated_met,
        count(*) FILTER (cohort = 'control' AND window_closed)                 AS control,
        count(*) FILTER (cohort = 'control' AND window_closed AND met)         AS control_met,
        count(*) FILTER (NOT window_closed)                                    AS pending
    FROM judged
    GROUP BY workflow
),
rates AS (
    SELECT
        h.*,
        coalesce(c.treated, 0)                                 AS treated,
        coalesce(c.treated_met, 0)                             AS treated_met,
        coalesce(c.control, 0)                                 AS control,
        coalesce(c.control_met, 0)                             AS control_met,
        coalesce(c.pending, 0)                                 AS pending,
        c.treated_met / nullif(c.treated, 0)                   AS p1,
        c.control_met / nullif(c.control, 0)                   AS p2,
        p.z
    FROM holdout AS h
    LEFT JOIN counted AS c USING (workflow)
    CROSS JOIN params AS p
),
wilson AS (  -- each rate's Wilson score interval: centre ± half-width
    SELECT
        *,
        (p1 + z * z / (2 * treated)) / (1 + z * z / treated)                         AS c1,
        z / (1 + z * z / treated)
            * sqrt(p1 * (1 - p1) / treated + z * z / (4 * treated * treated))         AS h1,
        (p2 + z * z / (2 * control)) / (1 + z * z / control)                         AS c2,
        z / (1 + z * z / control)
            * sqrt(p2 * (1 - p2) / control + z * z / (4 * control * control))         AS h2
    FROM rates
),
newcombe AS (
    SELECT
        *,
        p1 - p2                                                                       AS d,
        p1 - p2 - sqrt((p1 - (c1 - h1)) ** 2 + ((c2 + h2) - p2) ** 2)                 AS low,
        p1 - p2 + sqrt(((c1 + h1) - p1) ** 2 + (p2 - (c2 - h2)) ** 2)                 AS high
    FROM wilson
)
SELECT
    workflow,
    category,
    holdout_percent,
    window_days,
    treated,
    treated_met,
    round(p1, 4)                                                 AS treated_met_rate,
    control,
    control_met,
    round(p2, 4)                                                 AS control_met_rate,
    round(d, 4)                                                  AS lift,
    round(low, 4)                                                AS lift_low,
    round(high, 4)                                               AS lift_high,
    coalesce(low > 0 OR high < 0, false)                         AS significant,
    pending,
    (SELECT max(as_of) FROM {{ source('cswf', 'tick_log') }})    AS as_of
FROM newcombe
ORDER BY workflow
