-- The objective's field after people leave, per workflow and day after exit (0 = the tick they
-- left, up to 30): how many left enrollments were observed that day, the field's average and
-- median (numeric fields), and how many met the objective then. Read from {{ ref('objective_after_exit') }}.
{% from "macros/latest_spec.sql" import latest_spec %}
WITH workflow_category AS (  -- a workflow's category is its latest spec version's
    SELECT workflow, category FROM ({{ latest_spec() }})
)
SELECT
    a.workflow,
    any_value(c.category)                                      AS category,
    a.day_after_exit,
    any_value(a.field)                                         AS objective_field,
    count(*)                                                   AS observed,
    count(a.value)                                             AS with_value,
    round(avg(a.value_number), 2)                              AS avg_value,
    round(median(a.value_number), 2)                           AS median_value,
    CASE WHEN bool_and(a.meets IS NOT NULL)  -- NULL when the objective cannot be judged
         THEN count(*) FILTER (a.meets) END                    AS meeting,
    CASE WHEN bool_and(a.meets IS NOT NULL)
         THEN round(count(*) FILTER (a.meets) / count(*), 4) END AS meeting_rate
FROM {{ ref('objective_after_exit') }} AS a
LEFT JOIN workflow_category AS c USING (workflow)
GROUP BY a.workflow, a.day_after_exit
ORDER BY a.workflow, a.day_after_exit
