-- Users, their contact data and channel preferences.
CREATE TABLE users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name           text NOT NULL,
    email          text NOT NULL,
    password_hash  text NOT NULL,
    push_token     text,
    email_enabled  boolean NOT NULL DEFAULT true,
    push_enabled   boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

COMMENT ON TABLE users IS 'People notifications are sent to; passwords are bcrypt hashes.';
COMMENT ON COLUMN users.push_token IS 'Default push token (FCM registration token) given at registration.';
