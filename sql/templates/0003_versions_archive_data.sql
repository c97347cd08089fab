-- Archive, push custom data. Versions: `version` counts up per template; each edit inserts the row of one language at
-- a new version. Version N of a template in a language is that language's latest row at or below N, so a notification
-- pinned to N renders the same text forever, whatever is edited later.
ALTER TABLE templates ADD COLUMN archived_at timestamptz;
ALTER TABLE template_versions ADD COLUMN data jsonb;
COMMENT ON COLUMN templates.archived_at IS 'Archived templates take no new notifications; pinned versions still render.';
COMMENT ON COLUMN template_versions.data IS 'Push only: custom key/value data sent with the notification.';
