-- A console session ends with the credential it was made from: it keeps the SHA-256 of the
-- user's token, and a request whose user's token no longer has that fingerprint (rotated,
-- emptied, deleted) ends the session. Sessions made before this migration have none and end at
-- their next request.
ALTER TABLE console_sessions ADD COLUMN credential bytea;

-- Slack's signed requests already taken, by the SHA-256 of their signature, for as long as
-- Slack's timestamp window lasts: a replay within the window is refused by every replica.
CREATE TABLE slack_requests_seen (
    signature bytea       PRIMARY KEY CHECK (length(signature) = 32),
    seen_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX slack_requests_seen_at ON slack_requests_seen (seen_at);

-- Failed console sign-ins in the last minute, by source address: the eleventh within a minute
-- is refused (429) by every replica alike.
CREATE TABLE console_login_failures (
    address text        NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_login_failures_by_address ON console_login_failures (address, at);
