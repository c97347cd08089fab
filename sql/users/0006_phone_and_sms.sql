-- SMS: a user's phone number (E.164, one per user), whether it is verified, and the sms channel preference.
ALTER TABLE users
    ADD COLUMN phone text CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    ADD COLUMN phone_verified boolean NOT NULL DEFAULT false,
    ADD COLUMN sms_enabled boolean NOT NULL DEFAULT true;
COMMENT ON COLUMN users.phone IS 'The number SMS goes to, E.164 (+ country code and number); phone_verified says a service confirmed the user holds it.';

ALTER TABLE category_preferences DROP CONSTRAINT category_preferences_channel_check;
ALTER TABLE category_preferences ADD CONSTRAINT category_preferences_channel_check CHECK (channel IN ('email', 'push', 'sms'));
