-- Delivery guarantees: one dispatch function, a transition history, dead letters and their replay, operator views.

ALTER TABLE jobs ADD COLUMN attempted_via text CHECK (attempted_via IN ('broker', 'fallback'));
COMMENT ON COLUMN jobs.attempted_via IS 'How the last attempt was claimed: from a RabbitMQ message, or from PostgreSQL while the broker was down.';

CREATE INDEX outbox_unpublished_message ON outbox (message_id) WHERE published_at IS NULL;

-- Every change of a job's state, with its time and cause, written by a trigger so no code path can forget it.
CREATE TABLE job_transitions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    from_state  text,
    to_state    text NOT NULL,
    attempt     integer NOT NULL,
    cause       text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_transitions_job ON job_transitions (job_id, id);
COMMENT ON TABLE job_transitions IS 'The life of each job: one row per state change.';
COMMENT ON COLUMN job_transitions.cause IS 'Why: the error of a failed attempt, lease expired, replayed, ...';

CREATE FUNCTION record_job_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_transitions (job_id, from_state, to_state, attempt, cause) VALUES (NEW.id, NULL, NEW.state, NEW.attempt, 'accepted');
    ELSIF NEW.state IS DISTINCT FROM OLD.state THEN
        INSERT INTO job_transitions (job_id, from_state, to_state, attempt, cause)
        VALUES (NEW.id, OLD.state, NEW.state, NEW.attempt,
                CASE WHEN jsonb_array_length(NEW.errors) > jsonb_array_length(OLD.errors)
                     THEN NEW.errors -> -1 ->> 'error' ELSE current_setting('notify.cause', true) END);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER jobs_transition AFTER INSERT OR UPDATE OF state ON jobs FOR EACH ROW EXECUTE FUNCTION record_job_transition();

-- The one place a job's queue message is built: the gateway, the scheduler, the rescuer and replay all call it.
CREATE FUNCTION dispatch_job(p_job_id bigint) RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO outbox (routing_key, message_id, correlation_id, priority, payload)
    SELECT j.queue, j.id::text, n.correlation_id, j.priority,
           jsonb_build_object('notification_id', n.id, 'job_id', j.id, 'user_id', n.user_id,
                              'template_code', n.template_code, 'variables', n.variables, 'request_id', n.request_id,
                              'priority', n.priority, 'metadata', n.metadata, 'attempt', j.attempt)
    FROM jobs j JOIN notifications n ON n.id = j.notification_id
    WHERE j.id = p_job_id;
    SELECT pg_notify('outbox', '');
    SELECT p_job_id;
$$;
COMMENT ON FUNCTION dispatch_job(bigint) IS 'Queues the work message of a job through the outbox (published by the relay).';

-- A dead letter: the event on failed.queue, with the whole error history.
CREATE FUNCTION dead_letter_job(p_job_id bigint) RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO outbox (routing_key, message_id, correlation_id, priority, payload)
    SELECT 'failed', 'dead-' || j.id || '-' || j.attempt, n.correlation_id, 0,
           jsonb_build_object('notification_id', n.id, 'job_id', j.id, 'channel', j.queue, 'user_id', n.user_id,
                              'template_code', n.template_code, 'request_id', n.request_id, 'attempts', j.attempt,
                              'errors', j.errors, 'failed_at', j.finalized_at)
    FROM jobs j JOIN notifications n ON n.id = j.notification_id
    WHERE j.id = p_job_id;
    SELECT pg_notify('outbox', '');
    SELECT p_job_id;
$$;

-- Replays a dead letter: the job gets a fresh set of attempts and is dispatched again.
CREATE FUNCTION replay_dead_letter(p_notification_id uuid) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_job_id bigint;
BEGIN
    PERFORM set_config('notify.cause', 'replayed', true);
    UPDATE jobs SET state = 'available', attempt = 0, run_at = now(), finalized_at = NULL, lease_expires_at = NULL,
                    updated_at = now()
    WHERE notification_id = p_notification_id AND state = 'discarded'
    RETURNING id INTO v_job_id;
    IF v_job_id IS NULL THEN
        RETURN false;
    END IF;
    UPDATE notifications SET status = 'pending', last_error = NULL, updated_at = now() WHERE id = p_notification_id;
    PERFORM dispatch_job(v_job_id);
    RETURN true;
END $$;
COMMENT ON FUNCTION replay_dead_letter(uuid) IS 'SELECT replay_dead_letter(''<notification id>''): deliver a failed notification again.';

-- ---------------------------------------------------------------- views for operators

CREATE VIEW job_overview AS
SELECT queue, state, count(*) AS jobs,
       min(created_at) AS oldest_created_at,
       round(extract(epoch FROM now() - min(CASE WHEN state = 'available' THEN updated_at END))::numeric, 1) AS oldest_available_age_s,
       max(attempt) AS max_attempt
FROM jobs GROUP BY queue, state;
COMMENT ON VIEW job_overview IS 'Jobs by queue and state.';
COMMENT ON COLUMN job_overview.jobs IS 'How many jobs are in this state.';
COMMENT ON COLUMN job_overview.oldest_available_age_s IS 'Seconds the oldest available job has waited for a worker (queue lag).';
COMMENT ON COLUMN job_overview.max_attempt IS 'The highest attempt number among these jobs.';

CREATE VIEW stuck_jobs AS
SELECT j.id AS job_id, j.notification_id, j.queue, j.state, j.attempt, j.attempted_by, j.lease_expires_at, j.run_at,
       j.updated_at,
       CASE WHEN j.state = 'running' THEN 'lease expired: the worker is gone'
            WHEN j.state = 'available' THEN 'available for over 5 minutes: message lost or no worker'
            ELSE 'due for over 5 minutes: scheduler not running' END AS reason
FROM jobs j
WHERE (j.state = 'running' AND j.lease_expires_at < now())
   OR (j.state = 'available' AND j.updated_at < now() - interval '5 minutes')
   OR (j.state IN ('retryable', 'scheduled') AND j.run_at < now() - interval '5 minutes');
COMMENT ON VIEW stuck_jobs IS 'Jobs that should have moved on by now; the rescuer and scheduler normally clear them.';
COMMENT ON COLUMN stuck_jobs.reason IS 'Why the job counts as stuck.';

CREATE VIEW outbox_backlog AS
SELECT routing_key, count(*) AS unpublished, min(created_at) AS oldest_created_at,
       round(extract(epoch FROM now() - min(created_at))::numeric, 1) AS oldest_age_s,
       max(attempts) AS max_attempts,
       (array_agg(last_error ORDER BY id DESC) FILTER (WHERE last_error IS NOT NULL))[1] AS last_error
FROM outbox WHERE published_at IS NULL GROUP BY routing_key;
COMMENT ON VIEW outbox_backlog IS 'Messages the relay has not yet published to RabbitMQ.';
COMMENT ON COLUMN outbox_backlog.oldest_age_s IS 'Seconds the oldest unpublished message has waited (publish lag).';
COMMENT ON COLUMN outbox_backlog.last_error IS 'The latest publish failure, if any (broker down, not routed).';

CREATE VIEW dead_letters AS
SELECT n.id AS notification_id, n.client, n.request_id, n.channel, n.user_id, n.template_code, j.id AS job_id,
       j.attempt AS attempts, j.finalized_at AS failed_at, n.last_error, j.errors, n.correlation_id
FROM jobs j JOIN notifications n ON n.id = j.notification_id
WHERE j.state = 'discarded';
COMMENT ON VIEW dead_letters IS 'Notifications that failed for good; replay one with SELECT replay_dead_letter(notification_id).';
COMMENT ON COLUMN dead_letters.errors IS 'Every failed attempt: time, attempt, error, permanent.';
