//! The events the dispatcher itself announces: a delivery that exhausted its retries, and a
//! subscription auto-disabled after too many failures. Both carry the causing event's
//! request and trace ids.

use serde_json::json;

use crate::domain::event::{Event, EventActor, EventType, SOURCE_DISPATCHER, SYSTEM_TENANT};
use crate::domain::webhook::Subscription;
use crate::store::pg::webhooks::Delivery;

pub(super) fn delivery_failed_event(
    sub: &Subscription,
    d: &Delivery,
    cause: &Event,
    attempts: i32,
    error: Option<&str>,
) -> Event {
    let data = json!({
        "component": "webhook_dispatcher",
        "severity": "warning",
        "message": format!("delivery of {} to subscription {} failed after {attempts} attempts", cause.event_id, sub.subscription_id),
        "details": {
            "subscription_id": sub.subscription_id,
            "tenant_id": sub.tenant_id,
            "delivery_id": d.delivery_id,
            "event_id": cause.event_id,
            "event_type": cause.event_type.as_str(),
            "attempts": attempts,
            "last_error": error,
        },
    });
    let mut e = Event::new(EventType::SystemWebhookDeliveryFailed, SYSTEM_TENANT, SOURCE_DISPATCHER, data);
    e.actor = Some(EventActor::of("system", None));
    e.request_id = cause.request_id.clone();
    e.trace_id = cause.trace_id.clone();
    e
}

pub(super) fn disabled_event(sub: &Subscription, d: &Delivery, cause: &Event) -> Event {
    let data = json!({
        "subscription_id": sub.subscription_id,
        "tenant_id": sub.tenant_id,
        "previous_status": sub.status.as_str(),
        "new_status": "DISABLED",
        "changed_fields": [],
        "disable_reason": "consecutive_failures_exceeded_threshold",
    });
    let mut e = Event::new(EventType::WebhookDisabled, &sub.tenant_id, SOURCE_DISPATCHER, data);
    e.actor = Some(EventActor::of("system", None));
    e.correlation_id = Some(format!("webhook_auto_disable:{}:{}", sub.subscription_id, d.delivery_id));
    e.request_id = cause.request_id.clone();
    e.trace_id = cause.trace_id.clone();
    e
}
