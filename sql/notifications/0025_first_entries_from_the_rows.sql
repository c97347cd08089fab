-- The first entry of a notification's history (none → pending, "accepted") and of its job's (none → available or
-- scheduled, "accepted") say nothing that the notification and job rows do not say themselves: the time is their
-- created_at, the job's first state follows from send_at, the cause from stale_data_age_s. Written by triggers, they
-- were two of the five rows every create wrote, with their index entries and their trigger statements
-- (docs/benchmarks.md, eighth round). They are no longer stored: the views notification_history and job_history give
-- the whole history, their first entry derived from the rows (id 0, so that it sorts first). Notifications accepted
-- before this migration keep their stored first entries, and the views show those instead.
--
-- One exception: for a client with an active webhook endpoint that asks for `pending`, the accepted event is still
-- stored, because the webhook carries the event's id (event_id) and the history row is what gives it one.
--
-- The first statement takes the only table lock of this migration (jobs), so it cannot deadlock with a live worker.
DROP TRIGGER jobs_transition_inserted ON jobs;
DROP FUNCTION record_job_transitions_inserted();

CREATE FUNCTION accepted_cause(p_stale_data_age_s integer) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_stale_data_age_s IS NULL THEN 'accepted'
                ELSE 'accepted against user and template data ' || p_stale_data_age_s
                     || ' s old (the user or template service was unavailable)' END
$$;
COMMENT ON FUNCTION accepted_cause(integer) IS 'The cause of a notification''s first history entry, from its stale_data_age_s.';

CREATE OR REPLACE FUNCTION record_notification_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhook_endpoints WHERE active AND 'pending' = ANY (events)) THEN
        INSERT INTO notification_events (notification_id, from_status, to_status, cause)
        SELECT n.id, NULL, n.status, accepted_cause(n.stale_data_age_s)
        FROM inserted n
        WHERE EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.client = n.client AND e.active AND n.status = ANY (e.events));
    END IF;
    RETURN NULL;
END $$;

CREATE VIEW notification_history AS
SELECT n.id AS notification_id, 0::bigint AS id, NULL::text AS from_status, 'pending'::text AS to_status,
       accepted_cause(n.stale_data_age_s) AS cause, n.created_at AS at
FROM notifications n
WHERE NOT EXISTS (SELECT 1 FROM notification_events e WHERE e.notification_id = n.id AND e.from_status IS NULL)
UNION ALL
SELECT e.notification_id, e.id, e.from_status, e.to_status, e.cause, e.at FROM notification_events e;
COMMENT ON VIEW notification_history IS 'Every status change of each notification, the first (accepted) included; ORDER BY id gives the order.';

CREATE VIEW job_history AS
SELECT j.id AS job_id, 0::bigint AS id, NULL::text AS from_state,
       CASE WHEN n.send_at > j.created_at THEN 'scheduled' ELSE 'available' END AS to_state,
       0 AS attempt, 'accepted'::text AS cause, j.created_at AS at
FROM jobs j JOIN notifications n ON n.id = j.notification_id
WHERE NOT EXISTS (SELECT 1 FROM job_transitions t WHERE t.job_id = j.id AND t.from_state IS NULL)
UNION ALL
SELECT t.job_id, t.id, t.from_state, t.to_state, t.attempt, t.cause, t.at FROM job_transitions t;
COMMENT ON VIEW job_history IS 'Every state change of each job, the first (accepted) included; ORDER BY id gives the order.';

COMMENT ON TABLE notification_events IS 'The status changes of each notification after it was accepted (and, before sql/notifications/0025 or for clients with a webhook for pending, the accepted event itself). notification_history shows the whole history.';
COMMENT ON TABLE job_transitions IS 'The state changes of each job after it was created (before sql/notifications/0025, its first state too). job_history shows the whole life of a job.';
