-- Prove it helped: no fight with GitOps (skipped_gitops).

ALTER TABLE remediations DROP CONSTRAINT remediations_result_known;
ALTER TABLE remediations ADD CONSTRAINT remediations_result_known CHECK (result IN (
    'running', 'success', 'failure', 'dry_run', 'skipped_cooldown', 'skipped_budget',
    'skipped_resolved', 'skipped_namespace', 'skipped_pdb', 'skipped_flapping',
    'skipped_acknowledged', 'skipped_noop', 'skipped_invalid', 'awaiting_approval',
    'skipped_paused', 'skipped_maintenance', 'skipped_unapproved', 'skipped_rejected',
    'skipped_min_healthy', 'skipped_gitops'));

-- A fix must hold: after its alert resolved within verify_within, a step is `holding` until
-- the same alert (same rule, same group, same fingerprint) has stayed resolved for `hold_ms`
-- (from `held_from`, when medic recorded the resolution, until `hold_until`); then `fixed`. A
-- new episode of that alert first seen within the hold makes it `relapsed`: when
-- (`relapsed_at`), by which episode (`relapsed_by`) and in which incident
-- (`relapsed_incident`, which lists the step too).
ALTER TABLE remediations DROP CONSTRAINT remediations_verification_check;
ALTER TABLE remediations ADD CONSTRAINT remediations_verification_check CHECK (verification IN (
    'none', 'pending', 'holding', 'fixed', 'not_fixed', 'relapsed'));
ALTER TABLE remediations
    ADD COLUMN hold_ms           bigint,
    ADD COLUMN held_from         timestamptz,
    ADD COLUMN hold_until        timestamptz,
    ADD COLUMN relapsed_at       timestamptz,
    ADD COLUMN relapsed_by       text,
    ADD COLUMN relapsed_incident bigint;
CREATE INDEX remediations_held ON remediations (rule) WHERE verification IN ('pending', 'holding');
CREATE INDEX remediations_relapsed_by ON remediations (relapsed_by) WHERE relapsed_by IS NOT NULL;
CREATE INDEX remediations_relapsed_incident ON remediations (relapsed_incident)
    WHERE relapsed_incident IS NOT NULL;

-- Rules earn their autonomy: a step that relapsed or failed `remediation.demote_after.count`
-- times within its window is demoted (it needs approval, saying `reason`) until an admin
-- promotes it (audited as 'promote'). One demotion in force per rule step.
CREATE TABLE rule_demotions (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule         text        NOT NULL,
    step         integer     NOT NULL,
    reason       text        NOT NULL CHECK (reason <> ''),
    demoted_at   timestamptz NOT NULL DEFAULT now(),
    promoted_at  timestamptz,
    promoted_by  text,
    promote_note text
);
CREATE UNIQUE INDEX rule_demotions_in_force ON rule_demotions (rule, step) WHERE promoted_at IS NULL;

ALTER TABLE audit_events DROP CONSTRAINT audit_events_action_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_action_check CHECK (action IN (
    'acknowledge', 'approve', 'reject', 'pause', 'resume', 'maintenance_start',
    'maintenance_end', 'silence', 'unsilence', 'resolve_elsewhere', 'promote'));
