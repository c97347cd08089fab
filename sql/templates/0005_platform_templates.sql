-- The platform's own templates. notify.email_verification: the mail that checks a new address before it becomes the
-- user's (sent by the user service through the gateway). Operators may edit it like any template; its variables are
-- name, token, link, has_link and expires_in_minutes.
WITH t AS (
    INSERT INTO templates (code, name, channel, default_language, category)
    VALUES ('notify.email_verification', 'Verify your new email address', 'email', 'en', NULL)
    ON CONFLICT (code, channel) DO NOTHING
    RETURNING id
)
INSERT INTO template_versions (template_id, version, language, subject, body)
SELECT id, 1, 'en', 'Confirm your new email address',
       E'Hello {{name}},\n\n' ||
       E'Someone asked for this address to become the email of your account.\n\n' ||
       E'{{#has_link}}To confirm it, open:\n{{link}}\n\n{{/has_link}}' ||
       E'{{^has_link}}To confirm it, give this code where you asked for the change:\n{{token}}\n\n{{/has_link}}' ||
       E'The {{#has_link}}link{{/has_link}}{{^has_link}}code{{/has_link}} works once, for {{expires_in_minutes}} minutes. ' ||
       E'If you did not ask for this, ignore this mail: nothing changes.\n'
FROM t;
