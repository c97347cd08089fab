-- An operator may disable a user: no notifications are accepted for or sent to them, they cannot log in, and their
-- tokens stop working (token_version moves on). Enabling them again undoes the first two.
ALTER TABLE users ADD COLUMN disabled_at timestamptz;
COMMENT ON COLUMN users.disabled_at IS 'When an operator disabled the user (NULL: enabled); a disabled user gets nothing and cannot log in.';
