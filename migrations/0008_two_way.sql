-- Two-way: people answer from Slack and PagerDuty, and silence in Alertmanager.

-- Which way an action came (`via`: api, slack, pagerduty, console), apart from how its author
-- was authenticated (the `via` column of audit_events, shown as `auth`: token, proxy,
-- anonymous, or the integration's signature).
ALTER TABLE audit_events ADD COLUMN channel text NOT NULL DEFAULT 'api'
    CHECK (channel IN ('api', 'slack', 'pagerduty', 'console'));
ALTER TABLE audit_events DROP CONSTRAINT audit_events_via_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_via_check CHECK (via IN (
    'token', 'proxy', 'anonymous', 'slack', 'pagerduty'));
ALTER TABLE audit_events DROP CONSTRAINT audit_events_action_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_action_check CHECK (action IN (
    'acknowledge', 'approve', 'reject', 'pause', 'resume', 'maintenance_start',
    'maintenance_end', 'silence', 'unsilence', 'resolve_elsewhere'));
ALTER TABLE incidents ADD COLUMN acked_via text;

-- The one Slack message per incident and slack_app notifier, recorded as soon as Slack
-- answers the post, before anything depends on it: later states update it, the timeline
-- goes to its thread.
CREATE TABLE slack_messages (
    incident_id bigint      NOT NULL REFERENCES incidents (id),
    notifier    text        NOT NULL,
    channel     text        NOT NULL,
    ts          text        NOT NULL,
    posted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (incident_id, notifier)
);

-- The Alertmanager silence made for an incident (the latest), until it ends or is expired.
CREATE TABLE incident_silences (
    incident_id bigint      NOT NULL REFERENCES incidents (id),
    silence_id  text        NOT NULL,
    created_by  text        NOT NULL,
    ends_at     timestamptz NOT NULL,
    note        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expired_at  timestamptz,
    PRIMARY KEY (incident_id, silence_id)
);
