-- The history (notification_events, job_transitions) and the provider attempts (email_, sms_, push_deliveries) are
-- append-only logs, written by the triggers on the rows they describe or by the statement that changes those rows, in
-- the same transaction: what they name exists by construction. Their foreign keys checked it again for every row,
-- with a query and a row lock on the parent each (a WAL record each): six to eight per delivered notification, about
-- 5 % of PostgreSQL's CPU (docs/benchmarks.md). Notifications are never deleted; the cleaner deletes a job's
-- transitions with the job (what ON DELETE CASCADE did). jobs -> notifications stays: a job without its notification
-- would be a bug that the constraint catches.
ALTER TABLE notification_events DROP CONSTRAINT notification_events_notification_id_fkey;
ALTER TABLE job_transitions DROP CONSTRAINT job_transitions_job_id_fkey;
ALTER TABLE email_deliveries DROP CONSTRAINT email_deliveries_notification_id_fkey;
ALTER TABLE sms_deliveries DROP CONSTRAINT sms_deliveries_notification_id_fkey;
ALTER TABLE push_deliveries DROP CONSTRAINT push_deliveries_notification_id_fkey;
