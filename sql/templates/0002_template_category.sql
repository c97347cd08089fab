-- A template's category (e.g. marketing, transactional): users can opt out of a category per channel.
ALTER TABLE templates ADD COLUMN category text;
COMMENT ON COLUMN templates.category IS 'Optional; a user preference categories[category][channel] = false suppresses sends of this template.';
