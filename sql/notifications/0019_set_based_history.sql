-- The status history written set-based: one INSERT … SELECT per statement that changes notifications or jobs, from
-- that statement's transition tables, instead of a PL/pgSQL call and an INSERT per row. The row triggers also made
-- the webhook trigger on notification_events (a statement trigger) run once per event; now it runs once per
-- statement too. Same rows, same causes, and still no code path can skip them (docs/benchmarks.md has the figures).
DROP TRIGGER notifications_status ON notifications;
DROP TRIGGER jobs_transition ON jobs;

CREATE FUNCTION record_notification_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification_events (notification_id, from_status, to_status, cause)
    SELECT n.id, NULL, n.status,
           CASE WHEN n.stale_data_age_s IS NULL THEN 'accepted'
                ELSE 'accepted against user and template data ' || n.stale_data_age_s
                     || ' s old (the user or template service was unavailable)' END
    FROM inserted n;
    RETURN NULL;
END $$;
CREATE TRIGGER notifications_status_inserted AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION record_notification_events_inserted();

-- A trigger with transition tables cannot name columns (UPDATE OF status): it runs after every UPDATE statement on
-- notifications and keeps the rows whose status changed.
CREATE FUNCTION record_notification_events_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification_events (notification_id, from_status, to_status, cause)
    SELECT n.id, o.status, n.status,
           COALESCE(NULLIF(current_setting('notify.cause', true), ''),
                    CASE WHEN n.status IN ('retrying', 'failed') THEN n.last_error END)
    FROM changed n JOIN previous o ON o.id = n.id
    WHERE n.status IS DISTINCT FROM o.status
    ORDER BY n.id;
    RETURN NULL;
END $$;
CREATE TRIGGER notifications_status_updated AFTER UPDATE ON notifications
    REFERENCING OLD TABLE AS previous NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION record_notification_events_updated();

CREATE FUNCTION record_job_transitions_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_transitions (job_id, from_state, to_state, attempt, cause)
    SELECT j.id, NULL, j.state, j.attempt, 'accepted' FROM inserted j;
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_transition_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION record_job_transitions_inserted();

CREATE FUNCTION record_job_transitions_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_transitions (job_id, from_state, to_state, attempt, cause)
    SELECT j.id, o.state, j.state, j.attempt,
           CASE WHEN jsonb_array_length(j.errors) > jsonb_array_length(o.errors)
                THEN j.errors -> -1 ->> 'error' ELSE current_setting('notify.cause', true) END
    FROM changed j JOIN previous o ON o.id = j.id
    WHERE j.state IS DISTINCT FROM o.state
    ORDER BY j.id;
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_transition_updated AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS previous NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION record_job_transitions_updated();

DROP FUNCTION record_notification_event();
DROP FUNCTION record_job_transition();
