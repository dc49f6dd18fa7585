-- opportunity_facts: the fields opportunity workflows can use, one row per (as_of, participant_id).
-- Every opportunity with a visible snapshot (opportunity_latest) gets a row, closed ones included
-- (is_open tells them apart). Day counts are relative to as_of::date; every column has a fixed type.
-- Cross-object: every account_facts field of the opportunity's account as of the same tick
-- follows, named "account.<field>"; NULL while the account has no visible snapshot.
SELECT
    o.as_of,
    CAST(o.opportunity_id AS VARCHAR) AS participant_id,
    o.opportunity_id,
    o.account_id,
    o.snapshot_date,
    o.opportunity_name,
    o.type,
    o.stage,
    CAST(o.amount AS DOUBLE) AS amount,
    o.close_date,
    o.owner_email,
    o.stage_entered_on,
    o.stage NOT IN ('closed_won', 'closed_lost') AS is_open,
    CAST(o.close_date - CAST(o.as_of AS DATE) AS INTEGER) AS days_to_close,
    CAST(CAST(o.as_of AS DATE) - o.stage_entered_on AS INTEGER) AS days_in_stage,
    CAST(CAST(o.as_of AS DATE) - o.snapshot_date AS INTEGER) AS snapshot_age_days,
    -- the project's extra fields (cswf.yaml `fields: {opportunities: ...}`), typed as declared
    o.* EXCLUDE (as_of, {{ contract_columns('opportunities') }}),
    COLUMNS(f.* EXCLUDE (as_of, participant_id)) AS "account.\0"
FROM {{ ref('opportunity_latest') }} AS o
LEFT JOIN {{ ref('account_facts') }} AS f ON f.as_of = o.as_of AND f.account_id = o.account_id
