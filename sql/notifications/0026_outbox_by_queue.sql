-- The outbox indexed by queue first. A worker that claims the jobs whose messages stayed unpublished (no relay could
-- publish them) asks for its own queue's oldest rows in priority order; with the index on (priority, id) alone the
-- push worker read every email row before finding none of its own, and fell back to reading the whole table: 186 ms
-- per look with 640,000 email rows waiting, once per safety poll per worker, exactly while the relay is down and the
-- outbox grows (docs/benchmarks.md, eighth round). Now the look reads its own rows only (0.04 ms). The relay takes
-- each queue's rows in priority order through the same index (sql in OutboxStore.ClaimStatement). A relay of the
-- release before, during a rolling upgrade, sorts the unpublished rows instead (few, while relays publish).
--
-- The relay names the queues it publishes (a row of any other routing key would wait forever), so the routing key is
-- now checked. The first statement takes the only table lock of this migration (outbox), so it cannot deadlock with
-- a live relay or worker; NOT VALID: the rows already there were written by the same functions.
ALTER TABLE outbox ADD CONSTRAINT outbox_routing_key_check CHECK (routing_key IN ('email', 'push', 'sms', 'failed')) NOT VALID;
CREATE INDEX outbox_unpublished_by_queue ON outbox (routing_key, priority DESC, id) WHERE published_at IS NULL;
DROP INDEX outbox_unpublished_by_priority;
