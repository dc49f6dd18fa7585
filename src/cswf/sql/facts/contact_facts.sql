-- contact_facts: the fields contact workflows can use, one row per (as_of, participant_id).
-- Every contact with a visible snapshot (contact_latest) gets a row. Day counts are relative to
-- as_of::date; every column has a fixed type.
-- Cross-object: every account_facts field of the contact's account as of the same tick follows,
-- named "account.<field>" (e.g. "account.health_score"); they are NULL while the account has no
-- visible snapshot. A field added to account_facts appears here by itself.
SELECT
    c.as_of,
    CAST(c.contact_id AS VARCHAR) AS participant_id,
    c.contact_id,
    c.account_id,
    c.snapshot_date,
    c.contact_name,
    c.email,
    c.role,
    CAST(c.is_primary AS BOOLEAN) AS is_primary,
    c.title,
    c.last_login_on,
    CAST(c.nps AS INTEGER) AS nps,
    CASE
        WHEN c.nps >= 9 THEN 'promoter'
        WHEN c.nps >= 7 THEN 'passive'
        WHEN c.nps >= 0 THEN 'detractor'
    END AS nps_category,
    c.time_zone,
    CAST(CAST(c.as_of AS DATE) - c.last_login_on AS INTEGER) AS days_since_login,
    CAST(CAST(c.as_of AS DATE) - c.snapshot_date AS INTEGER) AS snapshot_age_days,
    -- the project's extra fields (cswf.yaml `fields: {contacts: ...}`), typed as declared
    c.* EXCLUDE (as_of, {{ contract_columns('contacts') }}),
    COLUMNS(f.* EXCLUDE (as_of, participant_id)) AS "account.\0"
FROM {{ ref('contact_latest') }} AS c
LEFT JOIN {{ ref('account_facts') }} AS f ON f.as_of = c.as_of AND f.account_id = c.account_id
