-- Status webhooks enqueued by the functions that write the history, instead of by a statement trigger on
-- notification_events. That trigger needed the statement's new rows as a transition table, so every INSERT into the
-- history (two per delivered notification, from the triggers on notifications) copied its rows into a tuplestore and
-- ran a second PL/pgSQL trigger, even where no client has a webhook endpoint, which is the usual case. Now the writer
-- keeps the new events' keys (INSERT … RETURNING) and hands them to enqueue_webhooks only when an active endpoint
-- exists (docs/benchmarks.md, fourteenth round). The deliveries, their payloads, their order and the NOTIFY are those
-- of 0017. Every history row is written by one of the three functions below, so none is skipped.
--
-- The first statement takes the only table lock of this migration (notification_events), so it cannot deadlock with
-- a live worker.
DROP TRIGGER notification_events_webhooks ON notification_events;
DROP FUNCTION enqueue_webhooks();

-- One webhook delivery per event and active endpoint of its client that asked for its status: one statement for all
-- the events a statement wrote, a join against the (small) table of active endpoints.
CREATE FUNCTION enqueue_webhooks(p_notification_ids uuid[], p_event_ids bigint[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_count bigint;
BEGIN
    INSERT INTO webhook_deliveries (endpoint_id, notification_id, event, payload)
    SELECT e.id, n.id, ev.to_status,
           jsonb_build_object(
               'event', ev.to_status, 'event_id', ev.id, 'notification_id', n.id, 'request_id', n.request_id,
               'notification_type', n.channel, 'user_id', n.user_id, 'status', ev.to_status,
               'previous_status', ev.from_status, 'cause', ev.cause, 'occurred_at', ev.at)
    FROM unnest(p_notification_ids, p_event_ids) AS k(notification_id, id)
    JOIN notification_events ev ON ev.notification_id = k.notification_id AND ev.id = k.id
    JOIN notifications n ON n.id = ev.notification_id
    JOIN webhook_endpoints e ON e.client = n.client AND e.active AND ev.to_status = ANY (e.events)
    ORDER BY ev.id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 THEN
        PERFORM pg_notify('webhooks', '');
    END IF;
END $$;
COMMENT ON FUNCTION enqueue_webhooks(uuid[], bigint[]) IS 'Enqueues the status webhooks of the given notification_events rows (by notification_id and id, in pairs); called by every writer of the history in the same transaction.';

CREATE OR REPLACE FUNCTION record_notification_events_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_notifications uuid[];
    v_events bigint[];
BEGIN
    WITH ev AS (
        INSERT INTO notification_events (notification_id, from_status, to_status, cause)
        SELECT n.id, o.status, n.status,
               COALESCE(NULLIF(current_setting('notify.cause', true), ''),
                        CASE WHEN n.status IN ('retrying', 'failed') THEN n.last_error END)
        FROM changed n JOIN previous o ON o.id = n.id
        WHERE n.status IS DISTINCT FROM o.status
        ORDER BY n.id
        RETURNING notification_id, id
    )
    SELECT array_agg(notification_id), array_agg(id) INTO v_notifications, v_events FROM ev;
    IF v_events IS NOT NULL AND EXISTS (SELECT 1 FROM webhook_endpoints WHERE active) THEN
        PERFORM enqueue_webhooks(v_notifications, v_events);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION record_notification_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_notifications uuid[];
    v_events bigint[];
BEGIN
    IF EXISTS (SELECT 1 FROM webhook_endpoints WHERE active AND 'pending' = ANY (events)) THEN
        WITH ev AS (
            INSERT INTO notification_events (notification_id, from_status, to_status, cause)
            SELECT n.id, NULL, n.status, accepted_cause(n.stale_data_age_s)
            FROM inserted n
            WHERE EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.client = n.client AND e.active AND n.status = ANY (e.events))
            RETURNING notification_id, id
        )
        SELECT array_agg(notification_id), array_agg(id) INTO v_notifications, v_events FROM ev;
        IF v_events IS NOT NULL THEN
            PERFORM enqueue_webhooks(v_notifications, v_events);
        END IF;
    END IF;
    RETURN NULL;
END $$;

-- A history entry that changes no status (a provider's report of `pending` on a notification already past it).
CREATE FUNCTION record_notification_event(p_notification_id uuid, p_from_status text, p_to_status text, p_cause text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_event bigint;
BEGIN
    INSERT INTO notification_events (notification_id, from_status, to_status, cause)
    VALUES (p_notification_id, p_from_status, p_to_status, p_cause)
    RETURNING id INTO v_event;
    IF EXISTS (SELECT 1 FROM webhook_endpoints WHERE active) THEN
        PERFORM enqueue_webhooks(ARRAY[p_notification_id], ARRAY[v_event]);
    END IF;
    RETURN v_event;
END $$;

COMMENT ON TABLE notification_events IS 'The status changes of each notification after it was accepted (and, before sql/notifications/0025 or for clients with a webhook for pending, the accepted event itself). notification_history shows the whole history. Written only by record_notification_events_inserted, record_notification_events_updated and record_notification_event, which also enqueue its webhooks.';
