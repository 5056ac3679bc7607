-- Prove it helped: rules that watch before they act (`mode: observe`), and a step's evidence
-- (`verify_query`).

-- A rule in `mode: observe` records what its steps would have done as `observed`, with the
-- plan; nothing is changed. Every step remembers the mode it was decided in, so that a rule
-- watched for a week and then let act reads as two records, and a demotion counts only what
-- acted.
ALTER TABLE remediations DROP CONSTRAINT remediations_result_known;
ALTER TABLE remediations ADD CONSTRAINT remediations_result_known CHECK (result IN (
    'running', 'success', 'failure', 'dry_run', 'skipped_cooldown', 'skipped_budget',
    'skipped_resolved', 'skipped_namespace', 'skipped_pdb', 'skipped_flapping',
    'skipped_acknowledged', 'skipped_noop', 'skipped_invalid', 'awaiting_approval',
    'skipped_paused', 'skipped_maintenance', 'skipped_unapproved', 'skipped_rejected',
    'skipped_min_healthy', 'skipped_gitops', 'observed'));
ALTER TABLE remediations
    ADD COLUMN mode text NOT NULL DEFAULT 'act' CONSTRAINT remediations_mode_check CHECK (mode IN ('act', 'observe')),
    -- The step's verify_query and what it read before acting and when verified.
    ADD COLUMN evidence jsonb;

-- Steps observed since `p_since`, on `p_target` or by `p_rule` when given: what an observed
-- step's cooldown and budgets count besides the actions. Asked only for a rule that observes,
-- so that a decision to act reads the same rows, through the same indexes, as before.
CREATE INDEX remediations_observed ON remediations (started_at DESC) WHERE result = 'observed';
CREATE FUNCTION medic_observed(p_target text, p_rule text, p_since timestamptz) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM remediations r
     WHERE r.result = 'observed' AND r.started_at > p_since
       AND (p_target IS NULL OR r.target = p_target) AND (p_rule IS NULL OR r.rule = p_rule)
$$;

-- Decides as migrations/0007's function did, and records the decision. With p_observe (a
-- rule in `mode: observe`) every guard rail decides as usual, then: no person is asked
-- (approval is noted by the caller), and a step let act is `observe` (recorded `running`, then
-- `observed`, with acted false: it never counts against what acts). For an observed step's own
-- cooldown and budgets, the steps observed before it count as if they had acted, so that it
-- records what would have run, not more.
DROP FUNCTION medic_decide_remediation(bigint, text, integer, text, text, text, text, timestamptz, text,
    boolean, boolean, bigint, bigint, integer, bigint, integer, bigint, integer, bigint, integer, bigint,
    bigint);
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
    p_observe         boolean DEFAULT false,
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
    v_mode     text := CASE WHEN p_observe THEN 'observe' ELSE 'act' END;
    ms         constant interval := interval '1 millisecond';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_target, 0));
    PERFORM pg_advisory_xact_lock(hashtextextended('medic:remediation-budgets', 0));

    SELECT * INTO v_existing FROM remediations r
     WHERE r.rule = p_rule AND r.episode = p_episode AND r.step = p_step FOR UPDATE;
    IF FOUND THEN
        remediation_id := v_existing.id;
        expires_at := v_existing.expires_at;
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
        ELSIF v_existing.approved IS NULL AND v_existing.expires_at > now() AND NOT p_observe THEN
            decision := 'awaiting_approval';
            RETURN;
        ELSIF (v_existing.approved IS NULL AND NOT p_observe) OR NOT v_existing.approved THEN
            decision := CASE WHEN v_existing.approved IS NULL THEN 'skipped_unapproved'
                             ELSE 'skipped_rejected' END;
            UPDATE remediations r SET result = decision WHERE r.id = v_existing.id;
            RETURN;
        END IF;
        -- Approved (or, the rule now only observing, nobody need answer): every guard rail
        -- again, now.
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
                        AND r.started_at > now() - p_cooldown_ms * ms)
          OR CASE WHEN p_observe THEN medic_observed(p_target, NULL, now() - p_cooldown_ms * ms) > 0
                  ELSE false END
             THEN 'skipped_cooldown'
        WHEN (SELECT count(*) FROM remediations r WHERE r.target = p_target AND r.acted
                 AND r.started_at > now() - p_target_window_ms * ms)
             + CASE WHEN p_observe THEN medic_observed(p_target, NULL, now() - p_target_window_ms * ms)
                    ELSE 0 END >= p_target_budget
          OR (SELECT count(*) FROM remediations r WHERE r.rule = p_rule AND r.acted
                 AND r.started_at > now() - p_rule_window_ms * ms)
             + CASE WHEN p_observe THEN medic_observed(NULL, p_rule, now() - p_rule_window_ms * ms)
                    ELSE 0 END >= p_rule_budget
          OR (SELECT count(*) FROM remediations r WHERE r.acted
                 AND r.started_at > now() - p_global_window_ms * ms)
             + CASE WHEN p_observe THEN medic_observed(NULL, NULL, now() - p_global_window_ms * ms)
                    ELSE 0 END >= p_global_budget
             THEN 'skipped_budget'
        WHEN p_approval AND NOT v_approved AND NOT p_observe THEN 'awaiting_approval'
        WHEN p_observe THEN 'observe'
        WHEN p_dry_run THEN 'dry_run'
        ELSE 'act'
    END;
    IF decision = 'busy' THEN
        RETURN;
    END IF;

    IF v_approved THEN
        UPDATE remediations r
           SET result = CASE WHEN decision IN ('act', 'dry_run', 'observe') THEN 'running' ELSE decision END,
               acted = decision = 'act', dry_run = p_dry_run, started_at = now(), mode = v_mode
         WHERE r.id = remediation_id;
        RETURN;
    END IF;
    IF decision = 'awaiting_approval' THEN
        expires_at := now() + p_approval_timeout_ms * ms;
    END IF;
    -- finished_at stays empty until the caller records the outcome and its summary.
    INSERT INTO remediations (incident_id, rule, step, action, target, episode, result, acted,
                              dry_run, requested_at, expires_at, mode)
    VALUES (p_incident, p_rule, p_step, p_action, p_target, p_episode,
            CASE WHEN decision IN ('act', 'dry_run', 'observe') THEN 'running' ELSE decision END,
            decision = 'act', p_dry_run,
            CASE WHEN decision = 'awaiting_approval' THEN now() END, expires_at, v_mode)
    RETURNING id INTO remediation_id;
END
$$;
