-- Devices (push tokens) per user, and per-category channel preferences.

CREATE TABLE devices (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id              uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platform             text NOT NULL CHECK (platform IN ('fcm', 'webpush', 'apns')),
    token                text NOT NULL,
    p256dh               text,
    auth                 text,
    active               boolean NOT NULL DEFAULT true,
    deactivated_at       timestamptz,
    deactivation_reason  text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, platform, token)
);
CREATE INDEX devices_user ON devices (user_id) WHERE active;
COMMENT ON TABLE devices IS 'Push destinations. token is the FCM registration token, the APNs device token, or the Web Push endpoint.';
COMMENT ON COLUMN devices.active IS 'False once the provider rejected the token (or the user removed it); inactive devices get no pushes.';

-- The registration-time push token becomes the user's first device.
INSERT INTO devices (user_id, platform, token)
SELECT id, 'fcm', push_token FROM users WHERE push_token IS NOT NULL AND push_token <> ''
ON CONFLICT DO NOTHING;

CREATE TABLE category_preferences (
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    category  text NOT NULL,
    channel   text NOT NULL CHECK (channel IN ('email', 'push')),
    enabled   boolean NOT NULL,
    PRIMARY KEY (user_id, category, channel)
);
COMMENT ON TABLE category_preferences IS 'Opt-outs (or opt-ins) per template category, e.g. marketing by email off; absent means the channel preference applies.';
