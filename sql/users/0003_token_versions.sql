-- A user's access tokens carry the user's token version; changing the password or the email, or logging out,
-- raises it, and every token issued before stops working.
ALTER TABLE users ADD COLUMN token_version integer NOT NULL DEFAULT 0;

COMMENT ON COLUMN users.token_version IS 'raised by a password or email change and by logout: tokens carrying an older version are refused';
