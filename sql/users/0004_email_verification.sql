-- A new address is not used before its owner proves it: it waits in pending_email while a single-use token (only its
-- SHA-256 is stored) is mailed to it; the token's return makes it the user's address.
ALTER TABLE users ADD COLUMN pending_email text;
ALTER TABLE users ADD COLUMN email_verification_hash bytea;
ALTER TABLE users ADD COLUMN email_verification_expires_at timestamptz;
CREATE UNIQUE INDEX users_email_verification_hash_key ON users (email_verification_hash)
    WHERE email_verification_hash IS NOT NULL;

COMMENT ON COLUMN users.pending_email IS 'An address the user asked for and has not yet verified; the address in use stays email.';
COMMENT ON COLUMN users.email_verification_hash IS 'SHA-256 of the single-use token mailed to pending_email; the token itself is never stored.';
COMMENT ON COLUMN users.email_verification_expires_at IS 'When the verification token stops working.';
