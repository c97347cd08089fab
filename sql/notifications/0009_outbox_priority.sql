-- The relay publishes the outbox highest priority first, then oldest first, as the work queues (x-max-priority) and
-- the workers' PostgreSQL claim order their jobs: behind a backlog of unpublished rows, an urgent notification no
-- longer waits for every older one to be published. This index replaces the one on id alone.
CREATE INDEX outbox_unpublished_by_priority ON outbox (priority DESC, id) WHERE published_at IS NULL;
DROP INDEX outbox_unpublished;
