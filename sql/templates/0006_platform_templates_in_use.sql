-- The platform's own templates cannot be archived any more (409 TEMPLATE_RESERVED); one archived before is in use again.
UPDATE templates SET archived_at = NULL, updated_at = now() WHERE code LIKE 'notify.%' AND archived_at IS NOT NULL;
