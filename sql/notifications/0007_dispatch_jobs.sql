-- Queues the work messages of many jobs at once (a bulk request's, or a batch of creates) with one outbox insert
-- and one NOTIFY.
CREATE FUNCTION dispatch_jobs(p_job_ids bigint[]) RETURNS integer LANGUAGE sql AS $$
    WITH queued AS (
        INSERT INTO outbox (routing_key, message_id, correlation_id, priority, payload)
        SELECT j.queue, j.id::text, n.correlation_id, j.priority,
               jsonb_build_object('notification_id', n.id, 'job_id', j.id, 'user_id', n.user_id,
                                  'template_code', n.template_code, 'variables', n.variables, 'request_id', n.request_id,
                                  'priority', n.priority, 'metadata', n.metadata, 'attempt', j.attempt)
        FROM jobs j JOIN notifications n ON n.id = j.notification_id
        WHERE j.id = ANY (p_job_ids)
        ORDER BY j.id
        RETURNING 1
    )
    SELECT count(*)::integer FROM queued;
    SELECT pg_notify('outbox', '');
    SELECT cardinality(p_job_ids);
$$;
COMMENT ON FUNCTION dispatch_jobs(bigint[]) IS 'Queues the work messages of many jobs through the outbox (published by the relay).';
