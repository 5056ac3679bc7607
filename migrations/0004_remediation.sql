-- Remediation: every decision about an action (taken, planned, skipped and why), shared by all
-- replicas, so that cooldowns, budgets and "one action per target" hold across them.

CREATE TABLE remediations (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id  bigint      NOT NULL REFERENCES incidents (id),
    rule         text        NOT NULL,
    action       text        NOT NULL,
    -- What the action changes, e.g. deployment/ns/name; cooldowns and budgets count per target.
    target       text        NOT NULL,
    -- The alert episode (fingerprint@startsAt) it is for.
    episode      text        NOT NULL,
    -- running, success, failure, dry_run, skipped_cooldown, skipped_budget, skipped_resolved,
    -- skipped_namespace, skipped_pdb, skipped_flapping, skipped_acknowledged
    result       text        NOT NULL,
    -- Whether it counts against cooldowns and budgets (it may have changed something).
    acted        boolean     NOT NULL,
    dry_run      boolean     NOT NULL,
    summary      text        NOT NULL DEFAULT '',
    detail       jsonb       NOT NULL DEFAULT '{}',
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    -- One decision per rule and alert episode, whichever replica makes it.
    UNIQUE (rule, episode)
);
CREATE INDEX remediations_by_target ON remediations (target, started_at DESC);
CREATE INDEX remediations_acted ON remediations (started_at DESC) WHERE acted;
CREATE INDEX remediations_by_incident ON remediations (incident_id);

-- Decides whether a remediation may act now, and records the decision, in one transaction
-- serialised per target (an advisory lock), so two replicas cannot both pass the checks.
-- Returns the remediation's id and one of: act, dry_run, busy (another action on the target,
-- or this one, is running: try later), duplicate (already decided for this episode),
-- interrupted (the action ran past action_timeout without an outcome: its replica died; not
-- retried, as it may have happened), or a skipped_* result.
CREATE FUNCTION medic_begin_remediation(
    p_incident        bigint,
    p_rule            text,
    p_action          text,
    p_target          text,
    p_episode         text,
    p_fingerprint     text,
    p_starts_at       timestamptz,
    p_skip            text,
    p_dry_run         boolean,
    p_cooldown_ms     bigint,
    p_target_budget   integer, p_target_window_ms bigint,
    p_rule_budget     integer, p_rule_window_ms   bigint,
    p_global_budget   integer, p_global_window_ms bigint,
    p_flap_max        integer, p_flap_window_ms   bigint,
    p_action_timeout_ms bigint,
    OUT remediation_id bigint,
    OUT decision       text)
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    v_existing remediations%ROWTYPE;
    v_group    bigint;
    v_incident incidents%ROWTYPE;
    v_status   text;
    v_fires    integer;
    ms         constant interval := interval '1 millisecond';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_target, 0));

    SELECT * INTO v_existing FROM remediations r WHERE r.rule = p_rule AND r.episode = p_episode;
    IF FOUND THEN
        remediation_id := v_existing.id;
        -- Still within its time: the replica acting is alive (its timer's lease ran out first).
        IF v_existing.result = 'running' AND v_existing.started_at > now() - p_action_timeout_ms * ms THEN
            decision := 'busy';
            RETURN;
        END IF;
        IF v_existing.result = 'running' THEN
            UPDATE remediations SET result = 'failure', finished_at = now(),
                   summary = 'interrupted: the replica acting stopped; not retried, as the action may have happened'
             WHERE id = v_existing.id;
            decision := 'interrupted';
        ELSE
            decision := 'duplicate';
        END IF;
        RETURN;
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
        WHEN p_dry_run THEN 'dry_run'
        ELSE 'act'
    END;
    IF decision = 'busy' THEN
        RETURN;
    END IF;

    -- finished_at stays empty until the caller records the outcome and its summary.
    INSERT INTO remediations (incident_id, rule, action, target, episode, result, acted, dry_run)
    VALUES (p_incident, p_rule, p_action, p_target, p_episode,
            CASE WHEN decision IN ('act', 'dry_run') THEN 'running' ELSE decision END,
            decision = 'act', p_dry_run)
    RETURNING id INTO remediation_id;
END
$$;
