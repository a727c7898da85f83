//! Webhook subscriptions and deliveries against a real HTTP receiver on loopback.
