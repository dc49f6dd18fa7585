-- opportunity_latest: for each tick and opportunity, the latest opportunity snapshot visible at the tick.
-- Same rules and plan as account_latest.sql, keyed by opportunity_id: a snapshot dated d is visible
-- from d 00:00, and a opportunity missing from the newest snapshot day keeps its latest earlier row
-- (closed opportunities stay: conditions test is_open or stage).
-- The newest day's rows are a hash join; only opportunities absent from it take the ASOF join.
-- If a (snapshot_date, opportunity_id) is duplicated, one row is kept (the tick is blocked anyway).
WITH tick_dates AS (
    SELECT DISTINCT CAST(as_of AS DATE) AS fact_date FROM ticks
),
newest_day AS (
    SELECT d.fact_date, max(s.snapshot_date) AS snapshot_date
    FROM tick_dates AS d
    JOIN (SELECT DISTINCT snapshot_date FROM raw_opportunities) AS s ON s.snapshot_date <= d.fact_date
    GROUP BY d.fact_date
),
in_newest AS (
    SELECT n.fact_date, r.opportunity_id, max(r.rowid) AS row_ref
    FROM newest_day AS n
    JOIN raw_opportunities AS r ON r.snapshot_date = n.snapshot_date
    GROUP BY n.fact_date, r.opportunity_id
),
first_seen AS (
    SELECT opportunity_id, min(snapshot_date) AS first_seen FROM raw_opportunities GROUP BY opportunity_id
),
absent AS (
    SELECT d.fact_date, f.opportunity_id
    FROM tick_dates AS d
    JOIN first_seen AS f ON f.first_seen <= d.fact_date
    ANTI JOIN in_newest AS i ON i.fact_date = d.fact_date AND i.opportunity_id = f.opportunity_id
),
fallback AS (
    SELECT a.fact_date, k.row_ref
    FROM absent AS a
    ASOF JOIN (
        SELECT opportunity_id, snapshot_date, rowid AS row_ref
        FROM raw_opportunities
        WHERE opportunity_id IN (SELECT opportunity_id FROM absent)
    ) AS k ON k.opportunity_id = a.opportunity_id AND k.snapshot_date <= a.fact_date
),
latest AS (
    SELECT fact_date, row_ref FROM in_newest
    UNION ALL
    SELECT fact_date, row_ref FROM fallback
)
SELECT t.as_of, r.* EXCLUDE (source_file)
FROM ticks AS t
JOIN latest AS l ON l.fact_date = CAST(t.as_of AS DATE)
JOIN raw_opportunities AS r ON r.rowid = l.row_ref
