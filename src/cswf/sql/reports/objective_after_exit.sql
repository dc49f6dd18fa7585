-- What happened to the objective after an enrollment left: for every enrollment that completed
-- or exited a workflow with an objective, one row per day from the day it left (day 0, the tick
-- it left) to 30 days after, up to the last tick: the objective's field then and whether the
-- objective held. Day d reads the facts of the last tick at or before (left at + d days); facts
-- change once a day, so this sees every day's value.
-- Where the value comes from: account workflows and `account.<field>` objectives read the stored
-- account_facts; contact and opportunity workflows read their own snapshot field (raw_contacts,
-- raw_opportunities: the latest snapshot on or before that day). `meets` is NULL when the
-- objective cannot be judged here: a condition over several leaves, an operator that compares
-- with the previous tick or with today's date, or a field computed by the facts models of
-- contacts and opportunities (e.g. is_open).
{% from "macros/latest_spec.sql" import latest_spec %}
WITH last_tick AS (
    SELECT max(as_of) AS as_of FROM {{ source('cswf', 'tick_log') }}
),
workflow_category AS (  -- a workflow's category is its latest spec version's
    SELECT workflow, category FROM ({{ latest_spec() }})
),
objectives AS (  -- each spec version's objective, when it is one test of one field
    SELECT
        workflow,
        version,
        spec_json ->> '$.object'                         AS object,
        spec_json ->> '$.objective.condition.field'      AS field,
        spec_json ->> '$.objective.condition.op'         AS op,
        spec_json -> '$.objective.condition.value'       AS target
    FROM {{ source('cswf', 'workflow_versions') }}
    WHERE has_objective
),
accounts_of AS (  -- the account of each contact and opportunity (its latest snapshot)
    SELECT 'contact' AS object, contact_id AS participant_id,
           arg_max(account_id, snapshot_date) AS account_id
    FROM {{ source('landing', 'raw_contacts') }} GROUP BY contact_id
    UNION ALL
    SELECT 'opportunity', opportunity_id, arg_max(account_id, snapshot_date)
    FROM {{ source('landing', 'raw_opportunities') }} GROUP BY opportunity_id
),
known_fields AS (  -- the fields each source can show
    SELECT table_name AS source, column_name AS field
    FROM duckdb_columns()
    WHERE database_name = current_database() AND schema_name = current_schema()
      AND table_name IN ('account_facts', 'raw_contacts', 'raw_opportunities')
),
left_enrollments AS (
    SELECT
        e.workflow,
        e.enrollment_id,
        e.participant_id,
        e.status,
        e.closed_at,
        o.field,
        o.op,
        o.target,
        CASE WHEN o.object = 'account' OR o.field LIKE 'account.%' THEN 'account_facts'
             WHEN o.object = 'contact' THEN 'raw_contacts'
             ELSE 'raw_opportunities' END                          AS source,
        CASE WHEN o.object <> 'account' AND o.field LIKE 'account.%' THEN a.account_id
             ELSE e.participant_id END                             AS source_id,
        CASE WHEN o.object <> 'account' AND o.field LIKE 'account.%' THEN o.field[9:]
             ELSE o.field END                                      AS source_field
    FROM {{ source('cswf', 'enrollments') }} AS e
    JOIN objectives AS o USING (workflow, version)
    LEFT JOIN accounts_of AS a ON a.object = o.object AND a.participant_id = e.participant_id
    WHERE e.status IN ('completed', 'exited')
),
observations AS (  -- day 0 to day 30 after leaving, up to the last tick
    SELECT l.*, d.day AS day_after_exit, l.closed_at + to_days(d.day) AS observed_at
    FROM left_enrollments AS l
    CROSS JOIN range(0, 31) AS d(day)
    CROSS JOIN last_tick AS t
    WHERE l.closed_at + to_days(d.day) <= t.as_of
),
observed_ticks AS (  -- the last tick at or before each observation
    SELECT o.*, k.as_of AS fact_tick
    FROM observations AS o
    ASOF JOIN {{ source('cswf', 'tick_log') }} AS k ON k.as_of <= o.observed_at
),
account_rows AS MATERIALIZED (  -- the stored facts of the watched accounts at those ticks
    SELECT f.*
    FROM {{ source('cswf', 'account_facts') }} AS f
    SEMI JOIN observed_ticks AS o
        ON o.source = 'account_facts' AND f.participant_id = o.source_id
       AND f.as_of = o.fact_tick
),
contact_rows AS MATERIALIZED (  -- the snapshots of the watched contacts
    SELECT c.* FROM {{ source('landing', 'raw_contacts') }} AS c
    SEMI JOIN observations AS o ON o.source = 'raw_contacts' AND c.contact_id = o.source_id
),
opportunity_rows AS MATERIALIZED (  -- the snapshots of the watched opportunities
    SELECT p.* FROM {{ source('landing', 'raw_opportunities') }} AS p
    SEMI JOIN observations AS o
        ON o.source = 'raw_opportunities' AND p.opportunity_id = o.source_id
),
observed_values AS (  -- the field's value, as text (NULL when missing)
    SELECT o.enrollment_id, o.day_after_exit, to_json(f) ->> o.source_field AS value
    FROM observed_ticks AS o
    JOIN account_rows AS f ON f.participant_id = o.source_id AND f.as_of = o.fact_tick
    WHERE o.source = 'account_facts'
    UNION ALL
    SELECT o.enrollment_id, o.day_after_exit, to_json(c) ->> o.source_field
    FROM observations AS o
    ASOF JOIN contact_rows AS c
        ON c.contact_id = o.source_id AND c.snapshot_date <= CAST(o.observed_at AS DATE)
    WHERE o.source = 'raw_contacts'
    UNION ALL
    SELECT o.enrollment_id, o.day_after_exit, to_json(p) ->> o.source_field
    FROM observations AS o
    ASOF JOIN opportunity_rows AS p
        ON p.opportunity_id = o.source_id AND p.snapshot_date <= CAST(o.observed_at AS DATE)
    WHERE o.source = 'raw_opportunities'
),
readings AS (
    SELECT
        o.*,
        v.value,
        k.field IS NOT NULL                           AS field_known,
        o.target ->> '$'                              AS wanted,
        try_cast(v.value AS DOUBLE)                   AS number,
        try_cast(o.target ->> '$' AS DOUBLE)          AS wanted_number,
        CAST(o.target ->> '$[*]' AS VARCHAR[])        AS wanted_list,
        o.target ->> '$[0]'                           AS low,
        o.target ->> '$[1]'                           AS high
    FROM observations AS o
    LEFT JOIN observed_values AS v USING (enrollment_id, day_after_exit)
    LEFT JOIN known_fields AS k ON k.source = o.source AND k.field = o.source_field
)
SELECT
    r.workflow,
    c.category,
    enrollment_id,
    participant_id,
    status,
    closed_at,
    CAST(day_after_exit AS INTEGER) AS day_after_exit,
    observed_at,
    field,
    op,
    CAST(target AS VARCHAR)         AS target,
    value,
    try_cast(value AS DOUBLE)       AS value_number,
    CASE
        WHEN NOT field_known OR op IS NULL THEN NULL
        WHEN op = 'is_null' THEN value IS NULL
        WHEN op = 'not_null' THEN value IS NOT NULL
        WHEN op NOT IN ('eq', 'ne', 'lt', 'le', 'gt', 'ge', 'in', 'not_in', 'between',
                        'contains', 'starts_with') THEN NULL
        WHEN value IS NULL THEN false  -- the null rule: a missing value meets no test
        WHEN op = 'eq' THEN coalesce(number = wanted_number, value = wanted)
        WHEN op = 'ne' THEN coalesce(number <> wanted_number, value <> wanted)
        WHEN op = 'lt' THEN coalesce(number < wanted_number, value < wanted)
        WHEN op = 'le' THEN coalesce(number <= wanted_number, value <= wanted)
        WHEN op = 'gt' THEN coalesce(number > wanted_number, value > wanted)
        WHEN op = 'ge' THEN coalesce(number >= wanted_number, value >= wanted)
        WHEN op IN ('in', 'not_in') THEN
            (op = 'in') = (list_contains(wanted_list, value)
                           OR coalesce(list_contains(
                                  list_transform(wanted_list, lambda w: try_cast(w AS DOUBLE)),
                                  number), false))
        WHEN op = 'between' THEN coalesce(number BETWEEN try_cast(low AS DOUBLE)
                                                     AND try_cast(high AS DOUBLE),
                                          value BETWEEN low AND high)
        WHEN op = 'contains' THEN contains(lower(value), lower(wanted))
        WHEN op = 'starts_with' THEN starts_with(lower(value), lower(wanted))
    END                             AS meets
FROM readings AS r
LEFT JOIN workflow_category AS c USING (workflow)
ORDER BY r.workflow, enrollment_id, day_after_exit
