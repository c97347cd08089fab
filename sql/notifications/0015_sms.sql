-- SMS, a third channel: its notifications and jobs, each provider tried (as for email), what the providers' status
-- callbacks report after the hand-over, and numbers that replied STOP.

ALTER TABLE notifications DROP CONSTRAINT notifications_channel_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_channel_check CHECK (channel IN ('email', 'push', 'sms'));
ALTER TABLE jobs DROP CONSTRAINT jobs_queue_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_queue_check CHECK (queue IN ('email', 'push', 'sms'));

-- undelivered: the SMS provider took the message but the carrier did not deliver it (its error code in the history).
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('pending', 'processing', 'retrying', 'sent', 'delivered', 'undelivered', 'bounced', 'complained', 'failed', 'cancelled'));

CREATE TABLE sms_deliveries (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id      uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt              int NOT NULL,
    provider             text NOT NULL,
    outcome              text NOT NULL CHECK (outcome IN ('accepted', 'rejected', 'failed', 'skipped')),
    provider_message_id  text,
    error_code           text,
    error                text,
    at                   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sms_deliveries_notification ON sms_deliveries (notification_id, id);
CREATE INDEX sms_deliveries_message ON sms_deliveries (provider, provider_message_id) WHERE outcome = 'accepted';
COMMENT ON TABLE sms_deliveries IS
    'Each SMS provider tried in each attempt, in chain order: accepted, rejected (permanent), failed (transient: the next one was tried), skipped (circuit open).';

-- Each status callback applied once (a provider may call twice); the latest status per message is in the history.
CREATE TABLE sms_events (
    provider             text NOT NULL,
    provider_message_id  text NOT NULL,
    status               text NOT NULL,
    notification_id      uuid,
    carrier_error_code   text,
    received_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, provider_message_id, status)
);
COMMENT ON TABLE sms_events IS 'Status callbacks of SMS providers (queued, sent, delivered, undelivered, failed), each applied once.';

-- Numbers that replied STOP are suppressed like hard-bounced addresses (the same list, reason opt_out).
ALTER TABLE suppressions DROP CONSTRAINT suppressions_reason_check;
ALTER TABLE suppressions ADD CONSTRAINT suppressions_reason_check CHECK (reason IN ('hard_bounce', 'complaint', 'manual', 'opt_out'));
COMMENT ON TABLE suppressions IS
    'Addresses and phone numbers nothing goes to: hard bounces, complaints and STOP replies reported by provider webhooks, and manual entries. The gateway refuses them (422 RECIPIENT_SUPPRESSED) and the workers check again before sending.';

-- For operators: each SMS with the provider that took it and what that provider last reported.
CREATE VIEW sms_overview AS
SELECT n.id AS notification_id, n.user_id, n.status, n.created_at, n.sent_at, d.provider, d.provider_message_id,
       e.status AS provider_status, e.carrier_error_code, e.received_at AS reported_at
FROM notifications n
LEFT JOIN LATERAL (
    SELECT provider, provider_message_id FROM sms_deliveries
    WHERE notification_id = n.id AND outcome = 'accepted' ORDER BY id DESC LIMIT 1
) d ON true
LEFT JOIN LATERAL (
    SELECT status, carrier_error_code, received_at FROM sms_events
    WHERE notification_id = n.id ORDER BY received_at DESC LIMIT 1
) e ON true
WHERE n.channel = 'sms';
COMMENT ON VIEW sms_overview IS 'Each SMS: its status, the provider that accepted it, and the provider''s last status callback (with the carrier''s error code).';
