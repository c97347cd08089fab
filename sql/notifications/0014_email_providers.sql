-- Email through an ordered chain of providers, what their event webhooks report, and the addresses never to mail again.

-- A provider's verdict after the hand-over: bounced (hard or soft, the cause says which) or complained (marked as spam).
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('pending', 'processing', 'retrying', 'sent', 'delivered', 'bounced', 'complained', 'failed', 'cancelled'));

CREATE TABLE email_deliveries (
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
CREATE INDEX email_deliveries_notification ON email_deliveries (notification_id, id);
CREATE INDEX email_deliveries_message ON email_deliveries (provider, provider_message_id) WHERE outcome = 'accepted';
COMMENT ON TABLE email_deliveries IS
    'Each provider tried in each attempt, in chain order: accepted (it sent), rejected (permanent), failed (transient: the next one was tried), skipped (its circuit was open).';

-- Global: an address that hard-bounced or complained is refused for every client, because every client sends from
-- the platform's domains and shares their reputation. Addresses are stored lower-cased.
CREATE TABLE suppressions (
    address          text PRIMARY KEY CHECK (address = lower(address)),
    reason           text NOT NULL CHECK (reason IN ('hard_bounce', 'complaint', 'manual')),
    provider         text,
    notification_id  uuid,
    detail           text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE suppressions IS
    'Addresses no email goes to: hard bounces and complaints reported by provider webhooks, and manual entries. The gateway refuses them (422 RECIPIENT_SUPPRESSED) and the email worker checks again before sending.';

-- Each provider event applied, so a webhook the provider delivers twice changes nothing the second time.
CREATE TABLE email_events (
    provider         text NOT NULL,
    event_id         text NOT NULL,
    notification_id  uuid,
    event            text NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);
COMMENT ON TABLE email_events IS 'Provider webhook events already applied (deduplication by the provider''s event id).';
