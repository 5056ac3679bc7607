-- Escalation: acknowledgements, the timer table every replica's engine fires from, and the
-- attempts made to deliver what each timer says.

ALTER TABLE incidents
    ADD COLUMN acked_at  timestamptz,
    ADD COLUMN acked_by  text,
    ADD COLUMN ack_note  text;

-- One message to one notifier about one incident: the announcement when it opens, each
-- escalation step (repeating, if the policy says so), the acknowledgement and the resolution;
-- or one remediation of one alert episode (`subject`), and the report of what it did.
-- The unique key makes scheduling idempotent: a redelivered notification schedules nothing new.
CREATE TABLE timers (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id  bigint      NOT NULL REFERENCES incidents (id),
    kind         text        NOT NULL CHECK (kind IN ('opened', 'escalation', 'acknowledged', 'resolved',
                                                      'remediation', 'remediated')),
    rule         text        NOT NULL,
    step         integer     NOT NULL,
    -- The notifier, or the action of a remediation.
    notifier     text        NOT NULL,
    -- The notifier's type when scheduled (slack, pagerduty, webhook), or 'remediation'.
    channel      text        NOT NULL,
    -- A remediation's alert episode (fingerprint@startsAt), or the remediation a report is about.
    subject      text        NOT NULL DEFAULT '',
    -- A remediation's rendered parameters and alert.
    payload      jsonb,
    state        text        NOT NULL DEFAULT 'pending'
                             CHECK (state IN ('pending', 'done', 'cancelled', 'failed')),
    -- When this occurrence is meant to fire; lateness is measured from here.
    scheduled_at timestamptz NOT NULL,
    -- When an engine may take it: scheduled_at, then a retry's time.
    due_at       timestamptz NOT NULL,
    -- While an engine holds it: until when. A dead engine's timer is taken again after this.
    -- Not indexed, so that a claim is a HOT update that leaves every index alone.
    lease_until  timestamptz,
    repeat_every interval,
    occurrence   integer     NOT NULL DEFAULT 0,
    -- Attempts at the current occurrence.
    attempts     integer     NOT NULL DEFAULT 0,
    -- Token of the engine holding the lease; NULL when nobody does.
    claim        bigint,
    fired_at     timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (incident_id, kind, rule, step, notifier, subject)
) WITH (fillfactor = 50);  -- room on each page for the claim's HOT update
CREATE INDEX timers_due ON timers (due_at) WHERE state = 'pending';
-- Every claim and completion rewrites a row. Vacuum must never truncate the table's end: that
-- takes an exclusive lock, and every engine's claim would wait behind it.
ALTER TABLE timers SET (vacuum_truncate = false);

-- Every attempt to deliver a timer's message, whatever its result.
CREATE TABLE timer_attempts (
    timer_id    bigint      NOT NULL REFERENCES timers (id),
    occurrence  integer     NOT NULL,
    attempt     integer     NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    -- sent, retry (a retry is scheduled), failed (permanently), gave_up (retried past the horizon)
    result      text        NOT NULL,
    status_code integer,
    error       text,
    PRIMARY KEY (timer_id, occurrence, attempt)
);

-- Stops an incident's pending escalations and remediations and announces `p_kind` ('acknowledged' or
-- 'resolved') to every notifier that heard of the incident: those told when it opened and
-- those an escalation reached (PagerDuty gets its acknowledge or resolve event this way).
-- A timer being sent right now (leased) finishes; its engine does not repeat it.
CREATE FUNCTION medic_close_timers(p_incident bigint, p_kind text,
                                   OUT cancelled integer, OUT scheduled integer)
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE timers t SET state = 'cancelled', updated_at = now()
     WHERE t.incident_id = p_incident AND t.state = 'pending'
       AND t.kind IN ('escalation', 'remediation') AND t.claim IS NULL;
    GET DIAGNOSTICS cancelled = ROW_COUNT;

    INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at)
    SELECT DISTINCT ON (t.notifier) p_incident, p_kind, t.rule, 0, t.notifier, t.channel, now(), now()
      FROM timers t
     WHERE t.incident_id = p_incident
       AND (t.kind = 'opened'
            OR (t.kind = 'escalation' AND (t.fired_at IS NOT NULL OR t.attempts > 0)))
     ORDER BY t.notifier, t.id
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS scheduled = ROW_COUNT;
    IF scheduled > 0 THEN
        PERFORM pg_notify('medic_timers', '');
    END IF;
END
$$;

-- Records a notification (medic_record_notification, migrations/0002) and, in the same
-- transaction, schedules what the matching rules ask for, or closes the incident's timers.
-- Timers are scheduled only when something changed (a new incident or new alerts), only for
-- a firing, unacknowledged incident, and at most once each (the unique key), so repeats and
-- redeliveries schedule nothing. Steps are due `after` the incident opened.
CREATE FUNCTION medic_record_and_schedule(
    p_receiver           text,
    p_group_key          text,
    p_group_labels       jsonb,
    p_status             text,
    p_common_labels      jsonb,
    p_common_annotations jsonb,
    p_external_url       text,
    p_truncated_alerts   bigint,
    p_fingerprints       text[],
    p_starts_at          timestamptz[],
    p_ends_at            timestamptz[],
    p_statuses           text[],
    p_labels             jsonb[],
    p_annotations        jsonb[],
    p_generator_urls     text[],
    p_timer_kinds        text[],
    p_timer_rules        text[],
    p_timer_steps        integer[],
    p_timer_notifiers    text[],
    p_timer_channels     text[],
    p_timer_after_ms     bigint[],
    p_timer_repeat_ms    bigint[],
    p_timer_subjects     text[],
    p_timer_payloads     jsonb[],
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
    v_status  text;
    v_created timestamptz;
    v_acked   timestamptz;
BEGIN
    SELECT r.incident_id, r.new_incident, r.new_alerts, r.resolved_alerts, r.incident_resolved,
           r.duplicate
      INTO incident_id, new_incident, new_alerts, resolved_alerts, incident_resolved, duplicate
      FROM medic_record_notification(p_receiver, p_group_key, p_group_labels, p_status,
                                     p_common_labels, p_common_annotations, p_external_url,
                                     p_truncated_alerts, p_fingerprints, p_starts_at, p_ends_at,
                                     p_statuses, p_labels, p_annotations, p_generator_urls) r;
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

    -- Locked so that an acknowledgement in flight either sees these timers or is seen here.
    SELECT i.status, i.created_at, i.acked_at INTO v_status, v_created, v_acked
      FROM incidents i WHERE i.id = incident_id FOR UPDATE;
    IF v_status = 'firing' AND v_acked IS NULL AND (new_incident OR new_alerts > 0)
       AND cardinality(p_timer_kinds) > 0 THEN
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
