-- Room on each page for the new versions of the rows that change soon after they are written. A notification's status
-- changes twice (processing, sent) and a job's state twice (running, completed) within seconds of the insert. With
-- full pages (fillfactor 100) a new version that does not fit goes to another page: the old row is locked in a WAL
-- record of its own first, a second page is dirtied, and for a notification the update cannot be HOT, so every index
-- takes a new entry. Measured over 10,000 delivered emails (docs/benchmarks.md): HOT updates of notifications 1.3–1.4
-- of 2 per notification before, 1.8–1.9 after; row locks in WAL 5.3–5.5 per notification before, 3.7–3.9 after.
-- The jobs' updates are never HOT (their state is in the partial indexes), but they stay on their page. Only pages
-- filled from now on keep the room; a table's existing pages are left as they are.
ALTER TABLE notifications SET (fillfactor = 80);
ALTER TABLE jobs SET (fillfactor = 70);

-- The relay deletes an outbox row once RabbitMQ took its message, instead of setting published_at: the row (with its
-- payload) is not written a second time only to be pruned and deleted by the cleaner a day later, and the table holds
-- only what is waiting, not a day of published messages (at 500 notifications/s, 43 million rows). published_at is
-- set only by relays of earlier releases during a rolling upgrade; the cleaner still deletes those rows.
COMMENT ON TABLE outbox IS 'Messages committed with the state change that caused them and not yet published; the relay deletes each once RabbitMQ has it (the job''s state and history say what happened next).';
COMMENT ON COLUMN outbox.published_at IS 'Set only by relays of releases before 0024, which kept published rows for a day; such rows are deleted by the cleaner.';
