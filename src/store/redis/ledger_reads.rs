//! The ledger's reads (no scripts): raw hash fields and index ranges of one tenant's keys,
//! returned as plain values. Decoding them into records, and deciding how many to read per
//! round trip, stays with the ledger. Multi-key reads are pipelined: a tenant's keys share one
//! cluster slot, so a pipeline is one round trip.

use std::collections::HashMap;

use super::RedisStore;
use crate::store::StoreResult;

impl RedisStore {
    /// Every field of one reservation hash (empty when it does not exist).
    pub async fn reservation_fields(&self, tenant: &str, id: &str) -> StoreResult<HashMap<String, String>> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.keys.reservation(tenant, id));
        self.query(&cmd).await
    }

    /// The fields of each reservation in `ids`, in order, in one round trip (an empty map for
    /// one that no longer exists).
    pub async fn reservations_fields(&self, tenant: &str, ids: &[String]) -> StoreResult<Vec<HashMap<String, String>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(self.keys.reservation(tenant, id));
        }
        self.pipeline(&pipe).await
    }

    pub async fn reservation_exists(&self, tenant: &str, id: &str) -> StoreResult<bool> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.keys.reservation(tenant, id));
        let n: i64 = self.query(&cmd).await?;
        Ok(n == 1)
    }

    /// The stored idempotency record of operation `op` under `key`, if still kept.
    pub async fn idempotency_record(&self, tenant: &str, op: &str, key: &str) -> StoreResult<Option<String>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.keys.idem(tenant, op, key));
        self.query(&cmd).await
    }

    /// Up to `count` reservation ids from the creation index, newest first.
    pub async fn created_ids_newest(&self, tenant: &str, count: usize) -> StoreResult<Vec<String>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(self.keys.created(tenant)).arg(0).arg(count - 1).arg("REV");
        self.query(&cmd).await
    }

    /// Up to `count` entries of the creation index as `(id, created_at_ms)`, in creation order
    /// (newest first when asked), starting at the `offset`-th entry created at `from_ms` or
    /// later (earlier, newest first), or at the first entry when `from_ms` is `None`.
    pub async fn created_from(
        &self,
        tenant: &str,
        from_ms: Option<i64>,
        newest_first: bool,
        offset: usize,
        count: usize,
    ) -> StoreResult<Vec<(String, i64)>> {
        let (open, end) = if newest_first { ("+inf", "-inf") } else { ("-inf", "+inf") };
        let start = from_ms.map_or_else(|| open.to_string(), |ms| ms.to_string());
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(self.keys.created(tenant)).arg(start).arg(end).arg("BYSCORE");
        if newest_first {
            cmd.arg("REV");
        }
        cmd.arg("LIMIT").arg(offset).arg(count).arg("WITHSCORES");
        let entries: Vec<(String, f64)> = self.query(&cmd).await?;
        // Scores are Redis TIME in whole milliseconds, exact in an f64.
        Ok(entries.into_iter().map(|(id, score)| (id, score as i64)).collect())
    }

    /// Up to `count` ids of reservations created within `[from_ms, to_ms]` (either end open),
    /// newest first.
    pub async fn created_ids_between(
        &self,
        tenant: &str,
        (from_ms, to_ms): (Option<i64>, Option<i64>),
        count: usize,
    ) -> StoreResult<Vec<String>> {
        let bound = |ms: Option<i64>, open: &str| ms.map_or_else(|| open.to_string(), |ms| ms.to_string());
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(self.keys.created(tenant)).arg(bound(to_ms, "+inf")).arg(bound(from_ms, "-inf"));
        cmd.arg("BYSCORE").arg("REV").arg("LIMIT").arg(0).arg(count);
        self.query(&cmd).await
    }

    /// Up to `count` ids of ACTIVE reservations from the expiry index, soonest deadline first.
    pub async fn active_ids(&self, tenant: &str, count: usize) -> StoreResult<Vec<String>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(self.keys.active(tenant)).arg(0).arg(count - 1);
        self.query(&cmd).await
    }

    /// Up to `count` ids of ACTIVE reservations whose deadline is at or before `now_ms`.
    pub async fn due_ids(&self, tenant: &str, now_ms: i64, count: usize) -> StoreResult<Vec<String>> {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(self.keys.active(tenant)).arg("-inf").arg(now_ms).arg("BYSCORE").arg("LIMIT").arg(0).arg(count);
        self.query(&cmd).await
    }

    /// Up to `count` members of the due index `due` scored at or before `now_ms`.
    pub async fn due_members(&self, due: &str, now_ms: i64, count: usize) -> StoreResult<Vec<String>> {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(due).arg("-inf").arg(now_ms).arg("BYSCORE").arg("LIMIT").arg(0).arg(count);
        self.query(&cmd).await
    }

    /// Up to `count` members of the dirty set `dirty` (all of them when it is smaller).
    pub async fn dirty_members(&self, dirty: &str, count: usize) -> StoreResult<Vec<String>> {
        let mut cmd = redis::cmd("SRANDMEMBER");
        cmd.arg(dirty).arg(count);
        self.query(&cmd).await
    }

    /// How many ACTIVE reservations have a deadline at or before `now_ms`.
    pub async fn due_count(&self, tenant: &str, now_ms: i64) -> StoreResult<u64> {
        let mut cmd = redis::cmd("ZCOUNT");
        cmd.arg(self.keys.active(tenant)).arg("-inf").arg(now_ms);
        let n: i64 = self.query(&cmd).await?;
        Ok(n.unsigned_abs())
    }

    /// Up to `count` members (`scope|unit`) of the tenant's budget index, in index order.
    pub async fn budget_index_members(&self, tenant: &str, count: usize) -> StoreResult<Vec<String>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(self.keys.budget_index(tenant)).arg(0).arg(count - 1);
        self.query(&cmd).await
    }
}
