-- A template is identified by its code AND its channel: "welcome" can exist as an email and as a push template.
ALTER TABLE templates DROP CONSTRAINT templates_code_key;
ALTER TABLE templates ADD CONSTRAINT templates_code_channel_key UNIQUE (code, channel);
