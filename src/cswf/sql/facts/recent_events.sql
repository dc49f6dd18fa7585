-- recent_events: per tick and participant, the events counted in the LOOKBACK (90 days) up to the
-- tick, oldest first: what event conditions ({event: ..., happened: since_previous_tick} or
-- within_days) read. An event counts at its counted_at (its occurred_at, or just after the
-- latest tick run when it landed late: ingest/participant_events.py), so a tick sees exactly
-- the events counted at or before its as_of, whenever it is run. since_previous_tick: counted in
-- (previous tick, this tick]; at the calendar's first tick (no previous one) every event of the
-- lookback is. days_ago: days from counted_at to as_of, so `within_days: N` is days_ago < N.
SELECT
    t.as_of,
    CAST(e.participant_id AS VARCHAR) AS participant_id,
    list(struct_pack(
        event_type := e.event_type,
        event_id := e.event_id,
        occurred_at := e.occurred_at,
        counted_at := e.counted_at,
        since_previous_tick := coalesce(e.counted_at > t.previous_as_of, true),
        days_ago := CAST(date_diff('microsecond', e.counted_at, t.as_of) AS DOUBLE) / 86400e6,
        properties := e.properties
    ) ORDER BY e.counted_at, e.event_type, e.event_id) AS recent_events
FROM ticks AS t
JOIN {{ source('landing', 'raw_events') }} AS e
    ON e.counted_at <= t.as_of AND e.counted_at > t.as_of - INTERVAL 90 DAY
GROUP BY t.as_of, e.participant_id
