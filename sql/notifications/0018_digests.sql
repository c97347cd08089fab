-- Digests: notifications of a digest category (NOTIFY_DIGEST_CATEGORIES) wait for the end of their window and go out
-- as one message with the others of the same client, user, channel and template due then; the worker that claims
-- the first claims the rest with it (attempted_via 'digest').
ALTER TABLE jobs DROP CONSTRAINT jobs_attempted_via_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_attempted_via_check CHECK (attempted_via IN ('broker', 'fallback', 'digest'));
COMMENT ON COLUMN jobs.attempted_via IS
    'How the last attempt was claimed: from a RabbitMQ message, from PostgreSQL while the broker was down, or with the first notification of its digest.';
