-- OneSignal subscriptions are push destinations too: the token is the subscription id (a UUID) in the team's app.
ALTER TABLE devices DROP CONSTRAINT devices_platform_check;
ALTER TABLE devices ADD CONSTRAINT devices_platform_check CHECK (platform IN ('fcm', 'webpush', 'apns', 'onesignal'));
COMMENT ON TABLE devices IS 'Push destinations. token is the FCM registration token, the APNs device token, the OneSignal subscription id, or the Web Push endpoint.';
