-- An email template's own sender and reply address (NULL: the platform's NOTIFY_MAIL_FROM / NOTIFY_MAIL_FROM_NAME, no
-- Reply-To). from_email must be on the allow-list NOTIFY_MAIL_FROM_ALLOWED, checked by the template service on write
-- and by the email worker at send time.
ALTER TABLE templates ADD COLUMN from_email text, ADD COLUMN from_name text, ADD COLUMN reply_to text;
COMMENT ON COLUMN templates.from_email IS 'Sender address of this email template (allow-listed); NULL: the platform default.';
