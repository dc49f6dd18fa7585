-- account_facts: the fields conditions can use, one row per (as_of, participant_id).
-- Every account with a visible snapshot (account_latest) gets a row; usage sums are 0 without
-- usage. Ratios and day counts are relative to as_of::date; every column has a fixed type.
-- To add a field without touching this file, see "How to add a fact field" in
-- docs/data-contract.md (a model that `extends: account_facts`).
SELECT
    a.as_of,
    CAST(a.account_id AS VARCHAR) AS participant_id,
    a.account_id,
    a.snapshot_date,
    a.account_name,
    a.tier,
    a.stage,
    a.stage_entered_on,
    CAST(a.arr AS DOUBLE) AS arr,
    CAST(a.seats_purchased AS INTEGER) AS seats_purchased,
    CAST(a.seats_active AS INTEGER) AS seats_active,
    a.contract_start,
    a.renewal_date,
    CAST(a.health_score AS DOUBLE) AS health_score,
    CAST(a.nps AS INTEGER) AS nps,
    CASE
        WHEN a.nps >= 9 THEN 'promoter'
        WHEN a.nps >= 7 THEN 'passive'
        WHEN a.nps >= 0 THEN 'detractor'
    END AS nps_category,
    a.nps_responded_on,
    CAST(a.open_tickets AS INTEGER) AS open_tickets,
    a.csm_name,
    a.csm_email,
    a.primary_contact_name,
    a.primary_contact_email,
    a.region,
    a.industry,
    a.time_zone,
    -- the project's extra fields (cswf.yaml `fields: {accounts: ...}`), typed as declared
    a.* EXCLUDE (as_of, {{ contract_columns('accounts') }}),
    coalesce(u.usage_events_7d, 0) AS usage_events_7d,
    coalesce(u.usage_events_prev_7d, 0) AS usage_events_prev_7d,
    coalesce(u.usage_events_30d, 0) AS usage_events_30d,
    coalesce(u.active_users_7d_avg, 0) AS active_users_7d_avg,
    u.usage_events_7d_change_pct,
    CASE WHEN a.seats_purchased > 0
        THEN 100.0 * CAST(a.seats_active AS DOUBLE) / a.seats_purchased
    END AS seat_utilisation_pct,
    CAST(a.renewal_date - CAST(a.as_of AS DATE) AS INTEGER) AS days_to_renewal,
    CAST(CAST(a.as_of AS DATE) - a.stage_entered_on AS INTEGER) AS days_in_stage,
    CAST(CAST(a.as_of AS DATE) - a.contract_start AS INTEGER) AS days_since_contract_start,
    CAST(CAST(a.as_of AS DATE) - a.nps_responded_on AS INTEGER) AS days_since_nps_response,
    CAST(CAST(a.as_of AS DATE) - a.snapshot_date AS INTEGER) AS snapshot_age_days
FROM {{ ref('account_latest') }} AS a
LEFT JOIN {{ ref('usage_windows') }} AS u ON u.as_of = a.as_of AND u.account_id = a.account_id
