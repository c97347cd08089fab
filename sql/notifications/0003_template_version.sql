-- The template version that was active when the notification was accepted: the worker renders exactly that version.
ALTER TABLE notifications ADD COLUMN template_version integer;
COMMENT ON COLUMN notifications.template_version IS 'Pinned at acceptance; an edit of the template never changes mail already in flight.';
