-- The on-call console's sign-in sessions. A browser that signs in with a user's token holds a
-- random session id in an HttpOnly cookie; only the id's SHA-256 is kept here, so reading this
-- table gives no session away. The user is kept by name, and their role is looked up in the
-- settings on every request: removing a user from the settings ends their sessions. Each
-- session has its own CSRF token, which every form that changes state carries.
CREATE TABLE console_sessions (
    id_hash    bytea       PRIMARY KEY CHECK (length(id_hash) = 32),
    user_name  text        NOT NULL,
    csrf       text        NOT NULL,
    address    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
