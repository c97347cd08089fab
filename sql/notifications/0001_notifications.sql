-- The source of truth for every notification: API keys, notifications, their jobs and the outbox.

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client      text NOT NULL,
    name        text NOT NULL,
    prefix      text NOT NULL UNIQUE,
    key_hash    text NOT NULL UNIQUE,
    scopes      text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
COMMENT ON TABLE api_keys IS 'Client credentials. Only the SHA-256 of a key is stored; prefix is the visible start of the key.';
COMMENT ON COLUMN api_keys.client IS 'The calling backend; request_id is unique per client.';

CREATE TABLE notifications (
    id              uuid PRIMARY KEY,
    client          text NOT NULL,
    request_id      text NOT NULL,
    payload_hash    text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('email', 'push')),
    user_id         uuid NOT NULL,
    template_code   text NOT NULL,
    language        text,
    variables       jsonb NOT NULL,
    metadata        jsonb,
    priority        integer NOT NULL DEFAULT 0,
    send_at         timestamptz,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'retrying', 'sent', 'delivered', 'failed', 'cancelled')),
    correlation_id  text NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (client, request_id)
);
COMMENT ON TABLE notifications IS 'One row per accepted request; status is what clients see.';
COMMENT ON COLUMN notifications.payload_hash IS 'SHA-256 of the normalised request: a replayed request_id must carry the same payload.';

-- Job states, a closed set:
--   scheduled  waiting for send_at
--   available  ready to run; a broker message is on its way or a fallback worker may claim it
--   running    claimed by a worker that holds a lease until lease_expires_at
--   retryable  failed transiently; becomes available again at run_at
--   completed  delivered to the SMTP server or push provider
--   discarded  failed permanently or ran out of attempts (a dead letter)
--   cancelled  withdrawn before it ran
CREATE TABLE jobs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id   uuid NOT NULL UNIQUE REFERENCES notifications (id),
    queue             text NOT NULL CHECK (queue IN ('email', 'push')),
    state             text NOT NULL DEFAULT 'available'
                      CHECK (state IN ('scheduled', 'available', 'running', 'retryable', 'completed', 'discarded', 'cancelled')),
    priority          integer NOT NULL DEFAULT 0,
    attempt           integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL DEFAULT 8,
    run_at            timestamptz NOT NULL DEFAULT now(),
    lease_expires_at  timestamptz,
    attempted_by      text,
    errors            jsonb NOT NULL DEFAULT '[]',
    created_at        timestamptz NOT NULL DEFAULT now(),
    attempted_at      timestamptz,
    finalized_at      timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_available ON jobs (queue, priority DESC, run_at, id) WHERE state = 'available';
CREATE INDEX jobs_state_run_at ON jobs (state, run_at) WHERE state IN ('scheduled', 'retryable', 'running');
COMMENT ON TABLE jobs IS 'The work of delivering one notification. The job row decides: a worker acts only after claiming it.';
COMMENT ON COLUMN jobs.errors IS 'Every failed attempt, appended: [{"at", "attempt", "error", "permanent"}].';
COMMENT ON COLUMN jobs.lease_expires_at IS 'A running job whose lease expired belongs to a dead worker and is rescued.';

CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    routing_key     text NOT NULL,
    message_id      text NOT NULL,
    correlation_id  text NOT NULL,
    priority        integer NOT NULL DEFAULT 0,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
COMMENT ON TABLE outbox IS 'Messages committed with the state change that caused them; the relay publishes them to RabbitMQ.';
