-- People in control: remediation ladders with verification, approval of risky steps,
-- maintenance windows, and a pause switch. medic_decide_remediation and medic_close_timers
-- have their current definitions here.

ALTER TABLE remediations DROP CONSTRAINT remediations_result_known;
ALTER TABLE remediations ADD CONSTRAINT remediations_result_known CHECK (result IN (
    'running', 'success', 'failure', 'dry_run', 'skipped_cooldown', 'skipped_budget',
    'skipped_resolved', 'skipped_namespace', 'skipped_pdb', 'skipped_flapping',
    'skipped_acknowledged', 'skipped_noop', 'skipped_invalid', 'awaiting_approval',
    'skipped_paused', 'skipped_maintenance', 'skipped_unapproved', 'skipped_rejected',
    'skipped_min_healthy'));

-- A rule's `remediate:` is a ladder of steps (1 for the first); each step is decided once per
-- alert episode. Rows of the previous version are step 1.
ALTER TABLE remediations
    ADD COLUMN step          integer     NOT NULL DEFAULT 1,
    -- Whether the alert episode resolved within the step's verify_within.
    ADD COLUMN verification  text        NOT NULL DEFAULT 'none'
                             CHECK (verification IN ('none', 'pending', 'fixed', 'not_fixed')),
    -- The parameters rendered for the alert, and for approval what a dry run says it would do.
    ADD COLUMN params        jsonb       NOT NULL DEFAULT '{}',
    ADD COLUMN plan          text,
    -- Approval: asked when, until when; who decided (approved true or false), when and why.
    ADD COLUMN requested_at  timestamptz,
    ADD COLUMN expires_at    timestamptz,
    ADD COLUMN approved      boolean,
    ADD COLUMN decided_by    text,
    ADD COLUMN decided_role  text,
    ADD COLUMN decided_at    timestamptz,
    ADD COLUMN decision_note text;
ALTER TABLE remediations DROP CONSTRAINT remediations_rule_episode_key;
ALTER TABLE remediations ADD CONSTRAINT remediations_step_once UNIQUE (rule, episode, step);
CREATE INDEX remediations_awaiting ON remediations (requested_at) WHERE result = 'awaiting_approval';

-- 'verify' checks a step's effect when its verify_within is up; 'approval' asks the rule's
-- channels to approve a step.
ALTER TABLE timers DROP CONSTRAINT timers_kind_check;
ALTER TABLE timers ADD CONSTRAINT timers_kind_check CHECK (kind IN (
    'opened', 'escalation', 'acknowledged', 'resolved', 'remediation', 'remediated', 'verify',
    'approval'));
-- The maintenance window holding this timer's message, if one does.
ALTER TABLE timers ADD COLUMN held_by bigint;

-- 'muted': a message held by a maintenance window (until its end, in `error`).
ALTER TABLE timer_attempts DROP CONSTRAINT timer_attempts_result_known;
ALTER TABLE timer_attempts ADD CONSTRAINT timer_attempts_result_known CHECK (result IN (
    'sent', 'retry', 'failed', 'gave_up', 'muted'));

ALTER TABLE audit_events DROP CONSTRAINT audit_events_action_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_action_check CHECK (action IN (
    'acknowledge', 'approve', 'reject', 'pause', 'resume', 'maintenance_start',
    'maintenance_end'));

-- Maintenance windows: while one covers an alert (Alertmanager matchers, all must hold), what
-- it mutes is held: `remediation` (skipped_maintenance) and `pages` (messages and escalations
-- wait for its end). Ending one early records when (`ended_at`) and by whom.
CREATE TABLE maintenance_windows (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    matchers   text[]      NOT NULL CHECK (cardinality(matchers) > 0),
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL CHECK (ends_at > starts_at),
    mute       text[]      NOT NULL CHECK (cardinality(mute) > 0
                                           AND mute <@ ARRAY['remediation', 'pages']),
    reason     text        NOT NULL CHECK (reason <> ''),
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    ended_at   timestamptz,
    ended_by   text
);
CREATE INDEX maintenance_windows_by_end ON maintenance_windows (ends_at);

-- The pause switch: while its one row exists (and `until`, if set, is ahead), every
-- remediation decided, in every replica, is skipped_paused.
CREATE TABLE remediation_pause (
    only_row  boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    paused_by text        NOT NULL,
    role      text        NOT NULL,
    reason    text        NOT NULL CHECK (reason <> ''),
    until     timestamptz,
    paused_at timestamptz NOT NULL DEFAULT now()
);

-- Decides whether a remediation step may act now, and records the decision, in one
-- transaction serialised per target (an advisory lock), so two replicas cannot both pass the
-- checks. Returns the remediation's id and one of: act, dry_run, busy (another action on the
-- target, or this one, is running: try later), duplicate (already decided), interrupted (the
-- action ran past action_timeout without an outcome: its replica died; recorded as a failure
-- with `summary`, not retried, as it may have happened), awaiting_approval (a person must
-- decide, until `expires_at`: come back then, or when woken), or a skipped_* result (or
-- failure, when the caller passes one in p_skip).
--
-- A step with p_approval is checked against every guard rail when its turn comes (no person
-- is asked for what would be skipped anyway), recorded as awaiting_approval, and checked
-- again when a person approves it; a rejection or the expiry is recorded here.
CREATE FUNCTION medic_decide_remediation(
    p_incident        bigint,
    p_rule            text,
    p_step            integer,
    p_action          text,
    p_target          text,
    p_episode         text,
    p_fingerprint     text,
    p_starts_at       timestamptz,
    p_skip            text,
    p_dry_run         boolean,
    p_approval        boolean,
    p_approval_timeout_ms bigint,
    p_cooldown_ms     bigint,
    p_target_budget   integer, p_target_window_ms bigint,
    p_rule_budget     integer, p_rule_window_ms   bigint,
    p_global_budget   integer, p_global_window_ms bigint,
    p_flap_max        integer, p_flap_window_ms   bigint,
    p_action_timeout_ms bigint,
    OUT remediation_id bigint,
    OUT decision       text,
    OUT summary        text,
    OUT expires_at     timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    v_existing remediations%ROWTYPE;
    v_approved boolean := false;
    v_incident incidents%ROWTYPE;
    v_status   text;
    v_fires    integer;
    ms         constant interval := interval '1 millisecond';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_target, 0));
    -- The per-rule and global budgets are shared by every target: every decision also takes
    -- the budgets' lock (always after its target's, so no two decisions wait on each other in
    -- a circle), so decisions for different targets cannot both see room for one more action.
    PERFORM pg_advisory_xact_lock(hashtextextended('medic:remediation-budgets', 0));

    SELECT * INTO v_existing FROM remediations r
     WHERE r.rule = p_rule AND r.episode = p_episode AND r.step = p_step FOR UPDATE;
    IF FOUND THEN
        remediation_id := v_existing.id;
        expires_at := v_existing.expires_at;
        -- Still within its time: the replica acting is alive (its timer's lease ran out first).
        IF v_existing.result = 'running' AND v_existing.started_at > now() - p_action_timeout_ms * ms THEN
            decision := 'busy';
            RETURN;
        ELSIF v_existing.result = 'running' THEN
            summary := 'interrupted: the replica acting stopped; not retried, as the action may have happened';
            UPDATE remediations r SET result = 'failure', finished_at = now(), summary = summary
             WHERE r.id = v_existing.id;
            decision := 'interrupted';
            RETURN;
        ELSIF v_existing.result <> 'awaiting_approval' THEN
            decision := 'duplicate';
            RETURN;
        ELSIF v_existing.approved IS NULL AND v_existing.expires_at > now() THEN
            decision := 'awaiting_approval';
            RETURN;
        ELSIF v_existing.approved IS NULL OR NOT v_existing.approved THEN
            decision := CASE WHEN v_existing.approved IS NULL THEN 'skipped_unapproved'
                             ELSE 'skipped_rejected' END;
            UPDATE remediations r SET result = decision WHERE r.id = v_existing.id;
            RETURN;
        END IF;
        -- Approved: every guard rail again, now.
        v_approved := true;
    END IF;

    SELECT * INTO v_incident FROM incidents i WHERE i.id = p_incident;
    SELECT a.status INTO v_status FROM alerts a
     WHERE a.group_id = v_incident.group_id AND a.fingerprint = p_fingerprint AND a.starts_at = p_starts_at;
    SELECT count(*) INTO v_fires FROM alerts a
     WHERE a.group_id = v_incident.group_id AND a.fingerprint = p_fingerprint
       AND a.starts_at > now() - p_flap_window_ms * ms;

    decision := CASE
        WHEN v_status IS DISTINCT FROM 'firing' OR v_incident.status <> 'firing' THEN 'skipped_resolved'
        WHEN v_incident.acked_at IS NOT NULL THEN 'skipped_acknowledged'
        WHEN EXISTS (SELECT 1 FROM remediation_pause p WHERE p.until IS NULL OR p.until > now())
             THEN 'skipped_paused'
        WHEN p_skip IS NOT NULL THEN p_skip
        WHEN v_fires > p_flap_max THEN 'skipped_flapping'
        WHEN EXISTS (SELECT 1 FROM remediations r WHERE r.target = p_target AND r.result = 'running'
                        AND r.started_at > now() - p_action_timeout_ms * ms) THEN 'busy'
        WHEN EXISTS (SELECT 1 FROM remediations r WHERE r.target = p_target AND r.acted
                        AND r.started_at > now() - p_cooldown_ms * ms) THEN 'skipped_cooldown'
        WHEN (SELECT count(*) FROM remediations r WHERE r.target = p_target AND r.acted
                 AND r.started_at > now() - p_target_window_ms * ms) >= p_target_budget
          OR (SELECT count(*) FROM remediations r WHERE r.rule = p_rule AND r.acted
                 AND r.started_at > now() - p_rule_window_ms * ms) >= p_rule_budget
          OR (SELECT count(*) FROM remediations r WHERE r.acted
                 AND r.started_at > now() - p_global_window_ms * ms) >= p_global_budget
             THEN 'skipped_budget'
        WHEN p_approval AND NOT v_approved THEN 'awaiting_approval'
        WHEN p_dry_run THEN 'dry_run'
        ELSE 'act'
    END;
    IF decision = 'busy' THEN
        RETURN;
    END IF;

    IF v_approved THEN
        UPDATE remediations r
           SET result = CASE WHEN decision IN ('act', 'dry_run') THEN 'running' ELSE decision END,
               acted = decision = 'act', dry_run = p_dry_run, started_at = now()
         WHERE r.id = remediation_id;
        RETURN;
    END IF;
    IF decision = 'awaiting_approval' THEN
        expires_at := now() + p_approval_timeout_ms * ms;
    END IF;
    -- finished_at stays empty until the caller records the outcome and its summary.
    INSERT INTO remediations (incident_id, rule, step, action, target, episode, result, acted,
                              dry_run, requested_at, expires_at)
    VALUES (p_incident, p_rule, p_step, p_action, p_target, p_episode,
            CASE WHEN decision IN ('act', 'dry_run') THEN 'running' ELSE decision END,
            decision = 'act', p_dry_run,
            CASE WHEN decision = 'awaiting_approval' THEN now() END, expires_at)
    RETURNING id INTO remediation_id;
END
$$;

-- Stops an incident's pending escalations and remediations, closes its requests for approval
-- (no one need decide on a resolved or acknowledged incident), and announces `p_kind`
-- ('acknowledged' or 'resolved') to every notifier that heard of the incident.
CREATE OR REPLACE FUNCTION medic_close_timers(p_incident bigint, p_kind text,
                                              OUT cancelled integer, OUT scheduled integer)
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE timers t SET state = 'cancelled', updated_at = now()
     WHERE t.incident_id = p_incident AND t.state = 'pending'
       AND t.kind IN ('escalation', 'remediation') AND t.claim IS NULL;
    GET DIAGNOSTICS cancelled = ROW_COUNT;

    UPDATE remediations r
       SET result = CASE WHEN p_kind = 'resolved' THEN 'skipped_resolved' ELSE 'skipped_acknowledged' END,
           summary = 'request closed: the incident was ' || p_kind || ' before anyone decided',
           finished_at = now()
     WHERE r.incident_id = p_incident AND r.result = 'awaiting_approval';

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
