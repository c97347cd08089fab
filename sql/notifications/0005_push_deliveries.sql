-- What each device's push provider said, per attempt. A push notification is `sent` when at least one device
-- accepted it in an attempt, `failed` when none could; a device whose token or subscription the provider reports
-- dead is deactivated in the user service (device_deactivated).
CREATE TABLE push_deliveries (
    id                  bigserial PRIMARY KEY,
    notification_id     uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt             int NOT NULL,
    device_id           text NOT NULL,
    platform            text NOT NULL,
    outcome             text NOT NULL CHECK (outcome IN ('accepted', 'rejected', 'failed', 'skipped')),
    provider_message_id text,
    error               text,
    device_deactivated  boolean NOT NULL DEFAULT false,
    at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX push_deliveries_notification ON push_deliveries (notification_id, id);

COMMENT ON TABLE push_deliveries IS 'one row per device per push attempt: the provider''s answer';
COMMENT ON COLUMN push_deliveries.device_id IS 'the device id in the users database';
COMMENT ON COLUMN push_deliveries.platform IS 'fcm, webpush or apns';
COMMENT ON COLUMN push_deliveries.outcome IS 'accepted (the provider took it), rejected (permanent: bad token, gone subscription, bad request), failed (transient: 429, 5xx, unreachable), skipped (no provider for the platform)';
COMMENT ON COLUMN push_deliveries.provider_message_id IS 'FCM message name or the Web Push service''s Location';
COMMENT ON COLUMN push_deliveries.device_deactivated IS 'the provider reported the token or subscription dead and the device was deactivated';
