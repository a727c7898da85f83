//! Group commit: concurrent runtime mutations of one tenant that arrive while a script call for
//! that tenant is in flight wait, and are sent together as one call of the group-commit script
//! (`lua/batch.lua`) when it returns. A call for an idle tenant goes out at once, alone, with
//! no added wait. Each operation keeps its own KEYS, ARGV, idempotency record and result, and
//! runs inside the batch exactly as it would alone, in arrival order; all keys of a batch carry
//! the tenant's hash tag, so a batch stays in one cluster slot. Per instance and tenant, one
//! call is in flight at a time: the batch grows with the load and amortises Redis's fixed cost
//! per call (dispatch, script entry, the tenant guard).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dashmap::DashMap;
use tokio::sync::oneshot;

use super::RedisStore;
use super::scripts::Script;
use crate::store::{StoreError, StoreResult};

/// How group commit runs.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    /// Most operations in one call.
    pub max: usize,
    /// Send even a lone call through the group-commit script (a batch of one), so tests can
    /// hold the batched path to the model without needing concurrency.
    pub always: bool,
}

/// One waiting operation.
struct Call {
    name: &'static str,
    keys: Vec<String>,
    args: Vec<String>,
    reply: oneshot::Sender<StoreResult<String>>,
}

#[derive(Default)]
struct Slot {
    busy: bool,
    queue: Vec<Call>,
}

type SharedSlot = Arc<Mutex<Slot>>;

fn lock(slot: &SharedSlot) -> MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) struct Groups {
    config: GroupConfig,
    slots: DashMap<String, SharedSlot>,
    batch: redis::Script,
}

impl Groups {
    pub(super) fn new(config: GroupConfig, batch_text: &str) -> Self {
        Self { config, slots: DashMap::new(), batch: redis::Script::new(batch_text) }
    }
}

fn unavailable(cause: &str) -> StoreError {
    StoreError::Unavailable { store: "redis", cause: cause.to_string() }
}

/// The same error for every operation of a failed batch.
fn for_each(err: &StoreError) -> StoreError {
    match err {
        StoreError::Unavailable { store, cause } => StoreError::Unavailable { store, cause: cause.clone() },
        StoreError::Internal(cause) => StoreError::Internal(cause.clone()),
        StoreError::Refused(cause) => StoreError::Refused(cause.clone()),
    }
}

/// Hands a tenant's slot on when its leader's call ends, however it ends (a cancelled request
/// included): what queued meanwhile is flushed by a task of its own, else the slot goes idle.
struct Handoff {
    store: RedisStore,
    tenant: String,
    slot: SharedSlot,
}

impl Drop for Handoff {
    fn drop(&mut self) {
        let mut s = lock(&self.slot);
        if s.queue.is_empty() {
            s.busy = false;
            drop(s);
            if let Some(groups) = &self.store.groups {
                groups.slots.remove_if(&self.tenant, |_, v| Arc::strong_count(v) <= 2 && !lock(v).busy);
            }
            return;
        }
        drop(s);
        let (store, slot) = (self.store.clone(), self.slot.clone());
        tokio::spawn(async move { store.flush(slot).await });
    }
}

/// Up to `max` waiting calls, oldest first; none left marks the slot idle.
fn next_batch(slot: &SharedSlot, max: usize) -> Option<Vec<Call>> {
    let mut s = lock(slot);
    if s.queue.is_empty() {
        s.busy = false;
        return None;
    }
    let n = s.queue.len().min(max.max(1));
    Some(s.queue.drain(..n).collect())
}

enum Queued {
    /// The tenant has a call in flight: this one waits for the next batch.
    Behind(oneshot::Receiver<StoreResult<String>>),
    /// The tenant was idle: this call goes out now, and hands the slot on when it returns.
    Leader(Vec<String>, Vec<String>),
}

fn queue_behind(slot: &SharedSlot, name: &'static str, keys: Vec<String>, args: Vec<String>) -> Queued {
    let mut s = lock(slot);
    if s.busy {
        let (reply, rx) = oneshot::channel();
        s.queue.push(Call { name, keys, args, reply });
        return Queued::Behind(rx);
    }
    s.busy = true;
    Queued::Leader(keys, args)
}

impl RedisStore {
    /// Turns group commit on for the scripts that allow it.
    pub fn enable_group_commit(&mut self, config: GroupConfig) {
        if config.max > 1 || config.always {
            self.groups = Some(Arc::new(Groups::new(config, &super::scripts::batch_text())));
        }
    }

    /// Runs `script` for `tenant`, grouped with the tenant's other waiting operations when
    /// group commit is on and the script allows it; else as [`RedisStore::eval`].
    pub async fn eval_grouped(
        &self,
        tenant: &str,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> StoreResult<String> {
        let (Some(groups), Some(name)) = (&self.groups, script.grouped_as()) else {
            return self.eval(script, &keys, &args).await;
        };
        let slot = groups.slots.entry(tenant.to_string()).or_default().clone();
        let (keys, args) = match queue_behind(&slot, name, keys, args) {
            Queued::Behind(rx) => {
                return rx.await.unwrap_or_else(|_| Err(unavailable("group commit stopped before answering")));
            }
            Queued::Leader(keys, args) => (keys, args),
        };
        let _handoff = Handoff { store: self.clone(), tenant: tenant.to_string(), slot };
        if groups.config.always {
            let (reply, rx) = oneshot::channel();
            self.run_batch(groups, vec![Call { name, keys, args, reply }]).await;
            return rx.await.unwrap_or_else(|_| Err(unavailable("group commit stopped before answering")));
        }
        self.eval(script, &keys, &args).await
    }

    /// Sends what waits in `slot`, batch after batch, until nothing does.
    async fn flush(&self, slot: SharedSlot) {
        let Some(groups) = self.groups.clone() else { return };
        loop {
            let Some(batch) = next_batch(&slot, groups.config.max) else { return };
            self.run_batch(&groups, batch).await;
        }
    }

    /// One call of the group-commit script; each operation's result goes to its caller.
    async fn run_batch(&self, groups: &Groups, batch: Vec<Call>) {
        let mut inv = groups.batch.prepare_invoke();
        inv.arg(batch.len());
        for call in &batch {
            inv.arg(call.name).arg(call.keys.len()).arg(call.args.len());
        }
        for call in &batch {
            for k in &call.keys {
                inv.key(k);
            }
        }
        for call in &batch {
            for a in &call.args {
                inv.arg(a);
            }
        }
        crate::telemetry::ledger_batch(batch.len());
        let reply: StoreResult<Vec<String>> = self.invoke(&inv).await;
        match reply {
            Ok(results) if results.len() == batch.len() => {
                for (call, result) in batch.into_iter().zip(results) {
                    let _ = call.reply.send(Ok(result));
                }
            }
            Ok(results) => {
                let why = format!("group commit: {} results for {} operations", results.len(), batch.len());
                for call in batch {
                    let _ = call.reply.send(Err(StoreError::Internal(why.clone())));
                }
            }
            Err(err) => {
                for call in batch {
                    let _ = call.reply.send(Err(for_each(&err)));
                }
            }
        }
    }
}
