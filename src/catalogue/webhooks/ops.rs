//! Webhook operations beyond create, read, update and delete: the test probe, the deliveries
//! listing, replay, bulk actions and the security config.

use super::*;

impl Catalogue {
    /// Sends the synthetic `system.webhook_test` event once. Counts toward nothing and
    /// changes nothing; the event is not stored.
    pub async fn test_webhook(&self, actor: &Actor, viewer: Viewer<'_>, id: &str) -> Result<(SendOutcome, String)> {
        let stored = self.get_webhook(viewer, id).await?;
        self.require_open_owner(&stored.sub.tenant_id).await?;
        let data = json!({
            "component": "webhook_dispatcher",
            "severity": "info",
            "message": "Test event from Tollgate",
            "details": { "subscription_id": id },
        });
        let mut event = Event::new(EventType::SystemWebhookTest, &stored.sub.tenant_id, SOURCE_DISPATCHER, data);
        event.actor = Some(crate::domain::event::EventActor::of(actor.actor_type, actor.key_id.clone()));
        event.request_id = Some(actor.ctx.request_id.clone());
        event.trace_id = Some(actor.ctx.trace_id.clone());
        let (secret, headers) = self.dispatcher.open_secrets(&stored).map_err(Error::internal)?;
        let outcome = self.dispatcher.send(&stored.sub, &secret, &headers, &event).await;
        Ok((outcome, event.event_id))
    }

    async fn require_open_owner(&self, owner: &str) -> Result<()> {
        if owner == SYSTEM_TENANT {
            return Ok(());
        }
        match tenants::get(self.pg.pool(), owner).await? {
            Some(t) if t.status == TenantStatus::Closed => {
                Err(Error::new(ErrorCode::TenantClosed, format!("tenant {owner} is closed")))
            }
            _ => Ok(()),
        }
    }

    pub async fn list_deliveries(
        &self,
        viewer: Viewer<'_>,
        id: &str,
        filter: &store::DeliveryFilter,
        page: &pg::page::PageSpec,
    ) -> Result<pg::page::Page<store::Delivery>> {
        self.get_webhook(viewer, id).await?;
        Ok(store::list_deliveries(self.pg.pool(), id, filter, page).await?)
    }

    /// Queues every deliverable event of `[from, to]` to the subscription, oldest first;
    /// 400 when the window holds more than `max_events` of them or more than the scan
    /// limit of candidates. Returns the replay id and how many deliveries were queued.
    pub async fn replay(
        &self,
        actor: &Actor,
        id: &str,
        window: (OffsetDateTime, OffsetDateTime),
        event_types: Option<Vec<EventType>>,
        max_events: usize,
    ) -> Result<(String, usize)> {
        let stored = self.get_webhook(Viewer::Admin, id).await?;
        let sub = stored.sub;
        let mut filter = event_store::Filter { from: Some(window.0), to: Some(window.1), ..Default::default() };
        if sub.tenant_id != SYSTEM_TENANT {
            filter.tenants = vec![sub.tenant_id.clone()];
        }
        let candidates = event_store::in_order(self.pg.pool(), &filter, REPLAY_SCAN_LIMIT + 1).await?;
        if candidates.len() as i64 > REPLAY_SCAN_LIMIT {
            return Err(Error::invalid(format!(
                "the window holds more than {REPLAY_SCAN_LIMIT} events; narrow from/to"
            )));
        }
        let selected: Vec<&Event> = candidates
            .iter()
            .filter(|e| event_types.as_ref().is_none_or(|types| types.contains(&e.event_type)))
            .filter(|e| sub.wants(e))
            .collect();
        if selected.len() > max_events {
            return Err(Error::invalid_field(
                "max_events",
                format!(
                    "the window holds {} deliverable events, more than max_events ({max_events}); narrow from/to or raise max_events",
                    selected.len()
                ),
            ));
        }
        let replay_id = format!("replay_{}", uuid::Uuid::now_v7().simple());
        let mut tx = self.pg.begin().await?;
        let locked = lock_for(&mut tx, Viewer::Admin, id).await?;
        if store::replay_in_progress(&mut tx, id).await? {
            return Err(Error::new(ErrorCode::ReplayInProgress, "a replay to this subscription is still in progress"));
        }
        let mut queued = 0;
        if locked.sub.status == WebhookStatus::Active {
            let at = now();
            for event in &selected {
                let delivery = NewDelivery {
                    subscription_id: id,
                    event_id: &event.event_id,
                    event_type: event.event_type,
                    trace_id: event.trace_id.as_deref(),
                    replay_id: Some(&replay_id),
                    at,
                };
                if store::insert_delivery(&mut tx, &delivery).await? {
                    queued += 1;
                }
            }
            if queued > 0 {
                crate::events::wake_dispatch();
            }
        }
        let entry = actor.entry(
            "replayEvents",
            &locked.sub.tenant_id,
            ("webhook", id),
            202,
            json!({ "replay_id": replay_id, "events_queued": queued }),
        );
        audit::append(&mut tx, &entry).await?;
        pg::commit(tx).await?;
        Ok((replay_id, queued))
    }

    /// One row of a bulk action, in its own transaction, with its event and no audit entry (the
    /// invocation writes one). `Ok(None)` succeeded, `Ok(Some)`
    /// was skipped with that reason; `Err` failed with a row-level code and message.
    pub async fn bulk_webhook_row(
        &self,
        actor: &Actor,
        id: &str,
        action: &str,
        correlation: &str,
    ) -> Result<Option<&'static str>, (&'static str, String)> {
        let internal = |e: crate::store::StoreError| (ErrorCode::InternalError.as_str(), e.to_string());
        let mut tx = self.pg.begin().await.map_err(internal)?;
        let Some(current) = store::get_for_update(&mut tx, id).await.map_err(internal)? else {
            return if action == "DELETE" {
                Ok(Some("ALREADY_DELETED"))
            } else {
                Err(("NOT_FOUND", format!("{id} not found")))
            };
        };
        if let Err(e) = lock_owner(&mut tx, &current.sub.tenant_id).await {
            return Err(("INVALID_TRANSITION", e.message));
        }
        let sub = &current.sub;
        let target = match (action, sub.status) {
            ("DELETE", _) => None,
            ("PAUSE", WebhookStatus::Active) => Some(WebhookStatus::Paused),
            ("PAUSE", _) => return Ok(Some("ALREADY_IN_TARGET_STATE")),
            ("RESUME", WebhookStatus::Paused) => Some(WebhookStatus::Active),
            ("RESUME", WebhookStatus::Active) => return Ok(Some("ALREADY_IN_TARGET_STATE")),
            ("RESUME", _) => {
                return Err((
                    "INVALID_TRANSITION",
                    "a DISABLED subscription is re-enabled with PATCH status ACTIVE".into(),
                ));
            }
            _ => return Err(("INVALID_TRANSITION", format!("unknown action {action}"))),
        };
        match target {
            None => self
                .delete_locked(&mut tx, actor, sub, correlation.to_string(), false)
                .await
                .map_err(|e| (ErrorCode::InternalError.as_str(), e.message))?,
            Some(status) => {
                let mut next = current.clone();
                next.sub.status = status;
                next.sub.updated_at = Some(now());
                if status == WebhookStatus::Active {
                    next.sub.consecutive_failures = 0;
                }
                store::save(&mut tx, &next).await.map_err(internal)?;
                let kind =
                    if status == WebhookStatus::Paused { EventType::WebhookPaused } else { EventType::WebhookResumed };
                let mut event =
                    actor.event(kind, &sub.tenant_id, lifecycle(&next.sub, Some(sub.status), Some(status), &[]));
                event.correlation_id = Some(correlation.to_string());
                events::record(&mut tx, &[event]).await.map_err(internal)?;
            }
        }
        pg::commit(tx).await.map_err(internal)?;
        Ok(None)
    }

    /// The ids of the subscriptions a bulk filter matches, at most `limit`.
    pub async fn matching_webhook_ids(&self, filter: &store::Filter, limit: i64) -> Result<Vec<String>> {
        Ok(store::matching_ids(self.pg.pool(), filter, limit).await?)
    }

    /// How many subscriptions a bulk filter matches (told to a caller whose filter matches too many).
    pub async fn count_webhooks(&self, filter: &store::Filter) -> Result<usize> {
        Ok(store::count_matching(self.pg.pool(), filter).await?)
    }

    /// The names of a subscription's custom headers (their values stay sealed), if they open.
    pub fn header_names(&self, stored: &store::Stored) -> Option<Vec<String>> {
        self.dispatcher.open_secrets(stored).ok().map(|(_, h)| h.into_keys().collect())
    }

    pub fn security_config(&self) -> SecurityConfig {
        self.dispatcher.guard().current().config.clone()
    }

    /// Replaces the security config; later creates and updates are checked against it.
    pub async fn put_security_config(&self, actor: &Actor, config: SecurityConfig) -> Result<SecurityConfig> {
        let guard = Guard::new(config.clone()).map_err(field_error)?;
        let raw = serde_json::to_value(&config).map_err(Error::internal)?;
        let mut tx = self.pg.begin().await?;
        let written_at = store::put_security_config(&mut tx, &raw).await?;
        let entry = actor.entry(
            "updateWebhookSecurityConfig",
            crate::domain::audit::ADMIN_TENANT,
            ("config", "webhook-security"),
            200,
            json!({}),
        );
        audit::append(&mut tx, &entry).await?;
        pg::commit(tx).await?;
        self.dispatcher.guard().replace(guard, written_at);
        Ok(config)
    }
}

/// The status of a delivery row as the API spells it (rows are written only with these).
pub fn delivery_status(raw: &str) -> DeliveryStatus {
    DeliveryStatus::parse(raw).unwrap_or(DeliveryStatus::Failed)
}
