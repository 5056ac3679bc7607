-- Signed identity: a person may come with a JSON Web Token from a configured issuer. The audit
-- trail says so (`via` = 'jwt', shown as `auth`) and keeps the issuer that vouched for them in
-- its own column: two issuers may each have a user of the same name, and only the issuer
-- tells them apart. Every other way of signing in has no issuer.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_via_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_via_check CHECK (via IN (
    'token', 'proxy', 'anonymous', 'slack', 'pagerduty', 'jwt'));
ALTER TABLE audit_events ADD COLUMN issuer text;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_issuer_check
    CHECK ((via = 'jwt') = (issuer IS NOT NULL));
