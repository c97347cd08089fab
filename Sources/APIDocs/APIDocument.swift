import Foundation

/// The OpenAPI 3.1 documents the gateway, user, template and admin services serve at `/openapi.json`.
///
/// Each service contributes its `paths` and its own `schemas` (JSON text in its own file); the envelope, the error
/// responses, pagination, security schemes and the health paths are shared and merged in here, so every document
/// describes the same envelope the same way. The admin document adds components of its own (the operator's session
/// cookie as a security scheme, the dashboard's header) with `AdminDocument.addingComponents`.
public enum APIDocument {
    public static let gateway = build(
        title: "notify gateway",
        summary: "Accepts email and push notifications durably and reports their status.",
        port: 8000,
        paths: GatewayDocument.paths,
        schemas: GatewayDocument.schemas
    )
    public static let users = build(
        title: "notify users",
        summary: "Users, contact details, preferences, devices and login.",
        port: 8001,
        paths: UsersDocument.paths,
        schemas: UsersDocument.schemas
    )
    public static let templates = build(
        title: "notify templates",
        summary: "Versioned, localised Mustache templates and their rendering.",
        port: 8002,
        paths: TemplatesDocument.paths,
        schemas: TemplatesDocument.schemas
    )
    public static let admin = AdminDocument.addingComponents(
        to: build(
            title: "notify admin",
            summary: "Operator login, API keys, the platform overview, dead letters and replay.",
            port: 8005,
            paths: AdminDocument.paths,
            schemas: AdminDocument.schemas
        )
    )

    /// The whole document as JSON bytes. A document that does not parse is a programming error caught by the tests.
    static func build(title: String, summary: String, port: Int, paths: String, schemas: String) -> Data {
        var paths = parse(paths, "paths of \(title)")
        for (path, item) in parse(Common.healthPaths, "health paths") { paths[path] = item }
        // The same report under the API prefix.
        if var health = paths["/health"] as? [String: Any], var get = health["get"] as? [String: Any] {
            get["operationId"] = "healthV1"
            health["get"] = get
            paths["/api/v1/health/"] = health
        }
        var allSchemas = parse(Common.schemas, "common schemas")
        for (name, schema) in parse(schemas, "schemas of \(title)") { allSchemas[name] = schema }
        let document: [String: Any] = [
            "openapi": "3.1.0",
            "info": ["title": title, "version": "1.0.0", "summary": summary],
            "servers": [["url": "http://127.0.0.1:\(port)"]],
            "security": [["bearer": [String]()], ["apiKey": [String]()]],
            "paths": paths,
            "components": [
                "schemas": allSchemas,
                "responses": parse(Common.responses, "common responses"),
                "parameters": parse(Common.parameters, "common parameters"),
                "headers": parse(Common.headers, "common headers"),
                "securitySchemes": parse(Common.securitySchemes, "security schemes"),
            ],
        ]
        return (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }

    static func parse(_ text: String, _ what: String) -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            preconditionFailure("OpenAPI fragment is not a JSON object: \(what)")
        }
        return object
    }
}

/// Components every document shares. Names referenced from the service files:
/// - schemas: `Envelope`, `ErrorEnvelope`, `PageMeta`, `FieldError`, `Health`
/// - responses: `BadRequest` (400), `Unauthorized` (401), `Forbidden` (403), `NotFound` (404), `Conflict` (409),
///   `ContentTooLarge` (413), `Unprocessable` (422), `TooManyRequests` (429), `Unavailable` (503)
/// - parameters: `Page`, `Limit`, `CorrelationID`
/// - headers: `CorrelationID`, `RateLimitLimit`, `RateLimitRemaining`, `RateLimitReset`, `RetryAfter`
enum Common {
    static let schemas = #"""
        {
          "PageMeta": {
            "type": "object",
            "description": "Pagination for lists; single objects carry total 1, limit 1, page 1; errors carry total 0, limit 0.",
            "required": ["total", "limit", "page", "total_pages", "has_next", "has_previous"],
            "properties": {
              "total": {"type": "integer", "minimum": 0},
              "limit": {"type": "integer", "minimum": 0},
              "page": {"type": "integer", "minimum": 1},
              "total_pages": {"type": "integer", "minimum": 1},
              "has_next": {"type": "boolean"},
              "has_previous": {"type": "boolean"}
            }
          },
          "FieldError": {
            "type": "object",
            "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"}}
          },
          "Envelope": {
            "type": "object",
            "description": "The one response shape of every service. `data` is described by each operation.",
            "required": ["success", "data", "error", "message", "meta"],
            "properties": {
              "success": {"const": true},
              "data": {},
              "error": {"type": "null"},
              "message": {"type": "string"},
              "meta": {"$ref": "#/components/schemas/PageMeta"}
            }
          },
          "ErrorEnvelope": {
            "type": "object",
            "required": ["success", "data", "error", "message", "meta"],
            "properties": {
              "success": {"const": false},
              "data": {"type": "null"},
              "error": {
                "type": "string",
                "description": "A stable UPPER_SNAKE code, e.g. VALIDATION_ERROR, UNAUTHORIZED, FORBIDDEN, USER_NOT_FOUND, TEMPLATE_NOT_FOUND, CHANNEL_DISABLED, IDEMPOTENCY_CONFLICT, RATE_LIMITED, DEPENDENCY_UNAVAILABLE, INTERNAL_ERROR.",
                "pattern": "^[A-Z][A-Z_]*$"
              },
              "message": {"type": "string"},
              "meta": {"$ref": "#/components/schemas/PageMeta"},
              "details": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}}
            }
          },
          "Health": {
            "type": "object",
            "required": ["service", "status", "checks"],
            "properties": {
              "service": {"type": "string"},
              "status": {"enum": ["up", "degraded", "down"]},
              "checks": {
                "type": "object",
                "additionalProperties": {
                  "type": "object",
                  "required": ["status"],
                  "properties": {
                    "status": {"enum": ["up", "degraded", "down"]},
                    "detail": {"type": "string"},
                    "latency_ms": {"type": "number"}
                  }
                }
              }
            }
          }
        }
        """#

    static let responses = #"""
        {
          "BadRequest": {
            "description": "VALIDATION_ERROR: the request is malformed; `details` names each field.",
            "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
          },
          "Unauthorized": {
            "description": "UNAUTHORIZED: no credential, or one that is not valid.",
            "headers": {
              "X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"},
              "WWW-Authenticate": {"description": "`Bearer` when no valid credential was given.", "schema": {"type": "string"}}
            },
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
          },
          "Forbidden": {
            "description": "FORBIDDEN: the credential is valid but lacks the scope, or names another user.",
            "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
          },
          "NotFound": {
            "description": "The resource does not exist (or is not visible to this credential).",
            "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
          },
          "Conflict": {
            "description": "The request conflicts with the resource's current state.",
            "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
          },
          "ContentTooLarge": {
            "description": "VALIDATION_ERROR: the body is larger than the limit.",
            "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
          },
          "Unprocessable": {
            "description": "Well-formed but refused by a business rule.",
            "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
          },
          "TooManyRequests": {
            "description": "RATE_LIMITED: over the limit of this credential or of the recipient.",
            "headers": {
              "X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"},
              "Retry-After": {"$ref": "#/components/headers/RetryAfter"},
              "RateLimit-Limit": {"$ref": "#/components/headers/RateLimitLimit"},
              "RateLimit-Remaining": {"$ref": "#/components/headers/RateLimitRemaining"},
              "RateLimit-Reset": {"$ref": "#/components/headers/RateLimitReset"}
            },
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
          },
          "Unavailable": {
            "description": "DEPENDENCY_UNAVAILABLE: a store or service this call needs is down; nothing was changed. Try again.",
            "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
          }
        }
        """#

    static let parameters = #"""
        {
          "Page": {"name": "page", "in": "query", "description": "Page number, from 1; page × limit must be at most 10000 (400 otherwise: narrow the list with its filters).", "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1}},
          "Limit": {"name": "limit", "in": "query", "description": "Items per page.", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
          "CorrelationID": {
            "name": "X-Correlation-ID", "in": "header",
            "description": "Carried into logs, outbox rows, AMQP headers and downstream calls; generated when absent or invalid.",
            "schema": {"type": "string", "maxLength": 128}
          }
        }
        """#

    static let headers = #"""
        {
          "CorrelationID": {"description": "The request's correlation id (taken from the request or generated).", "schema": {"type": "string"}},
          "RetryAfter": {"description": "Seconds to wait before trying again.", "schema": {"type": "string", "pattern": "^[0-9]+$"}},
          "RateLimitLimit": {"description": "The burst size of the limit that applies.", "schema": {"type": "string", "pattern": "^[0-9]+$"}},
          "RateLimitRemaining": {"description": "Requests left in the current burst.", "schema": {"type": "string", "pattern": "^[0-9]+$"}},
          "RateLimitReset": {"description": "Seconds until the burst is whole again.", "schema": {"type": "string", "pattern": "^[0-9]+$"}}
        }
        """#

    static let securitySchemes = #"""
        {
          "bearer": {
            "type": "http", "scheme": "bearer",
            "description": "An API key (`nk_...`), the platform's service key, or a user's access token (JWT from POST /api/v1/users/login/)."
          },
          "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key, as an alternative to the bearer header."}
        }
        """#

    static let healthPaths = #"""
        {
          "/metrics": {
            "get": {
              "operationId": "metrics",
              "summary": "Prometheus metrics of this process (text exposition format)",
              "description": "For callers on the same host, or with `Authorization: Bearer` and NOTIFY_METRICS_TOKEN; anyone when NOTIFY_METRICS_ACCESS=public. Others get 404.",
              "security": [],
              "responses": {
                "200": {"description": "Counters, gauges and histograms.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                "404": {"$ref": "#/components/responses/NotFound", "description": "NOT_FOUND: this caller may not read the metrics."}
              }
            }
          },
          "/health": {
            "get": {
              "operationId": "health",
              "summary": "Health of this process and its dependencies",
              "security": [],
              "responses": {
                "200": {
                  "description": "Up or degraded.",
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Health"}}}
                  ]}}}
                },
                "503": {
                  "description": "A critical dependency is down.",
                  "content": {"application/json": {"schema": {"type": "object", "required": ["success", "data", "error"],
                    "properties": {"success": {"const": false}, "data": {"$ref": "#/components/schemas/Health"}, "error": {"const": "DEPENDENCY_UNAVAILABLE"}}}}}
                }
              }
            }
          }
        }
        """#
}
