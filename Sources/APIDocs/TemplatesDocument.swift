/// OpenAPI paths and schemas of the template service (merged with the shared components in APIDocument.swift).
enum TemplatesDocument {
    static let paths = #"""
        {
          "/api/v1/templates/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "post": {
              "operationId": "createTemplate",
              "summary": "Create a template (version 1)",
              "description": "Only the platform's service key is accepted (as bearer or X-API-Key). A code may exist once per channel; codes starting with `notify.` are the platform's own (seeded, editable, not creatable or archivable). Every text part must parse as Mustache. Every problem of the body is reported at once in `details`.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TemplateCreate"}}}},
              "responses": {
                "201": {
                  "description": "Created, as version 1 in its language (the template's default language).",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Template"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "409": {
                  "$ref": "#/components/responses/Conflict",
                  "description": "TEMPLATE_EXISTS: a template with this code exists for this channel."
                },
                "413": {"$ref": "#/components/responses/ContentTooLarge"}
              }
            },
            "get": {
              "operationId": "listTemplates",
              "summary": "List active templates",
              "description": "Templates that are not archived, newest first, each as its active version in its default language. Only the service key is accepted.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "parameters": [
                {"name": "channel", "in": "query", "description": "Only templates of this channel.", "schema": {"enum": ["email", "push"]}},
                {"$ref": "#/components/parameters/Page"},
                {"$ref": "#/components/parameters/Limit"}
              ],
              "responses": {
                "200": {
                  "description": "One page of templates; `meta` holds the pagination.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Template"}}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest", "description": "VALIDATION_ERROR: `page`, `limit` or `channel` is not valid."},
                "401": {"$ref": "#/components/responses/Unauthorized"}
              }
            }
          },
          "/api/v1/templates/{template_code}/": {
            "parameters": [
              {
                "name": "template_code",
                "in": "path",
                "required": true,
                "description": "The template's code.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[A-Za-z0-9_.-]+$"}
              },
              {
                "name": "channel",
                "in": "query",
                "description": "Which template, when the code names an email and a push template; needed only then.",
                "schema": {"enum": ["email", "push"]}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "get": {
              "operationId": "getTemplate",
              "summary": "Get a template: the active version, or a pinned one",
              "description": "The language falls back from `fr-CA` to `fr` to the template's default language. An archived template answers only when `version` is given (pinned notifications still render). `variables` lists the top-level variables the version needs. Only the service key is accepted.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "parameters": [
                {"name": "language", "in": "query", "description": "The preferred language, e.g. `fr-CA`.", "schema": {"type": "string"}},
                {
                  "name": "version",
                  "in": "query",
                  "description": "A version number; a language without a row at that version gives its latest row below it.",
                  "schema": {"type": "integer", "minimum": 1}
                }
              ],
              "responses": {
                "200": {
                  "description": "The template version.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Template"}}}
                  ]}}}
                },
                "400": {
                  "$ref": "#/components/responses/BadRequest",
                  "description": "VALIDATION_ERROR: `version` is not a positive integer, `channel` is not email or push, or the code names two templates and `channel` is missing."
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "TEMPLATE_NOT_FOUND: no such template (or it is archived and no `version` was given)."
                }
              }
            },
            "put": {
              "operationId": "updateTemplate",
              "summary": "Edit a template: a new immutable version",
              "description": "Inserts the content of one language (the template's default language unless `language` is given) as a new version, which becomes the active one; earlier versions never change. The content is checked against the template's stored channel: `subject` is required for email, `title` for push. Only the service key is accepted.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TemplateUpdate"}}}},
              "responses": {
                "200": {
                  "description": "The new version, in the language edited.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Template"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "404": {"$ref": "#/components/responses/NotFound", "description": "TEMPLATE_NOT_FOUND: no such template, or it is archived."},
                "413": {"$ref": "#/components/responses/ContentTooLarge"}
              }
            }
          },
          "/templates/{template_code}": {
            "parameters": [
              {
                "name": "template_code",
                "in": "path",
                "required": true,
                "description": "The template's code.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[A-Za-z0-9_.-]+$"}
              },
              {
                "name": "channel",
                "in": "query",
                "description": "Which template, when the code names an email and a push template; needed only then.",
                "schema": {"enum": ["email", "push"]}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "get": {
              "operationId": "getTemplateShort",
              "summary": "Get a template (the seed's short path)",
              "description": "The same as GET /api/v1/templates/{template_code}/.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "parameters": [
                {"name": "language", "in": "query", "description": "The preferred language, e.g. `fr-CA`.", "schema": {"type": "string"}},
                {"name": "version", "in": "query", "description": "A version number.", "schema": {"type": "integer", "minimum": 1}}
              ],
              "responses": {
                "200": {
                  "description": "The template version.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Template"}}}
                  ]}}}
                },
                "400": {
                  "$ref": "#/components/responses/BadRequest",
                  "description": "VALIDATION_ERROR: `version` is not a positive integer, `channel` is not email or push, or the code names two templates and `channel` is missing."
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "TEMPLATE_NOT_FOUND: no such template (or it is archived and no `version` was given)."
                }
              }
            }
          },
          "/api/v1/templates/{template_code}/versions/": {
            "parameters": [
              {
                "name": "template_code",
                "in": "path",
                "required": true,
                "description": "The template's code.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[A-Za-z0-9_.-]+$"}
              },
              {
                "name": "channel",
                "in": "query",
                "description": "Which template, when the code names an email and a push template; needed only then.",
                "schema": {"enum": ["email", "push"]}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "get": {
              "operationId": "listTemplateVersions",
              "summary": "List every version of a template, in every language",
              "description": "Newest version first, then by language; archived templates included. All on one page. Only the service key is accepted.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "responses": {
                "200": {
                  "description": "The versions; `meta` describes one page holding them all.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/TemplateVersion"}}}}
                  ]}}}
                },
                "400": {
                  "$ref": "#/components/responses/BadRequest",
                  "description": "VALIDATION_ERROR: `channel` is not email or push, or the code names two templates and `channel` is missing."
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "404": {"$ref": "#/components/responses/NotFound", "description": "TEMPLATE_NOT_FOUND: no such template."}
              }
            }
          },
          "/api/v1/templates/{template_code}/archive/": {
            "parameters": [
              {
                "name": "template_code",
                "in": "path",
                "required": true,
                "description": "The template's code.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[A-Za-z0-9_.-]+$"}
              },
              {
                "name": "channel",
                "in": "query",
                "description": "Which template, when the code names an email and a push template; needed only then.",
                "schema": {"enum": ["email", "push"]}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "post": {
              "operationId": "archiveTemplate",
              "summary": "Archive a template: it takes no new notifications",
              "description": "Pinned versions still render. Archiving an archived template succeeds again. No request body is read. Only the service key is accepted.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "responses": {
                "200": {
                  "description": "Archived; `data` is an empty object.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Empty"}}}
                  ]}}}
                },
                "400": {
                  "$ref": "#/components/responses/BadRequest",
                  "description": "VALIDATION_ERROR: `channel` is not email or push, or the code names two templates and `channel` is missing."
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "404": {"$ref": "#/components/responses/NotFound", "description": "TEMPLATE_NOT_FOUND: no such template."},
                "409": {"$ref": "#/components/responses/Conflict", "description": "TEMPLATE_RESERVED: a platform template (`notify.…`); it can be edited, not archived."}
              }
            }
          },
          "/api/v1/templates/{template_code}/restore/": {
            "parameters": [
              {
                "name": "template_code",
                "in": "path",
                "required": true,
                "description": "The template's code.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[A-Za-z0-9_.-]+$"}
              },
              {
                "name": "channel",
                "in": "query",
                "description": "Which template, when the code names an email and a push template; needed only then.",
                "schema": {"enum": ["email", "push"]}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "post": {
              "operationId": "restoreTemplate",
              "summary": "Restore an archived template: it takes notifications again",
              "description": "Its versions are as they were; the active version is the same as before it was archived. Restoring a template that is not archived succeeds again. No request body is read. Only the service key is accepted.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "responses": {
                "200": {
                  "description": "Restored; `data` is an empty object.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Empty"}}}
                  ]}}}
                },
                "400": {
                  "$ref": "#/components/responses/BadRequest",
                  "description": "VALIDATION_ERROR: `channel` is not email or push, or the code names two templates and `channel` is missing."
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "404": {"$ref": "#/components/responses/NotFound", "description": "TEMPLATE_NOT_FOUND: no such template."}
              }
            }
          },
          "/api/v1/templates/{template_code}/render/": {
            "parameters": [
              {
                "name": "template_code",
                "in": "path",
                "required": true,
                "description": "The template's code.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[A-Za-z0-9_.-]+$"}
              },
              {
                "name": "channel",
                "in": "query",
                "description": "Which template, when the code names an email and a push template; needed only then.",
                "schema": {"enum": ["email", "push"]}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "post": {
              "operationId": "renderTemplate",
              "summary": "Preview: render a version with the given variables",
              "description": "HTML parts escape values; text parts (subject, body, title, image URL, link, data) do not. The body must be a JSON object, `{}` at least. Only the service key is accepted.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RenderRequest"}}}},
              "responses": {
                "200": {
                  "description": "The rendered parts.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/RenderedTemplate"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "TEMPLATE_NOT_FOUND: no such template (or it is archived and no `version` was given)."
                },
                "413": {"$ref": "#/components/responses/ContentTooLarge"},
                "422": {
                  "$ref": "#/components/responses/Unprocessable",
                  "description": "MISSING_VARIABLES: the template needs variables that were not given; `details` names each as `variables.<name>`."
                }
              }
            }
          }
        }
        """#

    static let schemas = #"""
        {
          "Template": {
            "type": "object",
            "description": "One version of a template in one language. Optional parts are absent when not set.",
            "required": [
              "code", "name", "channel", "version", "active_version", "language", "default_language", "body", "variables", "archived", "created_at"
            ],
            "properties": {
              "code": {"type": "string"},
              "name": {"type": "string"},
              "channel": {"enum": ["email", "push"]},
              "category": {"type": "string", "description": "E.g. marketing; users may opt out of a category per channel."},
              "version": {"type": "integer", "minimum": 1, "description": "The version shown."},
              "active_version": {"type": "integer", "minimum": 1, "description": "The version new notifications use."},
              "language": {"type": "string", "description": "The language of the version shown."},
              "default_language": {"type": "string"},
              "subject": {"type": "string"},
              "body": {"type": "string"},
              "html_body": {"type": "string"},
              "title": {"type": "string"},
              "image_url": {"type": "string"},
              "link": {"type": "string"},
              "data": {"type": "object", "description": "Push custom data.", "additionalProperties": {"type": "string"}},
              "variables": {"type": "array", "description": "The top-level variables this version needs.", "items": {"type": "string"}},
              "archived": {"type": "boolean"},
              "created_at": {"type": "string", "format": "date-time", "description": "When this version was created."}
            }
          },
          "TemplateVersion": {
            "type": "object",
            "required": ["version", "language", "created_at"],
            "properties": {
              "version": {"type": "integer", "minimum": 1},
              "language": {"type": "string"},
              "created_at": {"type": "string", "format": "date-time"}
            }
          },
          "RenderedTemplate": {
            "type": "object",
            "description": "The rendered parts of one version; parts the version does not have are absent.",
            "required": ["code", "version", "language", "body"],
            "properties": {
              "code": {"type": "string"},
              "version": {"type": "integer", "minimum": 1},
              "language": {"type": "string"},
              "subject": {"type": "string"},
              "body": {"type": "string"},
              "html_body": {"type": "string"},
              "title": {"type": "string"},
              "image_url": {"type": "string"},
              "link": {"type": "string"},
              "data": {"type": "object", "additionalProperties": {"type": "string"}}
            }
          },
          "TemplateCreate": {
            "type": "object",
            "description": "`subject` is required for email templates and `title` for push templates. Text parts must parse as Mustache.",
            "required": ["code", "name", "channel", "body"],
            "properties": {
              "code": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[A-Za-z0-9_.-]+$"},
              "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"},
              "channel": {"enum": ["email", "push"]},
              "category": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "\\S"},
              "language": {
                "type": "string",
                "minLength": 1,
                "maxLength": 35,
                "pattern": "\\S",
                "default": "en",
                "description": "The template's default language."
              },
              "subject": {"type": "string", "minLength": 1, "maxLength": 998, "pattern": "\\S", "description": "Mustache; required for email."},
              "body": {"type": "string", "minLength": 1, "maxLength": 100000, "pattern": "\\S", "description": "Mustache, plain text."},
              "html_body": {
                "type": "string",
                "minLength": 1,
                "maxLength": 500000,
                "pattern": "\\S",
                "description": "Mustache; values are HTML-escaped."
              },
              "title": {"type": "string", "minLength": 1, "maxLength": 500, "pattern": "\\S", "description": "Mustache; required for push."},
              "image_url": {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": "\\S"},
              "link": {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": "\\S", "description": "Mustache."},
              "data": {"type": "object", "description": "Push custom data.", "additionalProperties": {"type": "string"}}
            },
            "allOf": [
              {"if": {"required": ["channel"], "properties": {"channel": {"const": "email"}}}, "then": {"required": ["subject"]}},
              {"if": {"required": ["channel"], "properties": {"channel": {"const": "push"}}}, "then": {"required": ["title"]}}
            ]
          },
          "TemplateUpdate": {
            "type": "object",
            "description": "The whole content of the new version in one language. `subject` is required when the template is an email template, `title` when it is a push template. Text parts must parse as Mustache.",
            "required": ["body"],
            "properties": {
              "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S", "description": "Renames the template (all versions)."},
              "category": {
                "type": ["string", "null"],
                "minLength": 1,
                "maxLength": 64,
                "pattern": "\\S",
                "description": "Sets the template's category; null clears it; absent keeps it."
              },
              "language": {
                "type": "string",
                "minLength": 1,
                "maxLength": 35,
                "pattern": "\\S",
                "description": "The language edited; the template's default language when absent."
              },
              "subject": {"type": "string", "minLength": 1, "maxLength": 998, "pattern": "\\S"},
              "body": {"type": "string", "minLength": 1, "maxLength": 100000, "pattern": "\\S"},
              "html_body": {"type": "string", "minLength": 1, "maxLength": 500000, "pattern": "\\S"},
              "title": {"type": "string", "minLength": 1, "maxLength": 500, "pattern": "\\S"},
              "image_url": {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": "\\S"},
              "link": {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": "\\S"},
              "data": {"type": "object", "additionalProperties": {"type": "string"}}
            }
          },
          "RenderRequest": {
            "type": "object",
            "properties": {
              "variables": {"type": "object", "description": "Values for the template's variables; any JSON."},
              "language": {
                "type": "string",
                "minLength": 1,
                "maxLength": 35,
                "pattern": "\\S",
                "description": "The preferred language; falls back like GET."
              },
              "version": {"type": "integer", "minimum": 1, "maximum": 1000000, "description": "A pinned version; the active one when absent."}
            }
          },
          "Empty": {"type": "object", "maxProperties": 0}
        }
        """#
}
