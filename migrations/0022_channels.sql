-- Words shared with Rust are checked here as the others are: the way an acknowledgement came
-- (`domain::Surface`, the audit trail's channel, which every acknowledgement has recorded in the
-- same transaction, so existing rows hold only these words) and the channel a timer's work goes
-- by (`domain::Channel`: the notifier's type, or the remediation and context gathering that
-- send nothing).
ALTER TABLE incidents ADD CONSTRAINT incidents_acked_via_check CHECK (acked_via IN (
    'api', 'console', 'slack', 'pagerduty'));
ALTER TABLE timers ADD CONSTRAINT timers_channel_check CHECK (channel IN (
    'slack', 'slack_app', 'pagerduty', 'webhook', 'log', 'remediation', 'context'));
