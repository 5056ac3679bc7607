-- Heartbeats: alerts that must keep arriving (Prometheus' Watchdog), one row per heartbeat and
-- `per` value. The row is its own deadline: a renewal moves `due_at`, and every replica's
-- engine takes a due row with FOR UPDATE SKIP LOCKED in the transaction that opens its
-- HeartbeatMissing incident (through medic_record, as a notification would), so exactly one
-- replica opens it, and a crash before commit leaves the row due for another.
--
-- Only the primary key is indexed: a renewal changes no indexed column, so it is a HOT update
-- (fillfactor leaves room on the page), and the engine's scan of a table this small is cheap.

CREATE TABLE heartbeats (
    name         text        NOT NULL,
    -- The value of the heartbeat's `per` label ('' without `per`, or when the label is missing).
    per_value    text        NOT NULL,
    state        text        NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'missing')),
    -- NULL until the first renewal (a heartbeat armed at startup, never seen).
    last_seen_at timestamptz,
    -- When it goes missing unless renewed before.
    due_at       timestamptz NOT NULL,
    -- expect_every + grace, as the last renewal (or startup) read the settings.
    window_ms    bigint      NOT NULL CHECK (window_ms > 0),
    renewals     bigint      NOT NULL DEFAULT 0,
    -- The HeartbeatMissing incident while missing.
    incident_id  bigint,
    missing_since timestamptz,
    CHECK ((state = 'missing') = (incident_id IS NOT NULL)),
    PRIMARY KEY (name, per_value)
) WITH (fillfactor = 50);

-- Closes a HeartbeatMissing incident as a resolved notification of its alerts would.
CREATE FUNCTION medic_resolve_heartbeat_incident(p_incident bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    g record;
    a record;
BEGIN
    SELECT ag.receiver, ag.group_key, ag.group_labels, i.common_labels, i.common_annotations,
           i.external_url
      INTO g
      FROM incidents i JOIN alert_groups ag ON ag.id = i.group_id
     WHERE i.id = p_incident;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT array_agg(al.fingerprint) AS fingerprints, array_agg(al.starts_at) AS starts,
           array_agg(now()) AS ends, array_agg('resolved'::text) AS statuses,
           array_agg(al.labels) AS labels, array_agg(al.annotations) AS annotations,
           array_agg(al.generator_url) AS urls
      INTO a
      FROM alerts al WHERE al.incident_id = p_incident;
    PERFORM medic_record(
        p_receiver => g.receiver, p_group_key => g.group_key, p_group_labels => g.group_labels,
        p_status => 'resolved', p_common_labels => g.common_labels,
        p_common_annotations => g.common_annotations, p_external_url => g.external_url,
        p_truncated_alerts => 0,
        p_fingerprints => a.fingerprints, p_starts_at => a.starts, p_ends_at => a.ends,
        p_statuses => a.statuses, p_labels => a.labels, p_annotations => a.annotations,
        p_generator_urls => a.urls,
        p_timer_kinds => '{}', p_timer_rules => '{}', p_timer_steps => '{}',
        p_timer_notifiers => '{}', p_timer_channels => '{}', p_timer_after_ms => '{}',
        p_timer_repeat_ms => '{}', p_timer_subjects => '{}', p_timer_payloads => '{}');
END
$$;

-- Renews heartbeats (one array element each, distinct): each is due again `window_ms` from
-- now. A missing one is ok again, and its incident resolves in the same transaction. Returns
-- those that came back. Rows are locked first, in key order (so concurrent batches never wait
-- on each other in a cycle), and their state read under the lock: a row the engine is marking
-- missing right now is seen missing once it commits, so its incident is never left open.
CREATE FUNCTION medic_renew_heartbeats(p_names text[], p_per_values text[], p_window_ms bigint[])
RETURNS TABLE (name text, per_value text, incident_id bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    m record;
BEGIN
    FOR m IN
        SELECT h.name, h.per_value, h.state, h.incident_id
          FROM heartbeats h
          JOIN unnest(p_names, p_per_values) AS k (name, per_value)
            ON h.name = k.name AND h.per_value = k.per_value
         ORDER BY h.name, h.per_value
           FOR NO KEY UPDATE OF h
    LOOP
        CONTINUE WHEN m.state <> 'missing';
        PERFORM medic_resolve_heartbeat_incident(m.incident_id);
        name := m.name;
        per_value := m.per_value;
        incident_id := m.incident_id;
        RETURN NEXT;
    END LOOP;
    INSERT INTO heartbeats AS h (name, per_value, state, last_seen_at, due_at, window_ms, renewals)
    SELECT k.name, k.per_value, 'ok', now(), now() + k.window_ms * interval '1 millisecond',
           k.window_ms, 1
      FROM unnest(p_names, p_per_values, p_window_ms) AS k (name, per_value, window_ms)
     ORDER BY k.name, k.per_value
    ON CONFLICT (name, per_value) DO UPDATE
       SET state = 'ok', last_seen_at = now(), due_at = EXCLUDED.due_at,
           window_ms = EXCLUDED.window_ms, renewals = h.renewals + 1, incident_id = NULL,
           missing_since = NULL;
END
$$;
