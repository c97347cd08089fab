-- Push outcomes carry a stable error code; `error` is that code's fixed reason, never a provider's answer
-- (older rows may hold the provider's status or error code there).
ALTER TABLE push_deliveries ADD COLUMN error_code text;

COMMENT ON COLUMN push_deliveries.error_code IS 'device_gone, rejected_by_provider, rate_limited, provider_unavailable, provider_auth_failed, redirected, endpoint_refused, malformed_subscription, payload_too_large, circuit_open, not_configured, unsupported_platform or timed_out; null when accepted';
COMMENT ON COLUMN push_deliveries.error IS 'the fixed reason of error_code, as API clients see it; the provider''s own answer is only in the push worker''s log';
