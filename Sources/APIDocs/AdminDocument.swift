import Foundation

/// OpenAPI paths and schemas of the admin service (merged with the shared components in APIDocument.swift), and the
/// components only this document has: the operator's session cookie as a security scheme, the dashboard's
/// `X-Requested-With` header and the cookie login sets (merged in by `addingComponents`).
enum AdminDocument {
    static let paths = #"""
        {
          "/api/v1/admin/login/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "post": {
              "operationId": "adminLogin",
              "summary": "Operator login: starts a dashboard session",
              "description": "Public: the operator's email and password are the credential. The body must be sent as `application/json` (a cross-site form cannot send that type without a preflight, so no other site can log a browser in). The session is held on the server; the browser gets only the cookie (`__Host-notify_admin`, HttpOnly, SameSite=Strict, Secure, Path=/; `notify_admin` without Secure when NOTIFY_ADMIN_COOKIE_SECURE=false). The token is never in the body. Attempts are throttled per account and per address.",
              "security": [],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AdminLoginRequest"}}}},
              "responses": {
                "200": {
                  "description": "Logged in; the session cookie is set.",
                  "headers": {
                    "X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"},
                    "Set-Cookie": {"$ref": "#/components/headers/SessionCookie"}
                  },
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/AdminSession"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {
                  "$ref": "#/components/responses/Unauthorized",
                  "description": "INVALID_CREDENTIALS: no operator has this email, or the password is wrong (the two are not told apart)."
                },
                "413": {"$ref": "#/components/responses/ContentTooLarge", "description": "VALIDATION_ERROR: the body is larger than 16 KiB."},
                "415": {
                  "description": "UNSUPPORTED_MEDIA_TYPE: the body is not sent as application/json; nothing was checked.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
                },
                "429": {
                  "$ref": "#/components/responses/TooManyRequests",
                  "description": "RATE_LIMITED: too many attempts for this account or from this address; the password was not checked. Retry-After says when."
                },
                "503": {
                  "description": "BUSY: too many password checks are in progress (Retry-After: 1); or DEPENDENCY_UNAVAILABLE: the operator store is unavailable. No session was started.",
                  "headers": {
                    "X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"},
                    "Retry-After": {"$ref": "#/components/headers/RetryAfter"}
                  },
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
                }
              }
            }
          },
          "/api/v1/admin/logout/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "post": {
              "operationId": "adminLogout",
              "summary": "Operator logout: ends the session of the cookie sent",
              "description": "Revokes, on the server, the session named by the cookie sent (if any) and clears the cookie. Needs a credential: the session cookie with `X-Requested-With: notify-dashboard`, or any valid API key (no scope is checked). No request body is read.",
              "security": [{"session": []}, {"bearer": []}, {"apiKey": []}],
              "parameters": [{"$ref": "#/components/parameters/DashboardHeader"}],
              "responses": {
                "200": {
                  "description": "Logged out; `data` is an empty object and the cookie is cleared (Max-Age=0).",
                  "headers": {
                    "X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"},
                    "Set-Cookie": {"$ref": "#/components/headers/SessionCookie"}
                  },
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Empty"}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {
                  "$ref": "#/components/responses/Forbidden",
                  "description": "FORBIDDEN: made with the session cookie but without `X-Requested-With: notify-dashboard`."
                },
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/admin/api-keys/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "post": {
              "operationId": "createAPIKey",
              "summary": "Create a client API key; the key is shown once",
              "description": "An API key with the `admin` scope, or an operator's session cookie with `X-Requested-With: notify-dashboard`. Only the key's SHA-256 and its visible prefix are stored: the whole key is in this answer only. Every problem of the body is reported at once in `details`.",
              "security": [{"bearer": []}, {"apiKey": []}, {"session": []}],
              "parameters": [{"$ref": "#/components/parameters/DashboardHeader"}],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/APIKeyCreate"}}}},
              "responses": {
                "201": {
                  "description": "Created; `data.key` holds the key (store it now, it is not shown again).",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/APIKeyCreated"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/AdminChangeForbidden"},
                "413": {"$ref": "#/components/responses/ContentTooLarge", "description": "VALIDATION_ERROR: the body is larger than 64 KiB."},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            },
            "get": {
              "operationId": "listAPIKeys",
              "summary": "List API keys",
              "description": "Newest first; revoked keys only with `include_revoked=true`. Never the keys themselves. An API key with the `admin` scope, or an operator's session cookie.",
              "security": [{"bearer": []}, {"apiKey": []}, {"session": []}],
              "parameters": [
                {"name": "include_revoked", "in": "query", "description": "Also list revoked keys: `true` or `false`.", "schema": {"type": "boolean", "default": false}},
                {"$ref": "#/components/parameters/Page"},
                {"$ref": "#/components/parameters/Limit"}
              ],
              "responses": {
                "200": {
                  "description": "One page of keys; `meta` holds the pagination.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/APIKey"}}}}
                  ]}}}
                },
                "400": {
                  "$ref": "#/components/responses/BadRequest",
                  "description": "VALIDATION_ERROR: `page` or `limit` is not valid, or `include_revoked` is not true or false."
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/AdminForbidden"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/admin/api-keys/{key_id}/": {
            "parameters": [
              {
                "name": "key_id",
                "in": "path",
                "required": true,
                "description": "The key's id, a UUID (anything else is answered 404).",
                "schema": {"type": "string", "format": "uuid"}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "get": {
              "operationId": "getAPIKey",
              "summary": "Get an API key (never the key itself)",
              "description": "Revoked keys too. An API key with the `admin` scope, or an operator's session cookie.",
              "security": [{"bearer": []}, {"apiKey": []}, {"session": []}],
              "responses": {
                "200": {
                  "description": "The key.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/APIKey"}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/AdminForbidden"},
                "404": {"$ref": "#/components/responses/NotFound", "description": "API_KEY_NOT_FOUND: no key with this id (also when the id is not a UUID)."},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            },
            "delete": {
              "operationId": "revokeAPIKey",
              "summary": "Revoke an API key",
              "description": "The gateway stops accepting the key within NOTIFY_KEY_CACHE_SECONDS. Revoking a revoked key succeeds again and keeps the first revocation time. An API key with the `admin` scope, or an operator's session cookie with `X-Requested-With: notify-dashboard`.",
              "security": [{"bearer": []}, {"apiKey": []}, {"session": []}],
              "parameters": [{"$ref": "#/components/parameters/DashboardHeader"}],
              "responses": {
                "200": {
                  "description": "Revoked: the key with its `revoked_at`.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/RevokedAPIKey"}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/AdminChangeForbidden"},
                "404": {"$ref": "#/components/responses/NotFound", "description": "API_KEY_NOT_FOUND: no key with this id (also when the id is not a UUID)."},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/admin/overview/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "get": {
              "operationId": "getOverview",
              "summary": "The platform at a glance",
              "description": "The health of every process (each asked in parallel, 2 s each; no answer is `unreachable`), their circuit breakers, notifications by status, jobs by queue and state, sent and failed per minute over the last 30 minutes, the outbox backlog, the RabbitMQ queues and the number of dead letters. An API key with the `admin` scope, or an operator's session cookie.",
              "security": [{"bearer": []}, {"apiKey": []}, {"session": []}],
              "responses": {
                "200": {
                  "description": "The overview.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Overview"}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/AdminForbidden"},
                "503": {
                  "$ref": "#/components/responses/Unavailable",
                  "description": "DEPENDENCY_UNAVAILABLE: the notifications database did not answer within 5 s, or the session or credential store is unavailable."
                }
              }
            }
          },
          "/api/v1/admin/dead-letters/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "get": {
              "operationId": "listDeadLetters",
              "summary": "List dead letters: notifications that failed for good",
              "description": "Latest failure first, without their error histories. An API key with the `admin` scope, or an operator's session cookie.",
              "security": [{"bearer": []}, {"apiKey": []}, {"session": []}],
              "parameters": [{"$ref": "#/components/parameters/Page"}, {"$ref": "#/components/parameters/Limit"}],
              "responses": {
                "200": {
                  "description": "One page of dead letters; `meta` holds the pagination.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/DeadLetter"}}}}
                  ]}}}
                },
                "400": {
                  "$ref": "#/components/responses/BadRequest",
                  "description": "VALIDATION_ERROR: `page` or `limit` is not valid."
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/AdminForbidden"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/admin/dead-letters/{notification_id}/": {
            "parameters": [
              {
                "name": "notification_id",
                "in": "path",
                "required": true,
                "description": "The notification's id, a UUID (anything else is answered 404).",
                "schema": {"type": "string", "format": "uuid"}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "get": {
              "operationId": "getDeadLetter",
              "summary": "Get a dead letter with every failed attempt",
              "description": "An API key with the `admin` scope, or an operator's session cookie.",
              "security": [{"bearer": []}, {"apiKey": []}, {"session": []}],
              "responses": {
                "200": {
                  "description": "The dead letter; `errors` lists its failed attempts.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/DeadLetter"}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/AdminForbidden"},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "NOTIFICATION_NOT_FOUND: no dead letter with this id (also when the id is not a UUID)."
                },
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/admin/dead-letters/{notification_id}/replay/": {
            "parameters": [
              {
                "name": "notification_id",
                "in": "path",
                "required": true,
                "description": "The notification's id, a UUID (anything else is answered 404).",
                "schema": {"type": "string", "format": "uuid"}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "post": {
              "operationId": "replayDeadLetter",
              "summary": "Replay a dead letter: deliver the notification again",
              "description": "Puts the notification's discarded job back in its queue (attempts start again) and the notification back to `pending`. No request body is read. An API key with the `admin` scope, or an operator's session cookie with `X-Requested-With: notify-dashboard`.",
              "security": [{"bearer": []}, {"apiKey": []}, {"session": []}],
              "parameters": [{"$ref": "#/components/parameters/DashboardHeader"}],
              "responses": {
                "200": {
                  "description": "Re-queued.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Replayed"}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/AdminChangeForbidden"},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "NOTIFICATION_NOT_FOUND: no notification with this id (also when the id is not a UUID)."
                },
                "409": {"$ref": "#/components/responses/Conflict", "description": "NOT_RETRYABLE: the notification is not a dead letter (only a failed notification can be replayed)."},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/admin/login": {
            "get": {
              "operationId": "dashboardLoginPage",
              "summary": "The dashboard's login page (HTML)",
              "description": "Public. Its form posts to POST /api/v1/admin/login/ as JSON.",
              "security": [],
              "responses": {
                "200": {
                  "description": "The page (no-store, with a strict Content-Security-Policy).",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"text/html": {"schema": {"type": "string"}}}
                }
              }
            }
          },
          "/admin/": {
            "get": {
              "operationId": "dashboardPage",
              "summary": "The dashboard (HTML) for a logged-in operator",
              "description": "Needs the session cookie; without a valid one (or when the session cannot be checked) the answer is a redirect to the login page. The page reads the admin API with the same cookie.",
              "security": [{"session": []}, {}],
              "responses": {
                "200": {
                  "description": "The dashboard (no-store, with a strict Content-Security-Policy).",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"text/html": {"schema": {"type": "string"}}}
                },
                "303": {
                  "description": "No valid session: to the login page.",
                  "headers": {
                    "X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"},
                    "Location": {"required": true, "description": "The login page.", "schema": {"const": "/admin/login"}}
                  }
                }
              }
            }
          }
        }
        """#

    static let schemas = #"""
        {
          "AdminLoginRequest": {
            "type": "object",
            "required": ["email", "password"],
            "properties": {
              "email": {"type": "string", "minLength": 1, "maxLength": 254, "pattern": "\\S", "description": "The operator's email."},
              "password": {"type": "string", "maxLength": 1024, "writeOnly": true}
            }
          },
          "AdminSession": {
            "type": "object",
            "description": "The session started; its token is only in the cookie.",
            "required": ["admin_id", "expires_in"],
            "properties": {
              "admin_id": {"type": "string", "format": "uuid"},
              "expires_in": {
                "type": "integer",
                "minimum": 1,
                "description": "Seconds the session lasts (NOTIFY_ADMIN_SESSION_SECONDS)."
              }
            }
          },
          "APIKeyCreate": {
            "type": "object",
            "required": ["client", "scopes"],
            "properties": {
              "client": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S", "description": "Who holds the key, e.g. `billing`."},
              "name": {
                "type": ["string", "null"],
                "minLength": 1,
                "maxLength": 100,
                "pattern": "\\S",
                "default": "default",
                "description": "A label for the key; `default` when absent or null."
              },
              "scopes": {
                "type": "array",
                "minItems": 1,
                "description": "What the key may do; a scope given twice counts once.",
                "items": {"enum": ["notifications:write", "notifications:read", "users:read", "users:write", "admin", "service"]}
              }
            }
          },
          "APIKey": {
            "type": "object",
            "description": "An API key as the admin API shows it: never the key itself, except once, in `key`, when it is created.",
            "required": ["id", "client", "name", "prefix", "scopes", "created_at", "revoked_at"],
            "properties": {
              "id": {"type": "string", "format": "uuid"},
              "client": {"type": "string"},
              "name": {"type": "string"},
              "prefix": {"type": "string", "description": "The visible part of the key, `nk_<prefix>_...`."},
              "scopes": {"type": "array", "items": {"type": "string"}},
              "created_at": {"type": "string", "format": "date-time"},
              "revoked_at": {"type": ["string", "null"], "format": "date-time", "description": "When the key was revoked; null while it works."},
              "key": {"type": "string", "description": "The whole key, `nk_<prefix>_<secret>`: only in the answer to its creation."}
            }
          },
          "APIKeyCreated": {
            "allOf": [
              {"$ref": "#/components/schemas/APIKey"},
              {"required": ["key"], "properties": {"revoked_at": {"type": "null"}}}
            ]
          },
          "RevokedAPIKey": {
            "allOf": [
              {"$ref": "#/components/schemas/APIKey"},
              {"properties": {"revoked_at": {"type": "string", "format": "date-time"}}}
            ]
          },
          "Overview": {
            "type": "object",
            "required": ["generated_at", "services", "breakers", "totals", "job_states", "throughput", "outbox", "queues", "dead_letters"],
            "properties": {
              "generated_at": {"type": "string", "format": "date-time"},
              "services": {"type": "array", "items": {"$ref": "#/components/schemas/ServiceStatus"}},
              "breakers": {
                "type": "array",
                "description": "The circuit breakers the processes report in their health checks.",
                "items": {
                  "type": "object",
                  "required": ["service", "name", "state"],
                  "properties": {
                    "service": {"type": "string"},
                    "name": {"type": "string"},
                    "state": {"type": "string", "description": "closed, open or half_open (the check's status when it gives no state)."}
                  }
                }
              },
              "totals": {
                "type": "object",
                "description": "Notifications by status; `accepted` counts them all.",
                "required": ["accepted", "pending", "processing", "retrying", "sent", "delivered", "failed", "cancelled"],
                "additionalProperties": {"type": "integer", "minimum": 0}
              },
              "job_states": {
                "type": "array",
                "items": {
                  "type": "object",
                  "required": ["queue", "state", "count", "oldest_age_seconds"],
                  "properties": {
                    "queue": {"enum": ["email", "push"]},
                    "state": {"enum": ["scheduled", "available", "running", "retryable", "completed", "discarded", "cancelled"]},
                    "count": {"type": "integer", "minimum": 0},
                    "oldest_age_seconds": {
                      "type": ["number", "null"],
                      "minimum": 0,
                      "description": "How long the oldest available job has been due; null for other states."
                    }
                  }
                }
              },
              "throughput": {
                "type": "array",
                "description": "The last 30 minutes, oldest first.",
                "items": {
                  "type": "object",
                  "required": ["minute", "sent", "failed"],
                  "properties": {
                    "minute": {"type": "string", "format": "date-time"},
                    "sent": {"type": "integer", "minimum": 0},
                    "failed": {"type": "integer", "minimum": 0}
                  }
                }
              },
              "outbox": {
                "type": "object",
                "description": "Messages the relay has not yet published.",
                "required": ["unpublished", "oldest_age_seconds"],
                "properties": {
                  "unpublished": {"type": "integer", "minimum": 0},
                  "oldest_age_seconds": {"type": ["number", "null"], "minimum": 0}
                }
              },
              "queues": {
                "type": "array",
                "description": "The RabbitMQ queues; the figures are absent when the management API does not give them.",
                "items": {
                  "type": "object",
                  "required": ["name"],
                  "properties": {
                    "name": {"type": "string"},
                    "messages": {"type": "integer", "minimum": 0},
                    "consumers": {"type": "integer", "minimum": 0}
                  }
                }
              },
              "dead_letters": {"type": "integer", "minimum": 0}
            }
          },
          "ServiceStatus": {
            "type": "object",
            "description": "A process's /health as the admin service saw it.",
            "required": ["name", "url", "status", "checks"],
            "properties": {
              "name": {"type": "string"},
              "url": {"type": "string"},
              "status": {
                "enum": ["up", "degraded", "down", "unreachable", "unknown"],
                "description": "`unreachable`: no usable answer within 2 s."
              },
              "checks": {
                "type": "object",
                "additionalProperties": {
                  "type": "object",
                  "required": ["status"],
                  "properties": {
                    "status": {"enum": ["up", "degraded", "down", "unknown"]},
                    "detail": {"type": "string"}
                  }
                }
              }
            }
          },
          "DeadLetter": {
            "type": "object",
            "description": "A notification that failed for good. Optional parts are absent when not known; `errors` only on GET of one.",
            "required": ["notification_id", "request_id", "client", "channel", "user_id", "template_code", "attempts"],
            "properties": {
              "notification_id": {"type": "string", "format": "uuid"},
              "request_id": {"type": "string"},
              "client": {"type": "string"},
              "channel": {"enum": ["email", "push"]},
              "user_id": {"type": "string", "format": "uuid"},
              "template_code": {"type": "string"},
              "attempts": {"type": "integer", "minimum": 0},
              "failed_at": {"type": "string", "format": "date-time"},
              "last_error": {"type": "string"},
              "errors": {
                "type": "array",
                "description": "Every failed attempt, oldest first.",
                "items": {
                  "type": "object",
                  "properties": {
                    "at": {"type": "string"},
                    "attempt": {"type": "integer"},
                    "error": {"type": "string"},
                    "permanent": {"type": "boolean"}
                  }
                }
              }
            }
          },
          "Replayed": {
            "type": "object",
            "required": ["notification_id", "replayed"],
            "properties": {
              "notification_id": {"type": "string", "format": "uuid"},
              "replayed": {"const": true}
            }
          },
          "Empty": {"type": "object", "maxProperties": 0}
        }
        """#

    /// Merged over the shared security schemes and components: the admin API's own description of the bearer
    /// credential and of its 403s, the operator's session cookie, the dashboard's header and the cookie it sets.
    static let components = #"""
        {
          "securitySchemes": {
            "bearer": {
              "type": "http", "scheme": "bearer",
              "description": "An API key (`nk_...`) with the `admin` scope. Other keys are authenticated but get 403 (except on logout); the service key and users' access tokens are refused (401)."
            },
            "session": {
              "type": "apiKey", "in": "cookie", "name": "__Host-notify_admin",
              "description": "An operator's dashboard session, from POST /api/v1/admin/login/ (`notify_admin` instead when NOTIFY_ADMIN_COOKIE_SECURE=false, for local http only). A change (any method but GET and HEAD) made with it must carry `X-Requested-With: notify-dashboard`. Used only when no bearer or X-API-Key credential is sent."
            }
          },
          "responses": {
            "AdminForbidden": {
              "description": "FORBIDDEN: the API key lacks the `admin` scope.",
              "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
            },
            "AdminChangeForbidden": {
              "description": "FORBIDDEN: the API key lacks the `admin` scope, or a change made with the session cookie lacks `X-Requested-With: notify-dashboard`.",
              "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
            }
          },
          "parameters": {
            "DashboardHeader": {
              "name": "X-Requested-With", "in": "header",
              "description": "Required with the session cookie on changes (a cross-site form cannot send it); ignored with an API key.",
              "schema": {"const": "notify-dashboard"}
            }
          },
          "headers": {
            "SessionCookie": {
              "description": "The session cookie: `__Host-notify_admin=<token>; Path=/; HttpOnly; SameSite=Strict; Max-Age=<seconds>; Secure` (`notify_admin`, without Secure, when NOTIFY_ADMIN_COOKIE_SECURE=false). Logout sets it empty with Max-Age=0.",
              "schema": {"type": "string"}
            }
          }
        }
        """#

    /// The document `APIDocument.build` made, with `components` merged in (section by section, entry by entry).
    static func addingComponents(to document: Data) -> Data {
        guard var object = (try? JSONSerialization.jsonObject(with: document)) as? [String: Any],
            var allComponents = object["components"] as? [String: Any]
        else { preconditionFailure("the admin document has no components") }
        for (section, entries) in APIDocument.parse(components, "admin components") {
            var merged = allComponents[section] as? [String: Any] ?? [:]
            for (name, entry) in entries as? [String: Any] ?? [:] { merged[name] = entry }
            allComponents[section] = merged
        }
        object["components"] = allComponents
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }
}
