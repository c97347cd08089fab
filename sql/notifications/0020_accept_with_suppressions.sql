-- accept_notifications with the suppression list checked in the same statement: p_check_addresses holds, per item,
-- the address to look up ('' : none); an item whose address is suppressed is not written and comes back with the
-- reason in `suppressed` (created_at and job_id NULL). A group of single creates is then BEGIN, this, COMMIT: one
-- round trip fewer than a lookup of its own. The earlier versions stay for gateways of earlier releases during a
-- rolling upgrade.
CREATE FUNCTION accept_notifications(
    p_ids uuid[], p_clients text[], p_request_ids text[], p_hashes text[], p_channels text[], p_user_ids uuid[],
    p_codes text[], p_languages text[], p_variables text[], p_metadata text[], p_priorities int[], p_send_ats text[],
    p_correlation_ids text[], p_versions int[], p_stale_ages int[], p_deliver_to text[], p_recipients text[],
    p_check_addresses text[], p_max_attempts int
) RETURNS TABLE (notification_id uuid, created_at timestamptz, job_id bigint, suppressed text) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_ids uuid[];
    v_created timestamptz[];
    v_jobs bigint[];
    v_due bigint[];
    v_suppressed uuid[];
    v_reasons text[];
BEGIN
    SELECT array_agg(t.id), array_agg(s.reason)
    INTO v_suppressed, v_reasons
    FROM unnest(p_ids, p_check_addresses) AS t(id, address)
    JOIN suppressions s ON s.address = lower(btrim(t.address))
    WHERE t.address <> '';

    WITH n AS (
        INSERT INTO notifications (id, client, request_id, payload_hash, channel, user_id, template_code, language,
                                   variables, metadata, priority, send_at, correlation_id, template_version, stale_data_age_s,
                                   deliver_to, recipient)
        SELECT t.id, t.client, t.request_id, t.payload_hash, t.channel,
               NULLIF(t.user_id, '00000000-0000-0000-0000-000000000000'::uuid), t.template_code, NULLIF(t.language, ''),
               t.variables::jsonb, NULLIF(t.metadata, '')::jsonb, t.priority, NULLIF(t.send_at, '')::timestamptz,
               t.correlation_id, t.template_version, NULLIF(t.stale_age, -1), NULLIF(t.deliver_to, ''),
               NULLIF(t.recipient, '')::jsonb
        FROM unnest(p_ids, p_clients, p_request_ids, p_hashes, p_channels, p_user_ids, p_codes, p_languages, p_variables,
                    p_metadata, p_priorities, p_send_ats, p_correlation_ids, p_versions, p_stale_ages, p_deliver_to, p_recipients)
             WITH ORDINALITY
             AS t(id, client, request_id, payload_hash, channel, user_id, template_code, language, variables, metadata,
                  priority, send_at, correlation_id, template_version, stale_age, deliver_to, recipient, ordinal)
        WHERE v_suppressed IS NULL OR t.id <> ALL (v_suppressed)
        ORDER BY t.ordinal
        ON CONFLICT (client, request_id) DO NOTHING
        RETURNING id, created_at, channel, priority, send_at
    ), j AS (
        INSERT INTO jobs (notification_id, queue, state, priority, run_at, max_attempts)
        SELECT n.id, n.channel, CASE WHEN n.send_at > now() THEN 'scheduled' ELSE 'available' END, n.priority,
               COALESCE(n.send_at, now()), p_max_attempts
        FROM n ORDER BY n.priority DESC, n.id
        RETURNING id, notification_id, state
    )
    SELECT array_agg(n.id), array_agg(n.created_at), array_agg(j.id), array_agg(j.id ORDER BY j.id) FILTER (WHERE j.state = 'available')
    INTO v_ids, v_created, v_jobs, v_due
    FROM j JOIN n ON n.id = j.notification_id;
    IF v_due IS NOT NULL THEN
        PERFORM dispatch_jobs(v_due);
    END IF;
    RETURN QUERY SELECT w.id, w.created, w.job, NULL::text FROM unnest(v_ids, v_created, v_jobs) AS w(id, created, job);
    RETURN QUERY SELECT r.id, NULL::timestamptz, NULL::bigint, r.reason FROM unnest(v_suppressed, v_reasons) AS r(id, reason);
END $$;
COMMENT ON FUNCTION accept_notifications(uuid[], text[], text[], text[], text[], uuid[], text[], text[], text[], text[], int[], text[], text[], int[], int[], text[], text[], text[], int)
    IS 'The gateway''s write of accepted notifications with their jobs and queue messages, in one statement, leaving out (and answering with the reason) those whose address is on the suppression list.';
