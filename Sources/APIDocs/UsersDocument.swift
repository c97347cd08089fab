/// OpenAPI paths and schemas of the user service (merged with the shared components in APIDocument.swift).
enum UsersDocument {
    static let paths = #"""
        {
          "/api/v1/users/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "post": {
              "operationId": "createUser",
              "summary": "Register a user",
              "description": "Needs the service key or an API key with the scope `users:write`; a user's own token is refused (403). Every problem of the body is reported at once in `details`. A `push_token` also becomes the user's first `fcm` device.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UserCreate"}}}},
              "responses": {
                "201": {
                  "description": "Created. The response never holds the password or its hash.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/User"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "409": {
                  "$ref": "#/components/responses/Conflict",
                  "description": "EMAIL_TAKEN: a user with this email (compared case-insensitively) exists."
                },
                "413": {"$ref": "#/components/responses/ContentTooLarge"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            },
            "get": {
              "operationId": "listUsers",
              "summary": "List users",
              "description": "Oldest first. Needs the service key or an API key with the scope `users:read`; a user's own token is refused (403).",
              "security": [{"bearer": []}, {"apiKey": []}],
              "parameters": [{"$ref": "#/components/parameters/Page"}, {"$ref": "#/components/parameters/Limit"}],
              "responses": {
                "200": {
                  "description": "One page of users; `meta` holds the pagination.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/User"}}}}
                  ]}}}
                },
                "400": {
                  "$ref": "#/components/responses/BadRequest",
                  "description": "VALIDATION_ERROR: `page` is not a positive integer or `limit` is not within 1-100."
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/users/login/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "post": {
              "operationId": "login",
              "summary": "Log in with email and password",
              "description": "Public: the email and password are the credential. The email is matched case-insensitively. Returns an HS256 access token for `Authorization: Bearer`, which reaches only this user's own records.",
              "security": [],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LoginRequest"}}}},
              "responses": {
                "200": {
                  "description": "Logged in.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/AccessToken"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {
                  "$ref": "#/components/responses/Unauthorized",
                  "description": "INVALID_CREDENTIALS: no user has this email, or the password is wrong (the two are not told apart)."
                },
                "413": {"$ref": "#/components/responses/ContentTooLarge"},
                "429": {"$ref": "#/components/responses/TooManyRequests", "description": "RATE_LIMITED: too many attempts for this account or from this address; the password was not checked. Retry-After says when."},
                "503": {"$ref": "#/components/responses/Unavailable", "description": "BUSY: too many password checks in progress (Retry-After: 1); or the database is unavailable."}
              }
            }
          },
          "/api/v1/users/verify-email/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "post": {
              "operationId": "verifyEmail",
              "summary": "Confirm a new email address with the token mailed to it",
              "description": "Public: the single-use token sent to the new address (by `PATCH /api/v1/users/{user_id}/` with `email`) is the credential. The pending address becomes the user's address, and every token issued to the user before it stops working (log in again with the new address). A token works once, until it expires (`NOTIFY_EMAIL_VERIFICATION_TTL_SECONDS`, default one day); a newer request replaces it.",
              "security": [],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EmailVerification"}}}},
              "responses": {
                "200": {
                  "description": "The address is confirmed; the user as it is now.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/User"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest", "description": "VALIDATION_ERROR, or INVALID_VERIFICATION_TOKEN: unknown, already used, replaced or expired."},
                "409": {"$ref": "#/components/responses/Conflict", "description": "EMAIL_TAKEN: another account has this address by now; the change is withdrawn."},
                "413": {"$ref": "#/components/responses/ContentTooLarge"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/users/logout/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "post": {
              "operationId": "logout",
              "summary": "End every session of the user",
              "description": "Only a user's access token. Every token issued to this user so far stops working (at the gateway within 5 s). No request body is read.",
              "security": [{"bearer": []}],
              "responses": {
                "200": {
                  "description": "Logged out.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden", "description": "FORBIDDEN: the credential is not a user's access token."},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/users/{user_id}/token-version/": {
            "parameters": [
              {
                "name": "user_id",
                "in": "path",
                "required": true,
                "description": "The user's id, a UUID (anything else is answered 404).",
                "schema": {"type": "string", "format": "uuid"}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "get": {
              "operationId": "tokenVersion",
              "summary": "A user's current token version (platform services only)",
              "description": "The service key only: the gateway checks users' tokens against it. A token carrying an older version is revoked.",
              "security": [{"bearer": []}],
              "responses": {
                "200": {
                  "description": "The version.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"type": "object", "required": ["token_version"], "properties": {"token_version": {"type": "integer", "minimum": 0}}}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {"$ref": "#/components/responses/NotFound", "description": "USER_NOT_FOUND: no user with this id."},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/users/token/refresh/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "post": {
              "operationId": "refreshToken",
              "summary": "Exchange a valid access token for a fresh one",
              "description": "Only a user's access token can be refreshed; any other credential gets 403. No request body is read.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "responses": {
                "200": {
                  "description": "A new token with a new expiry.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/AccessToken"}}}
                  ]}}}
                },
                "401": {
                  "$ref": "#/components/responses/Unauthorized",
                  "description": "UNAUTHORIZED: no credential, one that is not valid or revoked, or the token's user no longer exists; SESSION_EXPIRED: the login is older than NOTIFY_JWT_SESSION_MAX_SECONDS (7 days): log in again."
                },
                "403": {"$ref": "#/components/responses/Forbidden", "description": "FORBIDDEN: the credential is not a user's access token."},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/users/{user_id}/": {
            "parameters": [
              {
                "name": "user_id",
                "in": "path",
                "required": true,
                "description": "The user's id, a UUID (anything else is answered 404).",
                "schema": {"type": "string", "format": "uuid"}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "get": {
              "operationId": "getUser",
              "summary": "Get a user",
              "description": "The user's own token, the service key, or an API key with the scope `users:read`. Served from the cache when possible.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "responses": {
                "200": {
                  "description": "The user.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/User"}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "USER_NOT_FOUND: no user with this id (also when the id is not a UUID)."
                },
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            },
            "patch": {
              "operationId": "updateUser",
              "summary": "Change some of a user's fields",
              "description": "The user's own token, the service key, or an API key with the scope `users:write`. Only the fields given change; a field that is not a field of a user is refused (400). With the user's own token, changing `email` or `password` needs `current_password`. A new `email` is not used at once: it is stored as `pending_email` and a single-use token is mailed to it (template `notify.email_verification`, through the gateway); `POST /api/v1/users/verify-email/` with that token makes it the user's address. Until then the current address stays, and whether another account has the new address is not told here. A service that has verified the address itself sends `email_verified: true` and the address changes at once. A change of email or password revokes every token issued to the user before it.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UserUpdate"}}}},
              "responses": {
                "200": {
                  "description": "The user after the change.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/User"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized", "description": "UNAUTHORIZED, or INVALID_CREDENTIALS: `current_password` is wrong."},
                "403": {"$ref": "#/components/responses/Forbidden", "description": "FORBIDDEN, or REAUTHENTICATION_REQUIRED: the user's own token changes `email` or `password` without `current_password`."},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "USER_NOT_FOUND: no user with this id (also when the id is not a UUID)."
                },
                "409": {"$ref": "#/components/responses/Conflict", "description": "EMAIL_TAKEN: another user has this email (only with `email_verified: true`)."},
                "413": {"$ref": "#/components/responses/ContentTooLarge"},
                "503": {"$ref": "#/components/responses/Unavailable", "description": "VERIFICATION_NOT_SENT: the verification mail could not be handed to the gateway; nothing changed (Retry-After); or the database is unavailable."}
              }
            },
            "delete": {
              "operationId": "deleteUser",
              "summary": "Delete a user and all their personal data",
              "description": "The user's own token, the service key, or an API key with the scope `users:write`. Devices and preferences go with the user.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "responses": {
                "200": {
                  "description": "Deleted; `data` is an empty object.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Empty"}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "USER_NOT_FOUND: no user with this id (also when the id is not a UUID)."
                },
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/users/{user_id}": {
            "parameters": [
              {
                "name": "user_id",
                "in": "path",
                "required": true,
                "description": "The user's id, a UUID (anything else is answered 404).",
                "schema": {"type": "string", "format": "uuid"}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "get": {
              "operationId": "getUserShort",
              "summary": "Get a user (the seed's short path)",
              "description": "The same as GET /api/v1/users/{user_id}/.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "responses": {
                "200": {
                  "description": "The user.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/User"}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "USER_NOT_FOUND: no user with this id (also when the id is not a UUID)."
                },
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/users/{user_id}/preferences/": {
            "parameters": [
              {
                "name": "user_id",
                "in": "path",
                "required": true,
                "description": "The user's id, a UUID (anything else is answered 404).",
                "schema": {"type": "string", "format": "uuid"}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "get": {
              "operationId": "getPreferences",
              "summary": "Get a user's channel and category preferences",
              "description": "The user's own token, the service key, or an API key with the scope `users:read`.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "responses": {
                "200": {
                  "description": "The preferences.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Preferences"}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "USER_NOT_FOUND: no user with this id (also when the id is not a UUID)."
                },
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            },
            "put": {
              "operationId": "setPreferences",
              "summary": "Set a user's preferences",
              "description": "The user's own token, the service key, or an API key with the scope `users:write`. Only what is given changes: `email` and `push` when present, and each category given replaces that category's settings; other categories stay.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PreferencesUpdate"}}}},
              "responses": {
                "200": {
                  "description": "The preferences after the change.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Preferences"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "USER_NOT_FOUND: no user with this id (also when the id is not a UUID)."
                },
                "413": {"$ref": "#/components/responses/ContentTooLarge"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/users/{user_id}/contact/": {
            "parameters": [
              {
                "name": "user_id",
                "in": "path",
                "required": true,
                "description": "The user's id, a UUID (anything else is answered 404).",
                "schema": {"type": "string", "format": "uuid"}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "get": {
              "operationId": "getContact",
              "summary": "Everything needed to reach a user: email, active devices, preferences",
              "description": "For the gateway and the workers: the service key, an API key with the scope `users:read`, or the user's own token. Served from the cache when possible.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "responses": {
                "200": {
                  "description": "The contact data.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Contact"}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "USER_NOT_FOUND: no user with this id (also when the id is not a UUID)."
                },
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/users/contacts/": {
            "parameters": [{"$ref": "#/components/parameters/CorrelationID"}],
            "post": {
              "operationId": "getContacts",
              "summary": "The contact data of many users in one call",
              "description": "For the gateway's bulk path: up to 1,000 user ids, one answer. Needs the service key or an API key with the scope `users:read`; a user's own token is refused (403). Served from the cache when possible; repeated ids are answered once.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ContactsRequest"}}}},
              "responses": {
                "200": {
                  "description": "Those found, in the order asked, and the ids that name no user.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Contacts"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "413": {"$ref": "#/components/responses/ContentTooLarge"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/users/{user_id}/devices/": {
            "parameters": [
              {
                "name": "user_id",
                "in": "path",
                "required": true,
                "description": "The user's id, a UUID (anything else is answered 404).",
                "schema": {"type": "string", "format": "uuid"}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "get": {
              "operationId": "listDevices",
              "summary": "List a user's devices, active and deactivated",
              "description": "The user's own token, the service key, or an API key with the scope `users:read`. Oldest first, all on one page.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "responses": {
                "200": {
                  "description": "Every device of the user; `meta` describes one page holding them all.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Device"}}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "USER_NOT_FOUND: no user with this id (also when the id is not a UUID)."
                },
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            },
            "post": {
              "operationId": "addDevice",
              "summary": "Register a push device",
              "description": "The user's own token, the service key, or an API key with the scope `users:write`. The token's format is checked for its platform. Registering the same token again reactivates the existing device and answers 200.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DeviceCreate"}}}},
              "responses": {
                "200": {
                  "description": "The device was already registered; it is active again.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Device"}}}
                  ]}}}
                },
                "201": {
                  "description": "Registered.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Device"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "USER_NOT_FOUND: no user with this id (also when the id is not a UUID)."
                },
                "409": {"$ref": "#/components/responses/Conflict", "description": "DEVICE_LIMIT_REACHED: the user already has NOTIFY_MAX_DEVICES_PER_USER (20) active devices."},
                "413": {"$ref": "#/components/responses/ContentTooLarge"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/users/{user_id}/devices/{device_id}/": {
            "parameters": [
              {
                "name": "user_id",
                "in": "path",
                "required": true,
                "description": "The user's id, a UUID (anything else is answered 404).",
                "schema": {"type": "string", "format": "uuid"}
              },
              {
                "name": "device_id",
                "in": "path",
                "required": true,
                "description": "The device's id, a UUID (anything else is answered 404).",
                "schema": {"type": "string", "format": "uuid"}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "delete": {
              "operationId": "deleteDevice",
              "summary": "Remove a device",
              "description": "The user's own token, the service key, or an API key with the scope `users:write`.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "responses": {
                "200": {
                  "description": "Removed; `data` is an empty object.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Empty"}}}
                  ]}}}
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "USER_NOT_FOUND when `user_id` is not a UUID; DEVICE_NOT_FOUND when this user has no device with this id."
                },
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          },
          "/api/v1/users/{user_id}/devices/{device_id}/deactivate/": {
            "parameters": [
              {
                "name": "user_id",
                "in": "path",
                "required": true,
                "description": "The user's id, a UUID (anything else is answered 404).",
                "schema": {"type": "string", "format": "uuid"}
              },
              {
                "name": "device_id",
                "in": "path",
                "required": true,
                "description": "The device's id, a UUID (anything else is answered 404).",
                "schema": {"type": "string", "format": "uuid"}
              },
              {"$ref": "#/components/parameters/CorrelationID"}
            ],
            "post": {
              "operationId": "deactivateDevice",
              "summary": "Stop pushing to a device the provider rejected",
              "description": "For the push worker: the service key, an API key with the scope `users:write`, or the user's own token. The device stays listed, inactive, with its reason. The body must be a JSON object, `{}` at least.",
              "security": [{"bearer": []}, {"apiKey": []}],
              "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DeviceDeactivate"}}}},
              "responses": {
                "200": {
                  "description": "The device, now inactive.",
                  "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationID"}},
                  "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"properties": {"data": {"$ref": "#/components/schemas/Device"}}}
                  ]}}}
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {
                  "$ref": "#/components/responses/NotFound",
                  "description": "USER_NOT_FOUND when `user_id` is not a UUID; DEVICE_NOT_FOUND when this user has no device with this id."
                },
                "413": {"$ref": "#/components/responses/ContentTooLarge"},
                "503": {"$ref": "#/components/responses/Unavailable"}
              }
            }
          }
        }
        """#

    static let schemas = #"""
        {
          "User": {
            "type": "object",
            "description": "A user as the API shows it: never the password or its hash.",
            "required": ["user_id", "name", "email", "preferences", "created_at", "updated_at"],
            "properties": {
              "user_id": {"type": "string", "format": "uuid"},
              "name": {"type": "string"},
              "email": {"type": "string", "description": "The address in use."},
              "pending_email": {"type": "string", "description": "A new address waiting for its verification; absent when there is none."},
              "push_token": {"type": "string", "description": "The default FCM token given at registration; absent when there is none."},
              "preferences": {"$ref": "#/components/schemas/ChannelPreferences"},
              "created_at": {"type": "string", "format": "date-time"},
              "updated_at": {"type": "string", "format": "date-time"}
            }
          },
          "ChannelPreferences": {
            "type": "object",
            "required": ["email", "push"],
            "properties": {"email": {"type": "boolean"}, "push": {"type": "boolean"}}
          },
          "CategoryPreferences": {
            "type": "object",
            "description": "Per-category overrides of the channel preferences, e.g. `{\"marketing\": {\"email\": false}}`; a channel absent from a category follows the channel preference.",
            "additionalProperties": {
              "type": "object",
              "properties": {"email": {"type": "boolean"}, "push": {"type": "boolean"}},
              "additionalProperties": false
            }
          },
          "Preferences": {
            "type": "object",
            "required": ["email", "push", "categories"],
            "properties": {
              "email": {"type": "boolean"},
              "push": {"type": "boolean"},
              "categories": {"$ref": "#/components/schemas/CategoryPreferences"}
            }
          },
          "Device": {
            "type": "object",
            "required": ["device_id", "platform", "token", "active", "created_at"],
            "properties": {
              "device_id": {"type": "string", "format": "uuid"},
              "platform": {"enum": ["fcm", "webpush", "apns"]},
              "token": {"type": "string", "description": "The FCM registration token, the APNs device token, or the Web Push endpoint."},
              "p256dh": {"type": "string", "description": "Web Push only."},
              "auth": {"type": "string", "description": "Web Push only."},
              "active": {"type": "boolean"},
              "deactivation_reason": {"type": "string", "description": "Present once the device was deactivated."},
              "created_at": {"type": "string", "format": "date-time"}
            }
          },
          "Contact": {
            "type": "object",
            "required": ["user_id", "name", "email", "preferences", "devices"],
            "properties": {
              "user_id": {"type": "string", "format": "uuid"},
              "name": {"type": "string"},
              "email": {"type": "string"},
              "push_token": {"type": "string", "description": "Absent when there is none."},
              "preferences": {"$ref": "#/components/schemas/Preferences"},
              "devices": {"type": "array", "description": "Active devices only.", "items": {"$ref": "#/components/schemas/Device"}}
            }
          },
          "ContactsRequest": {
            "type": "object",
            "required": ["user_ids"],
            "properties": {
              "user_ids": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"type": "string", "format": "uuid"}}
            }
          },
          "Contacts": {
            "type": "object",
            "required": ["contacts", "missing"],
            "properties": {
              "contacts": {"type": "array", "items": {"$ref": "#/components/schemas/Contact"}},
              "missing": {"type": "array", "description": "The ids asked for that name no user.", "items": {"type": "string", "format": "uuid"}}
            }
          },
          "AccessToken": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in", "user_id"],
            "properties": {
              "access_token": {"type": "string", "description": "An HS256 JWT naming the user."},
              "token_type": {"const": "bearer"},
              "expires_in": {"type": "integer", "description": "Seconds the token is valid for."},
              "user_id": {"type": "string", "format": "uuid"}
            }
          },
          "UserCreate": {
            "type": "object",
            "required": ["name", "email", "password"],
            "properties": {
              "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S", "description": "Not blank."},
              "email": {
                "type": "string",
                "format": "email",
                "maxLength": 254,
                "description": "One `@`, a non-empty local part, a domain with a dot not at either end; no whitespace, `<`, `>` or `,`."
              },
              "password": {
                "type": "string",
                "minLength": 8,
                "maxLength": 72,
                "writeOnly": true,
                "pattern": "^.*([A-Za-z].*[ -@\\[-`{-~]|[ -@\\[-`{-~].*[A-Za-z]).*$",
                "description": "At least 8 characters and at most 72 bytes (bcrypt's limit), with a letter and a digit, space or symbol. The pattern says it for ASCII; any Unicode letter counts as a letter."
              },
              "push_token": {
                "type": "string",
                "pattern": "^[A-Za-z0-9_:.-]{8,4096}$",
                "description": "An FCM registration token; it becomes the user's first device."
              },
              "preferences": {
                "type": "object",
                "description": "Channel opt-ins; each defaults to true.",
                "properties": {"email": {"type": "boolean", "default": true}, "push": {"type": "boolean", "default": true}}
              }
            }
          },
          "UserUpdate": {
            "type": "object",
            "description": "Only the fields given change. Any other field is refused (400).",
            "additionalProperties": false,
            "properties": {
              "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"},
              "email": {"type": "string", "format": "email", "maxLength": 254, "description": "A new address: used once confirmed with the token mailed to it (or at once with `email_verified`)."},
              "email_verified": {"type": "boolean", "description": "Service credentials only, with `email`: the caller has verified the address, which is used at once."},
              "password": {
                "type": "string",
                "minLength": 8,
                "maxLength": 72,
                "writeOnly": true,
                "pattern": "^.*([A-Za-z].*[ -@\\[-`{-~]|[ -@\\[-`{-~].*[A-Za-z]).*$",
                "description": "As at registration: at least 8 characters and at most 72 bytes, with a letter and a digit, space or symbol."
              },
              "push_token": {
                "type": ["string", "null"],
                "pattern": "^[A-Za-z0-9_:.-]{8,4096}$",
                "description": "A new default FCM token (also registered as a device), or null to clear the default."
              },
              "current_password": {"type": "string", "maxLength": 1024, "writeOnly": true, "description": "The user's current password: required with the user's own token to change `email` or `password`."},
              "preferences": {
                "type": "object",
                "description": "Channel opt-ins; only those given change.",
                "properties": {"email": {"type": "boolean"}, "push": {"type": "boolean"}}
              }
            }
          },
          "PreferencesUpdate": {
            "type": "object",
            "properties": {
              "email": {"type": "boolean"},
              "push": {"type": "boolean"},
              "categories": {
                "type": "object",
                "description": "Each category given replaces that category's settings.",
                "propertyNames": {"minLength": 1, "maxLength": 64},
                "additionalProperties": {
                  "type": "object",
                  "properties": {"email": {"type": "boolean"}, "push": {"type": "boolean"}},
                  "additionalProperties": false
                }
              }
            }
          },
          "EmailVerification": {
            "type": "object",
            "required": ["token"],
            "properties": {"token": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S", "writeOnly": true}}
          },
          "LoginRequest": {
            "type": "object",
            "required": ["email", "password"],
            "properties": {
              "email": {"type": "string", "minLength": 1, "maxLength": 254, "pattern": "\\S"},
              "password": {"type": "string", "maxLength": 1024, "writeOnly": true}
            }
          },
          "DeviceCreate": {
            "description": "A push destination; which fields it needs depends on `platform`.",
            "oneOf": [
              {"$ref": "#/components/schemas/FCMDeviceCreate"},
              {"$ref": "#/components/schemas/APNsDeviceCreate"},
              {"$ref": "#/components/schemas/WebPushDeviceCreate"}
            ],
            "discriminator": {
              "propertyName": "platform",
              "mapping": {
                "fcm": "#/components/schemas/FCMDeviceCreate",
                "apns": "#/components/schemas/APNsDeviceCreate",
                "webpush": "#/components/schemas/WebPushDeviceCreate"
              }
            }
          },
          "FCMDeviceCreate": {
            "type": "object",
            "required": ["platform", "token"],
            "properties": {
              "platform": {"const": "fcm"},
              "token": {"type": "string", "pattern": "^[A-Za-z0-9_:.-]{8,4096}$", "description": "An FCM registration token."}
            }
          },
          "APNsDeviceCreate": {
            "type": "object",
            "required": ["platform", "token"],
            "properties": {
              "platform": {"const": "apns"},
              "token": {
                "type": "string",
                "pattern": "^([0-9A-Fa-f]{2}){32,100}$",
                "description": "An APNs device token: 64 to 200 hexadecimal characters, an even number."
              }
            }
          },
          "WebPushDeviceCreate": {
            "type": "object",
            "required": ["platform", "endpoint", "keys"],
            "properties": {
              "platform": {"const": "webpush"},
              "endpoint": {
                "type": "string",
                "format": "uri",
                "pattern": "^https://[^/?#]",
                "maxLength": 2048,
                "description": "The subscription's https endpoint."
              },
              "keys": {
                "type": "object",
                "required": ["p256dh", "auth"],
                "properties": {
                  "p256dh": {
                    "type": "string",
                    "pattern": "^B[A-P][A-Za-z0-9_+/-]{84}[AEIMQUYcgkosw048]=?$",
                    "description": "The subscription's uncompressed P-256 public key (65 bytes starting with 0x04), base64url (base64 is accepted too)."
                  },
                  "auth": {
                    "type": "string",
                    "pattern": "^[A-Za-z0-9_+/-]{21}[AQgw]={0,2}$",
                    "description": "The subscription's 16-byte auth secret, base64url (base64 is accepted too)."
                  }
                }
              }
            }
          },
          "DeviceDeactivate": {
            "type": "object",
            "properties": {"reason": {
              "type": "string",
              "minLength": 1,
              "maxLength": 500,
              "pattern": "\\S",
              "default": "deactivated",
              "description": "Why, e.g. the provider's error; `deactivated` when absent."
            }}
          },
          "Empty": {"type": "object", "maxProperties": 0}
        }
        """#
}
