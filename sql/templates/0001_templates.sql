-- Templates and their immutable versions; one row per (template, version, language).
CREATE TABLE templates (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code              text NOT NULL UNIQUE,
    name              text NOT NULL,
    channel           text NOT NULL CHECK (channel IN ('email', 'push')),
    default_language  text NOT NULL DEFAULT 'en',
    active_version    integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE template_versions (
    template_id  uuid NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    version      integer NOT NULL,
    language     text NOT NULL,
    subject      text,
    body         text NOT NULL,
    html_body    text,
    title        text,
    image_url    text,
    link         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (template_id, version, language)
);

COMMENT ON TABLE template_versions IS 'Immutable: an edit inserts a new version, so mail in flight keeps the text it was accepted with.';
