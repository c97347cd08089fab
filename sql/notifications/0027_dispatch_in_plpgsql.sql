-- The functions that queue work messages in PL/pgSQL instead of SQL: the same outbox rows, the same NOTIFY, the same
-- results. A SQL-language function of several statements is parsed, analysed and planned again on every call
-- (PostgreSQL 15 keeps no plans for it). The gateway calls dispatch_jobs once per group commit: pg_stat_statements put
-- 120 µs of PostgreSQL's time per accepted email in the call, 70 of them in its INSERT (docs/benchmarks.md, thirteenth
-- round). The scheduler and the rescuer call dispatch_job once per row they make due, and every failed attempt that
-- ends a job calls dead_letter_job. PL/pgSQL keeps the plans of its statements for the session.
CREATE OR REPLACE FUNCTION dispatch_jobs(p_job_ids bigint[]) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (routing_key, message_id, correlation_id, priority, payload)
    SELECT j.queue, j.id::text, n.correlation_id, j.priority,
           jsonb_build_object('notification_id', n.id, 'job_id', j.id, 'user_id', n.user_id,
                              'template_code', n.template_code, 'variables', n.variables, 'request_id', n.request_id,
                              'priority', n.priority, 'metadata', n.metadata, 'attempt', j.attempt)
    FROM jobs j JOIN notifications n ON n.id = j.notification_id
    WHERE j.id = ANY (p_job_ids)
    ORDER BY j.id;
    PERFORM pg_notify('outbox', '');
    RETURN cardinality(p_job_ids);
END $$;

-- One job's message is built by dispatch_jobs too: one place builds every job's queue message.
CREATE OR REPLACE FUNCTION dispatch_job(p_job_id bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    PERFORM dispatch_jobs(ARRAY[p_job_id]);
    RETURN p_job_id;
END $$;

CREATE OR REPLACE FUNCTION dead_letter_job(p_job_id bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (routing_key, message_id, correlation_id, priority, payload)
    SELECT 'failed', 'dead-' || j.id || '-' || j.attempt, n.correlation_id, 0,
           jsonb_build_object('notification_id', n.id, 'job_id', j.id, 'channel', j.queue, 'user_id', n.user_id,
                              'template_code', n.template_code, 'request_id', n.request_id, 'attempts', j.attempt,
                              'errors', j.errors, 'failed_at', j.finalized_at)
    FROM jobs j JOIN notifications n ON n.id = j.notification_id
    WHERE j.id = p_job_id;
    PERFORM pg_notify('outbox', '');
    RETURN p_job_id;
END $$;
