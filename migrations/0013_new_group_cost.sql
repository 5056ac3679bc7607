-- Cheaper intake of a new group, the most work a notification causes (`cargo bench --bench
-- ingest`, new ten-alert groups; Postgres time inside medic_record per call, one client, from
-- pg_stat_statements: 350 -> 265 µs):
--
-- - Alerts of a group created by this transaction are inserted plainly. Such a group holds no
--   alerts yet and the episodes are distinct (Notification::parse drops repeats, with startsAt
--   at Postgres' microseconds), so ON CONFLICT, the CTE and its count only cost: 67 -> 40 µs.
-- - medic sends the labels' distinct `name=value` pairs, so the label keys are hashed from a
--   text array instead of unpacking every alert's labels with jsonb_each_text, a set-returning
--   function run once per alert: 35 -> 5 µs.
-- - Scheduling no longer locks a new incident's row (nobody else sees it before commit), nor
--   any incident when the rules ask for no timer.
-- - incidents.group_id loses its foreign key, as alerts never had theirs: only medic_record
--   inserts incidents, with the id of the group row it holds locked, and groups are never
--   deleted. The check was a trigger and a row lock (with its WAL record) per new incident.
--
-- medic_record's current definition is the one here: 0012's with the changes above, and
-- `p_label_pairs` (defaulted, so a replica of the previous version calling it during a rolling
-- update still works, computing the keys from the labels as before).

ALTER TABLE incidents DROP CONSTRAINT incidents_group_id_fkey;

DROP FUNCTION medic_record(text, text, jsonb, text, jsonb, jsonb, text, bigint, text[], timestamptz[],
                           timestamptz[], text[], jsonb[], jsonb[], text[], text[], text[], integer[],
                           text[], text[], bigint[], bigint[], text[], jsonb[], text);

CREATE FUNCTION medic_record(
    -- The notification.
    p_receiver           text,
    p_group_key          text,
    p_group_labels       jsonb,
    p_status             text,
    p_common_labels      jsonb,
    p_common_annotations jsonb,
    p_external_url       text,
    p_truncated_alerts   bigint,
    -- Its alert episodes, one array element each.
    p_fingerprints       text[],
    p_starts_at          timestamptz[],
    p_ends_at            timestamptz[],
    p_statuses           text[],
    p_labels             jsonb[],
    p_annotations        jsonb[],
    p_generator_urls     text[],
    -- The timers its rules ask for, one array element each.
    p_timer_kinds        text[],
    p_timer_rules        text[],
    p_timer_steps        integer[],
    p_timer_notifiers    text[],
    p_timer_channels     text[],
    p_timer_after_ms     bigint[],
    p_timer_repeat_ms    bigint[],
    p_timer_subjects     text[],
    p_timer_payloads     jsonb[],
    -- The W3C trace context of the notification's recording, kept by a new incident (NULL
    -- when medic exports no traces).
    p_traceparent        text DEFAULT NULL,
    -- The distinct `name=value` pairs of the alerts' labels, which the label index keeps as
    -- hashes (NULL from a replica of the previous version: computed from p_labels then).
    p_label_pairs        text[] DEFAULT NULL,
    OUT incident_id       bigint,
    OUT new_incident      boolean,
    OUT new_alerts        integer,
    OUT resolved_alerts   integer,
    OUT incident_resolved boolean,
    OUT duplicate         boolean,
    OUT timers_scheduled  integer,
    OUT timers_cancelled  integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    v_group        bigint;
    v_new_group    boolean := false;
    v_open         bigint;
    v_known        bigint;
    v_known_count  integer := 0;
    v_known_firing integer := 0;
    v_changing     integer := 0;
    v_is_open      boolean;
    v_close        boolean;
    v_new_status   text;
    v_created      timestamptz;
    v_acked        timestamptz;
    v_status       text;
    v_label_keys   bigint[];
BEGIN
    -- A replica of the previous version sends no pairs.
    IF p_label_pairs IS NULL THEN
        p_label_pairs := ARRAY(SELECT l.key || '=' || l.value
                                 FROM unnest(p_labels) AS x (labels), jsonb_each_text(x.labels) AS l
                                WHERE l.value IS NOT NULL);
    END IF;

    -- Lock the group's row, creating it if need be. Of two deliveries creating it at once,
    -- the second waits for the first to commit, then locks the row through DO UPDATE.
    SELECT g.id INTO v_group FROM alert_groups g
     WHERE g.receiver = p_receiver AND g.group_key = p_group_key
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        INSERT INTO alert_groups AS g (receiver, group_key, group_labels)
        VALUES (p_receiver, p_group_key, p_group_labels)
        ON CONFLICT (receiver, group_key) DO UPDATE SET group_labels = EXCLUDED.group_labels
        RETURNING g.id, g.xmax = 0 INTO v_group, v_new_group;
    END IF;

    IF NOT v_new_group THEN
        SELECT i.id INTO v_open FROM incidents i WHERE i.group_id = v_group AND i.status = 'firing';
        -- The newest incident holding any of these episodes; how many are known, how many
        -- of those fire, and how many the upsert below would change.
        SELECT max(a.incident_id), count(*), count(*) FILTER (WHERE n.status = 'firing'),
               count(*) FILTER (WHERE a.status = 'firing'
                                  AND (n.status = 'resolved' OR a.annotations <> n.annotations))
          INTO v_known, v_known_count, v_known_firing, v_changing
          FROM alerts a
          JOIN unnest(p_fingerprints, p_starts_at, p_statuses, p_annotations)
               AS n (fingerprint, starts_at, status, annotations)
            ON a.fingerprint = n.fingerprint AND a.starts_at = n.starts_at
         WHERE a.group_id = v_group;
    END IF;

    -- The group's open incident; else a new one if an unknown episode fires; else the incident
    -- this late duplicate belongs to; else a new, already resolved one (medic never saw it fire).
    new_incident := false;
    IF v_open IS NOT NULL THEN
        incident_id := v_open;
        v_is_open := true;
    ELSIF coalesce(cardinality(array_positions(p_statuses, 'firing')), 0) > v_known_firing THEN
        v_new_status := 'firing';
    ELSIF v_known IS NOT NULL THEN
        incident_id := v_known;
        v_is_open := false;
    ELSE
        v_new_status := 'resolved';
    END IF;

    IF v_new_status IS NOT NULL THEN
        v_label_keys := ARRAY(SELECT DISTINCT hashtextextended(p, 0) AS k FROM unnest(p_label_pairs) AS p
                               ORDER BY k);
        INSERT INTO incidents AS i (group_id, status, resolved_at, common_labels, common_annotations,
                                    external_url, truncated_alerts, label_keys, traceparent)
        VALUES (v_group, v_new_status, CASE WHEN v_new_status = 'resolved' THEN now() END,
                p_common_labels, p_common_annotations, p_external_url, p_truncated_alerts,
                v_label_keys, p_traceparent)
        RETURNING i.id, i.created_at INTO incident_id, v_created;
        new_incident := true;
        v_is_open := v_new_status = 'firing';
    END IF;

    new_alerts := 0;
    resolved_alerts := 0;
    -- New episodes join the incident; known ones stay where they are. A resolved episode is
    -- final: a late firing duplicate never re-opens it.
    IF v_new_group THEN
        -- A group created by this transaction holds no alerts yet, and the episodes are
        -- distinct (Notification::parse), so they are all new.
        INSERT INTO alerts (incident_id, group_id, fingerprint, starts_at, ends_at, status,
                            labels, annotations, generator_url)
        SELECT incident_id, v_group, n.*
          FROM unnest(p_fingerprints, p_starts_at, p_ends_at, p_statuses, p_labels,
                      p_annotations, p_generator_urls) AS n;
        new_alerts := cardinality(p_fingerprints);
        resolved_alerts := coalesce(cardinality(array_positions(p_statuses, 'resolved')), 0);
    ELSIF v_known_count < cardinality(p_fingerprints) OR v_changing > 0 THEN
        WITH changed AS (
            INSERT INTO alerts AS a (incident_id, group_id, fingerprint, starts_at, ends_at, status,
                                     labels, annotations, generator_url)
            SELECT incident_id, v_group, n.*
              FROM unnest(p_fingerprints, p_starts_at, p_ends_at, p_statuses, p_labels,
                          p_annotations, p_generator_urls) AS n
            ON CONFLICT (group_id, fingerprint, starts_at) DO UPDATE
               SET status = EXCLUDED.status, ends_at = EXCLUDED.ends_at,
                   annotations = EXCLUDED.annotations, updated_at = now()
             WHERE a.status = 'firing'
               AND (EXCLUDED.status = 'resolved' OR a.annotations <> EXCLUDED.annotations)
            RETURNING a.xmax = 0 AS inserted, a.status)
        SELECT count(*) FILTER (WHERE c.inserted), count(*) FILTER (WHERE c.status = 'resolved')
          INTO new_alerts, resolved_alerts
          FROM changed c;
    END IF;

    -- Alertmanager says "resolved" only when every alert of the group, truncated ones
    -- included, has resolved: then the incident closes, with whatever it still holds.
    v_close := v_is_open AND p_status = 'resolved';
    duplicate := NOT new_incident AND new_alerts = 0 AND resolved_alerts = 0 AND NOT v_close;
    incident_resolved := v_close OR (new_incident AND NOT v_is_open);

    IF NOT new_incident AND NOT duplicate THEN
        IF new_alerts > 0 THEN
            v_label_keys := ARRAY(SELECT DISTINCT hashtextextended(p, 0) AS k FROM unnest(p_label_pairs) AS p
                               ORDER BY k);
        END IF;
        UPDATE incidents AS i
           SET updated_at = now(),
               status = CASE WHEN v_close THEN 'resolved' ELSE i.status END,
               resolved_at = CASE WHEN v_close THEN now() ELSE i.resolved_at END,
               truncated_alerts = CASE WHEN v_is_open THEN p_truncated_alerts ELSE i.truncated_alerts END,
               -- Unchanged unless new alerts joined, so a repeat's update stays HOT.
               label_keys = CASE WHEN new_alerts > 0
                                 THEN ARRAY(SELECT DISTINCT k FROM unnest(i.label_keys || v_label_keys) AS k
                                             ORDER BY k)
                                 ELSE i.label_keys END
         WHERE i.id = incident_id;
    END IF;
    IF v_close THEN
        UPDATE alerts AS a SET status = 'resolved', updated_at = now()
         WHERE a.group_id = v_group AND a.incident_id = incident_id AND a.status = 'firing';
    END IF;

    INSERT INTO deliveries (incident_id, status, alerts, new_alerts, resolved_alerts,
                            truncated_alerts, duplicate)
    VALUES (incident_id, p_status, cardinality(p_fingerprints), new_alerts, resolved_alerts,
            p_truncated_alerts, duplicate);

    -- Schedule, or close.
    timers_scheduled := 0;
    timers_cancelled := 0;
    IF duplicate THEN
        RETURN;
    END IF;

    IF incident_resolved THEN
        IF NOT new_incident THEN
            SELECT c.cancelled, c.scheduled INTO timers_cancelled, timers_scheduled
              FROM medic_close_timers(incident_id, 'resolved') c;
        END IF;
        RETURN;
    END IF;

    IF cardinality(p_timer_kinds) = 0 OR NOT (new_incident OR new_alerts > 0) THEN
        RETURN;
    END IF;
    IF new_incident THEN
        -- Firing (a new resolved one returned above), and nobody else sees it before commit.
        v_status := 'firing';
        v_acked := NULL;
    ELSE
        -- Locked so that an acknowledgement in flight either sees these timers or is seen here.
        SELECT i.status, i.created_at, i.acked_at INTO v_status, v_created, v_acked
          FROM incidents i WHERE i.id = incident_id FOR UPDATE;
    END IF;
    IF v_status = 'firing' AND v_acked IS NULL THEN
        INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at,
                            repeat_every, subject, payload)
        SELECT incident_id, t.kind, t.rule, t.step, t.notifier, t.channel,
               v_created + t.after_ms * interval '1 millisecond',
               v_created + t.after_ms * interval '1 millisecond',
               t.repeat_ms * interval '1 millisecond', t.subject, t.payload
          FROM unnest(p_timer_kinds, p_timer_rules, p_timer_steps, p_timer_notifiers,
                      p_timer_channels, p_timer_after_ms, p_timer_repeat_ms, p_timer_subjects,
                      p_timer_payloads)
               AS t (kind, rule, step, notifier, channel, after_ms, repeat_ms, subject, payload)
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS timers_scheduled = ROW_COUNT;
        IF timers_scheduled > 0 THEN
            PERFORM pg_notify('medic_timers', '');
        END IF;
    END IF;
END
$$;
