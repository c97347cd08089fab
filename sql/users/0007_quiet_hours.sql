-- Quiet hours: a user's time zone (IANA name) and, per channel, a local window in which non-urgent notifications
-- wait for its end: {"email": {"start": "22:00", "end": "07:00"}, …}.
ALTER TABLE users
    ADD COLUMN time_zone text,
    ADD COLUMN quiet_hours jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(quiet_hours) = 'object');
COMMENT ON COLUMN users.time_zone IS 'IANA time zone name (Europe/Berlin); quiet hours are read in it (UTC when NULL).';
COMMENT ON COLUMN users.quiet_hours IS 'Per channel (email, push, sms): {"start": "HH:MM", "end": "HH:MM"} local time; non-urgent notifications falling inside are held until the end.';
