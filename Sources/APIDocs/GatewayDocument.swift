/// OpenAPI paths and schemas of the gateway (merged with the shared components in APIDocument.swift).
enum GatewayDocument {
    static let paths = #"""
        {
          "/api/v1/notifications/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "post": {
              "operationId": "createNotification",
              "summary": "Accept a notification for delivery",
              "description": "Needs an API key with `notifications:write`; a user's access token cannot send (403). The notification, its job and its outbox message are written in one transaction, and the 202 is sent only after its COMMIT returned; if the commit does not happen (the database stopped, or refused it), the answer is 503 and nothing was accepted, so a retry with the same `request_id` is safe. The user must exist and allow the channel (and the template's category); the template must exist for the channel. `request_id` (or the `Idempotency-Key` header) makes the call idempotent per client: the same payload again answers 200 with the original and `Idempotent-Replayed: true`; a different payload is 422 IDEMPOTENCY_CONFLICT. Rate limits apply per credential and per recipient.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "parameters": [
                {"name": "Idempotency-Key", "in": "header", "description": "Stands in for `request_id` when the body has none (1-255 characters).", "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
              ],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NotificationCreate"}}}},
              "responses": {
                "202": {
                  "description": "Accepted: stored durably, status `pending`.",
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Accepted"}}}
                  ]}}}
                },
                "200": {
                  "description": "A replay: this request_id was accepted before with the same payload; the original is returned.",
                  "headers": {
                    "Idempotent-Replayed": {"description": "Always `true` on a replay.", "schema": {"const": "true"}, "required": true}
                  },
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Accepted"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {"$ref": "#/components/responses/NotFound", "description": "USER_NOT_FOUND or TEMPLATE_NOT_FOUND (no template with this code for the channel)."},
                "413": {"$ref": "#/components/responses/ContentTooLarge"},
                "422": {"$ref": "#/components/responses/Unprocessable", "description": "CHANNEL_DISABLED (the user turned the channel or the template's category off) or IDEMPOTENCY_CONFLICT."},
                "429": {"$ref": "#/components/responses/TooManyRequests"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            },
            "get": {
              "operationId": "listNotifications",
              "summary": "List notifications, newest first",
              "description": "An API key sees its client's notifications (scope `notifications:read` or `notifications:write`); a user's access token sees the notifications addressed to that user.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "parameters": [
                {"name": "request_id", "in": "query", "schema": {"type": "string", "minLength": 1, "maxLength": 255}},
                {"name": "user_id", "in": "query", "schema": {"type": "string", "format": "uuid"}},
                {"name": "status", "in": "query", "schema": {"$ref": "#/components/schemas/NotificationStatus"}},
                {"$ref": "#/components/parameters/Page"},
                {"$ref": "#/components/parameters/Limit"}
              ],
              "responses": {
                "200": {
                  "description": "One page; `meta` holds the pagination.",
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Notification"}}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "429": {"$ref": "#/components/responses/TooManyRequests"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/notifications/bulk/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "post": {
              "operationId": "createNotificationsInBulk",
              "summary": "Accept up to 1,000 notifications at once",
              "description": "Each item is checked like a single create and answered in `results`, in order, with the status it would have had alone (202 accepted, 200 replay, 400, 403, 404, 422, 429). Every accepted item is written in ONE transaction. Idempotency is per item, also between items of the same request. The request counts one unit per item against the credential's rate limit. A 400, 429 or 503 for the whole request means nothing was accepted.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["notifications"],
                "properties": {"notifications": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"$ref": "#/components/schemas/NotificationCreate"}}}
              }}}},
              "responses": {
                "200": {
                  "description": "Every item answered.",
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/BulkResult"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "413": {"$ref": "#/components/responses/ContentTooLarge"},
                "429": {"$ref": "#/components/responses/TooManyRequests"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/notifications/{notification_id}/": {
            "parameters": [{"name": "notification_id", "in": "path", "required": true, "description": "A UUID (anything else is answered 404).", "schema": {"type": "string", "format": "uuid"}}, {"$ref": "#/components/parameters/CorrelationID"}],
            "get": {
              "operationId": "getNotification",
              "summary": "A notification's status, attempts, timestamps, last error and status history",
              "security": [{"bearer": []}, {"apiKey": []}],
              "responses": {
                "200": {
                  "description": "The notification with `history`.",
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Notification"}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {"$ref": "#/components/responses/NotFound", "description": "NOTIFICATION_NOT_FOUND (also for another client's notification, and for an id that is not a UUID)."},
                "429": {"$ref": "#/components/responses/TooManyRequests"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/notifications/{notification_id}/retry/": {
            "parameters": [{"name": "notification_id", "in": "path", "required": true, "description": "A UUID (anything else is answered 404).", "schema": {"type": "string", "format": "uuid"}}, {"$ref": "#/components/parameters/CorrelationID"}],
            "post": {
              "operationId": "retryNotification",
              "summary": "Re-queue a failed (dead-lettered) notification with a fresh set of attempts",
              "description": "Needs `notifications:write` on the client that sent it. No body is read.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "responses": {
                "202": {
                  "description": "Re-queued.",
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Notification"}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {"$ref": "#/components/responses/NotFound", "description": "NOTIFICATION_NOT_FOUND."},
                "409": {"$ref": "#/components/responses/Conflict", "description": "NOT_RETRYABLE: only a failed notification can be retried."},
                "429": {"$ref": "#/components/responses/TooManyRequests"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/email/status/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "post": {
              "operationId": "reportEmailStatus",
              "summary": "A delivery report for an email notification",
              "description": "From a service credential (the platform's service key, or an API key with `service` or `admin`). `delivered` only after `sent`; `failed` after `sent` records a bounce; `pending` is recorded in the history only. The same report again changes nothing and answers with `Idempotent-Replayed: true`.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DeliveryReport"}}}},
              "responses": {
                "200": {
                  "description": "Recorded (or recorded before: then `Idempotent-Replayed: true`); the notification with its history.",
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Notification"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {"$ref": "#/components/responses/NotFound", "description": "NOTIFICATION_NOT_FOUND: no email notification with this id."},
                "409": {"$ref": "#/components/responses/Conflict", "description": "INVALID_TRANSITION: the notification has not been sent."},
                "413": {"$ref": "#/components/responses/ContentTooLarge"},
                "429": {"$ref": "#/components/responses/TooManyRequests"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/push/status/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "post": {
              "operationId": "reportPushStatus",
              "summary": "A delivery report for a push notification",
              "description": "As for email, for push notifications.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DeliveryReport"}}}},
              "responses": {
                "200": {
                  "description": "Recorded (or recorded before: then `Idempotent-Replayed: true`); the notification with its history.",
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Notification"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {"$ref": "#/components/responses/NotFound", "description": "NOTIFICATION_NOT_FOUND: no push notification with this id."},
                "409": {"$ref": "#/components/responses/Conflict", "description": "INVALID_TRANSITION: the notification has not been sent."},
                "413": {"$ref": "#/components/responses/ContentTooLarge"},
                "429": {"$ref": "#/components/responses/TooManyRequests"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          }
        }
        """#

    static let schemas = #"""
        {
          "NotificationStatus": {
            "enum": ["pending", "processing", "retrying", "sent", "delivered", "failed", "cancelled"],
            "description": "pending → processing → sent (handed to the SMTP server or push provider) → delivered (confirmed by a delivery report); retrying between attempts; failed when dead-lettered; cancelled when not sent because, checked again at send time, the user was deleted, turned the channel or category off, or the template was archived (the reason is in the history)."
          },
          "NotificationCreate": {
            "type": "object",
            "required": ["notification_type", "user_id", "template_code"],
            "properties": {
              "notification_type": {"enum": ["email", "push"]},
              "user_id": {"type": "string", "format": "uuid"},
              "template_code": {"type": "string", "minLength": 1, "maxLength": 100},
              "variables": {"type": "object", "description": "Values for the template's variables (e.g. name, link)."},
              "request_id": {"type": "string", "minLength": 1, "maxLength": 255, "description": "Required unless the Idempotency-Key header is given. Unique per client."},
              "priority": {"type": "integer", "minimum": 0, "maximum": 10, "default": 0, "description": "Higher first at every step: published from the outbox, queued in RabbitMQ and claimed from PostgreSQL. Strict: lower priorities wait while higher ones keep coming."},
              "metadata": {"type": "object"},
              "language": {"type": "string", "maxLength": 35, "description": "e.g. fr-CA; falls back to fr, then the template's default."},
              "send_at": {"type": "string", "format": "date-time", "maxLength": 64, "description": "RFC 3339; the notification is held until then."},
              "deliver_to": {
                "type": "object",
                "description": "The platform's own services only (the service key; anyone else gets 403), email only, not in bulk: the address this email goes to instead of the user's, whatever the user's channel preferences (the user service sends the verification of a new address this way).",
                "required": ["email"],
                "additionalProperties": false,
                "properties": {"email": {"type": "string", "format": "email", "maxLength": 254}}
              }
            }
          },
          "Accepted": {
            "type": "object",
            "required": ["notification_id", "request_id", "status", "notification_type", "created_at"],
            "properties": {
              "notification_id": {"type": "string", "format": "uuid"},
              "request_id": {"type": "string"},
              "status": {"$ref": "#/components/schemas/NotificationStatus"},
              "notification_type": {"enum": ["email", "push"]},
              "created_at": {"type": "string", "format": "date-time"}
            }
          },
          "HistoryEntry": {
            "type": "object",
            "required": ["status", "at"],
            "properties": {
              "status": {"type": "string"},
              "previous": {"type": ["string", "null"]},
              "cause": {"type": ["string", "null"]},
              "at": {"type": "string", "format": "date-time"}
            }
          },
          "Notification": {
            "type": "object",
            "required": [
              "notification_id", "request_id", "notification_type", "user_id", "template_code", "status", "priority",
              "correlation_id", "attempts", "created_at", "updated_at"
            ],
            "properties": {
              "notification_id": {"type": "string", "format": "uuid"},
              "request_id": {"type": "string"},
              "notification_type": {"enum": ["email", "push"]},
              "user_id": {"type": "string", "format": "uuid"},
              "template_code": {"type": "string"},
              "status": {"$ref": "#/components/schemas/NotificationStatus"},
              "priority": {"type": "integer"},
              "correlation_id": {"type": "string"},
              "attempts": {"type": "integer", "minimum": 0},
              "job_state": {"type": ["string", "null"], "description": "The delivery job's state (scheduled, available, running, retryable, completed, discarded, cancelled)."},
              "last_error": {"type": ["string", "null"]},
              "created_at": {"type": "string", "format": "date-time"},
              "updated_at": {"type": "string", "format": "date-time"},
              "sent_at": {"type": ["string", "null"], "format": "date-time"},
              "send_at": {"type": ["string", "null"], "format": "date-time"},
              "delivered_at": {"type": ["string", "null"], "format": "date-time"},
              "template_version": {"type": ["integer", "null"], "description": "The template version pinned when the notification was accepted."},
              "stale_data_age_s": {"type": ["integer", "null"], "description": "Seconds: how old the last-known user or template data was that the gateway checked this notification against while the user or template service was unavailable (the worker checks again at send time); null when checked against live data."},
              "history": {"type": "array", "items": {"$ref": "#/components/schemas/HistoryEntry"}, "description": "Every status with its time and cause (on the single-notification view)."},
              "deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/DeviceDelivery"}, "description": "Push only, on the single-notification view: each device's outcome in each attempt."}
            }
          },
          "DeviceDelivery": {
            "type": "object",
            "required": ["attempt", "device_id", "platform", "outcome", "device_deactivated", "at"],
            "properties": {
              "attempt": {"type": "integer"},
              "device_id": {"type": "string"},
              "platform": {"enum": ["fcm", "webpush", "apns"]},
              "outcome": {"enum": ["accepted", "rejected", "failed", "skipped"], "description": "accepted by the provider; rejected (permanent: bad or dead token, bad request); failed (transient: 429, 5xx, unreachable); skipped (no provider for the platform)."},
              "provider_message_id": {"type": ["string", "null"], "description": "The provider's id for an accepted message (FCM message name, Web Push message location on the push service's host); null otherwise."},
              "error_code": {"enum": ["device_gone", "rejected_by_provider", "rate_limited", "provider_unavailable", "provider_auth_failed", "redirected", "endpoint_refused", "malformed_subscription", "payload_too_large", "circuit_open", "not_configured", "unsupported_platform", "timed_out", null], "description": "Why the device did not get it, as a stable code; null when accepted."},
              "error": {"type": ["string", "null"], "description": "The fixed reason of error_code (never the provider's own answer)."},
              "device_deactivated": {"type": "boolean", "description": "The provider reported the token or subscription dead and the device was deactivated."},
              "at": {"type": "string", "format": "date-time"}
            }
          },
          "BulkItemResult": {
            "type": "object",
            "required": ["index", "request_id", "success", "status", "error", "message", "data"],
            "properties": {
              "index": {"type": "integer", "minimum": 0},
              "request_id": {"type": ["string", "null"]},
              "success": {"type": "boolean"},
              "status": {"type": "integer", "description": "202 accepted, 200 replay, or the error status the item would have had alone."},
              "error": {"type": ["string", "null"]},
              "message": {"type": "string"},
              "details": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
              "data": {"oneOf": [{"$ref": "#/components/schemas/Accepted"}, {"type": "null"}]}
            }
          },
          "BulkResult": {
            "type": "object",
            "required": ["total", "accepted", "replayed", "rejected", "results"],
            "properties": {
              "total": {"type": "integer"},
              "accepted": {"type": "integer"},
              "replayed": {"type": "integer"},
              "rejected": {"type": "integer"},
              "results": {"type": "array", "items": {"$ref": "#/components/schemas/BulkItemResult"}}
            }
          },
          "DeliveryReport": {
            "type": "object",
            "required": ["notification_id", "status"],
            "properties": {
              "notification_id": {"type": "string", "format": "uuid"},
              "status": {"enum": ["delivered", "pending", "failed"]},
              "timestamp": {"type": "string", "format": "date-time", "maxLength": 64},
              "error": {"type": "string", "maxLength": 2000}
            }
          }
        }
        """#
}
