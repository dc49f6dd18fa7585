{#- latest_snapshot: for each tick and key, the latest snapshot row of `table` (a relation,
    e.g. source('landing', 'raw_accounts')) visible at the tick. A snapshot dated d is visible from d 00:00: the latest row with snapshot_date <=
    as_of::date. Facts depend on the tick's date only, so the work is done once per distinct date
    and then fanned out to the ticks of that date (720 three-hourly ticks = 90 dates). A key
    stays once seen: conditions decide whether to skip it.

    Fast path: landing files are usually full daily dumps, so a key's latest row is in the newest
    snapshot day on or before the tick date; that is a hash join, no sorting. Keys seen before
    but absent from that day fall back to an ASOF join over their own rows only. If a
    (snapshot_date, key) is duplicated, one row is kept (the tick is blocked anyway). -#}
{% macro latest_snapshot(table, key) -%}
WITH tick_dates AS (
    SELECT DISTINCT CAST(as_of AS DATE) AS fact_date FROM ticks
),
newest_day AS (
    SELECT d.fact_date, max(s.snapshot_date) AS snapshot_date
    FROM tick_dates AS d
    JOIN (SELECT DISTINCT snapshot_date FROM {{ table }}) AS s ON s.snapshot_date <= d.fact_date
    GROUP BY d.fact_date
),
in_newest AS (
    SELECT n.fact_date, r.{{ key }}, max(r.rowid) AS row_ref
    FROM newest_day AS n
    JOIN {{ table }} AS r ON r.snapshot_date = n.snapshot_date
    GROUP BY n.fact_date, r.{{ key }}
),
first_seen AS (
    SELECT {{ key }}, min(snapshot_date) AS first_seen FROM {{ table }} GROUP BY {{ key }}
),
absent AS (
    SELECT d.fact_date, f.{{ key }}
    FROM tick_dates AS d
    JOIN first_seen AS f ON f.first_seen <= d.fact_date
    ANTI JOIN in_newest AS i ON i.fact_date = d.fact_date AND i.{{ key }} = f.{{ key }}
),
fallback AS (
    SELECT a.fact_date, k.row_ref
    FROM absent AS a
    ASOF JOIN (
        SELECT {{ key }}, snapshot_date, rowid AS row_ref
        FROM {{ table }}
        WHERE {{ key }} IN (SELECT {{ key }} FROM absent)
    ) AS k ON k.{{ key }} = a.{{ key }} AND k.snapshot_date <= a.fact_date
),
latest AS (
    SELECT fact_date, row_ref FROM in_newest
    UNION ALL
    SELECT fact_date, row_ref FROM fallback
)
SELECT t.as_of, r.* EXCLUDE (source_file)
FROM ticks AS t
JOIN latest AS l ON l.fact_date = CAST(t.as_of AS DATE)
JOIN {{ table }} AS r ON r.rowid = l.row_ref
{%- endmacro %}
