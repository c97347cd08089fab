-- SMS templates: text only (body), one per code like email and push.
ALTER TABLE templates DROP CONSTRAINT templates_channel_check;
ALTER TABLE templates ADD CONSTRAINT templates_channel_check CHECK (channel IN ('email', 'push', 'sms'));
