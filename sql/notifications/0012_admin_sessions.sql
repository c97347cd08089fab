-- Operator sessions live on the server: the dashboard cookie holds a random token, this table its SHA-256. Logout
-- revokes the row, an operator removed takes their sessions along, a password reset ends them.
CREATE TABLE admin_sessions (
    token_hash  bytea PRIMARY KEY,
    admin_id    uuid NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX admin_sessions_admin ON admin_sessions (admin_id);

COMMENT ON TABLE admin_sessions IS 'operator sessions of the admin service; the token itself is never stored';
COMMENT ON COLUMN admin_sessions.token_hash IS 'SHA-256 of the session token in the dashboard cookie';
COMMENT ON COLUMN admin_sessions.revoked_at IS 'set by logout; a revoked or expired session is refused';
