-- Operators of the admin service and dashboard. Passwords are bcrypt hashes.
CREATE TABLE admin_users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz
);
CREATE UNIQUE INDEX admin_users_email ON admin_users (lower(email));
COMMENT ON TABLE admin_users IS 'operators who log in to the admin service (notify admin create-admin)';
COMMENT ON COLUMN admin_users.password_hash IS 'bcrypt';

-- The dashboard's throughput per minute reads recent status changes.
CREATE INDEX notification_events_at ON notification_events (at);
