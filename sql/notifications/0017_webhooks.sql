-- Status webhooks to clients: endpoints a client registered, and one delivery per status change an endpoint asked
-- for, enqueued by a trigger in the transaction of the change (an outbox: nothing committed is lost), sent by the
-- relay's webhook dispatcher with retries and backoff; a delivery out of attempts is a dead letter (discarded) that
-- an operator can replay.
CREATE TABLE webhook_endpoints (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client         text NOT NULL,
    url            text NOT NULL,
    events         text[] NOT NULL CHECK (cardinality(events) > 0),
    description    text,
    secret_sealed  bytea NOT NULL,
    secret_prefix  text NOT NULL,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    disabled_at    timestamptz
);
CREATE INDEX webhook_endpoints_client ON webhook_endpoints (client) WHERE active;
COMMENT ON TABLE webhook_endpoints IS 'Where a client wants status changes of its notifications POSTed, signed with HMAC-SHA256.';
COMMENT ON COLUMN webhook_endpoints.secret_sealed IS
    'The signing secret, sealed with AES-GCM under NOTIFY_WEBHOOK_SECRET_KEY (only admin, which seals, and the relay, which signs, hold it); shown once at creation.';

-- States as for jobs: available, running (leased), retryable (at run_at), completed, discarded (a dead letter),
-- cancelled (its endpoint was removed).
CREATE TABLE webhook_deliveries (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id       uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    notification_id   uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    event             text NOT NULL,
    payload           jsonb NOT NULL,
    state             text NOT NULL DEFAULT 'available'
                      CHECK (state IN ('available', 'running', 'retryable', 'completed', 'discarded', 'cancelled')),
    attempt           integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL DEFAULT 10,
    run_at            timestamptz NOT NULL DEFAULT now(),
    lease_expires_at  timestamptz,
    attempted_by      text,
    last_status       integer,
    errors            jsonb NOT NULL DEFAULT '[]',
    created_at        timestamptz NOT NULL DEFAULT now(),
    attempted_at      timestamptz,
    finalized_at      timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (run_at, id) WHERE state IN ('available', 'retryable');
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (lease_expires_at) WHERE state = 'running';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_notification ON webhook_deliveries (notification_id);
COMMENT ON TABLE webhook_deliveries IS 'One POST of one status change to one endpoint; errors holds every failed attempt [{"at", "attempt", "status", "error"}].';

-- One statement per batch of status changes (a bulk accept writes a thousand events in one INSERT): a single join
-- against the (small) table of active endpoints, not a query per event.
CREATE FUNCTION enqueue_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_count bigint;
BEGIN
    INSERT INTO webhook_deliveries (endpoint_id, notification_id, event, payload)
    SELECT e.id, n.id, ev.to_status,
           jsonb_build_object(
               'event', ev.to_status, 'event_id', ev.id, 'notification_id', n.id, 'request_id', n.request_id,
               'notification_type', n.channel, 'user_id', n.user_id, 'status', ev.to_status,
               'previous_status', ev.from_status, 'cause', ev.cause, 'occurred_at', ev.at)
    FROM inserted ev
    JOIN notifications n ON n.id = ev.notification_id
    JOIN webhook_endpoints e ON e.client = n.client AND e.active AND ev.to_status = ANY (e.events)
    WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE active)
    ORDER BY ev.id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 THEN
        PERFORM pg_notify('webhooks', '');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER notification_events_webhooks AFTER INSERT ON notification_events
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION enqueue_webhooks();

-- For operators: each endpoint with its deliveries by state, and the dead letters with their last error.
CREATE VIEW webhook_overview AS
SELECT e.id AS endpoint_id, e.client, e.url, e.events, e.active,
       count(d.id) FILTER (WHERE d.state = 'completed') AS completed,
       count(d.id) FILTER (WHERE d.state IN ('available', 'running', 'retryable')) AS pending,
       count(d.id) FILTER (WHERE d.state = 'discarded') AS dead_letters,
       max(d.finalized_at) FILTER (WHERE d.state = 'completed') AS last_delivered_at
FROM webhook_endpoints e LEFT JOIN webhook_deliveries d ON d.endpoint_id = e.id
GROUP BY e.id;
CREATE VIEW webhook_dead_letters AS
SELECT d.id AS delivery_id, e.client, e.url, d.notification_id, d.event, d.attempt, d.last_status,
       d.errors -> -1 ->> 'error' AS last_error, d.finalized_at
FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
WHERE d.state = 'discarded';
