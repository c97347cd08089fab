-- Every status a notification goes through, with time and cause, written by a trigger so no code path can skip it.
ALTER TABLE notifications ADD COLUMN delivered_at timestamptz;

CREATE TABLE notification_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id  uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    from_status      text,
    to_status        text NOT NULL,
    cause            text,
    at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_events_notification ON notification_events (notification_id, id);
COMMENT ON TABLE notification_events IS 'The status history of each notification: accepted, processing, retrying (with the error), sent, delivered, failed.';

CREATE FUNCTION record_notification_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO notification_events (notification_id, from_status, to_status, cause) VALUES (NEW.id, NULL, NEW.status, 'accepted');
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO notification_events (notification_id, from_status, to_status, cause)
        VALUES (NEW.id, OLD.status, NEW.status,
                COALESCE(NULLIF(current_setting('notify.cause', true), ''),
                         CASE WHEN NEW.status IN ('retrying', 'failed') THEN NEW.last_error END));
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER notifications_status AFTER INSERT OR UPDATE OF status ON notifications
    FOR EACH ROW EXECUTE FUNCTION record_notification_event();

CREATE INDEX notifications_client_created ON notifications (client, created_at DESC, id);
CREATE INDEX notifications_client_user ON notifications (client, user_id, created_at DESC);
