//! The outbox streams as the drain uses them: consumer-group create, read, reclaim,
//! acknowledge-and-delete, and the depth gauge. Entries arrive as [`StreamEntry`] (string
//! fields only); the two consumer-group conditions a caller acts on are variants of
//! [`StreamError`], recognised here by the server's error code.

use std::collections::HashMap;

use redis::Value;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};

use super::RedisStore;
use crate::store::StoreError;

/// One stream entry: its id (`<ms>-<seq>`) and its fields that hold text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: String,
    pub fields: HashMap<String, String>,
}

impl StreamEntry {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

impl From<StreamId> for StreamEntry {
    fn from(entry: StreamId) -> Self {
        let fields = entry
            .map
            .into_iter()
            .filter_map(|(name, value)| {
                let text = match value {
                    Value::BulkString(b) => String::from_utf8(b).ok(),
                    Value::SimpleString(s) => Some(s),
                    _ => None,
                }?;
                Some((name, text))
            })
            .collect();
        Self { id: entry.id, fields }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The stream has no such consumer group (NOGROUP): a Redis that lost its data lost the
    /// group with it.
    #[error("consumer group missing")]
    NoGroup,
    /// The group already exists (BUSYGROUP): creating it again is not an error for a caller
    /// that only wants it to exist.
    #[error("consumer group already exists")]
    GroupExists,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<redis::RedisError> for StreamError {
    fn from(err: redis::RedisError) -> Self {
        match err.code() {
            Some("NOGROUP") => Self::NoGroup,
            Some("BUSYGROUP") => Self::GroupExists,
            _ => Self::Store(err.into()),
        }
    }
}

pub type StreamResult<T> = Result<T, StreamError>;

impl RedisStore {
    /// Creates `group` on `stream` (and the stream, if missing), reading from its start.
    pub async fn create_group(&self, stream: &str, group: &str) -> StreamResult<()> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE").arg(stream).arg(group).arg("0").arg("MKSTREAM");
        let _: Value = self.query_driver(&cmd).await?;
        Ok(())
    }

    /// Up to `count` entries never delivered to `group`, now delivered to `consumer`.
    pub async fn read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> StreamResult<Vec<StreamEntry>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(group).arg(consumer).arg("COUNT").arg(count).arg("STREAMS").arg(stream).arg(">");
        let reply: Option<StreamReadReply> = self.query_driver(&cmd).await?;
        Ok(reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids).map(StreamEntry::from).collect())
    }

    /// Up to `count` entries delivered to some consumer of `group` and not acknowledged for
    /// `idle_ms`, now held by `consumer`.
    pub async fn claim_idle(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        idle_ms: u64,
        count: usize,
    ) -> StreamResult<Vec<StreamEntry>> {
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(stream).arg(group).arg(consumer).arg(idle_ms).arg("0-0").arg("COUNT").arg(count);
        let reply: StreamAutoClaimReply = self.query_driver(&cmd).await?;
        Ok(reply.claimed.into_iter().map(StreamEntry::from).collect())
    }

    /// Acknowledges `ids` for `group` and deletes them from `stream`, in one round trip.
    pub async fn ack_and_delete(&self, stream: &str, group: &str, ids: &[&str]) -> StreamResult<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("XACK").arg(stream).arg(group).arg(ids).ignore();
        pipe.cmd("XDEL").arg(stream).arg(ids).ignore();
        let _: () = self.pipeline_driver(&pipe).await?;
        Ok(())
    }

    /// The stream's length and the id of its oldest entry, in one round trip.
    pub async fn stream_depth(&self, stream: &str) -> StreamResult<(u64, Option<String>)> {
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN").arg(stream).cmd("XRANGE").arg(stream).arg("-").arg("+").arg("COUNT").arg(1);
        let (len, first): (u64, Vec<(String, Value)>) = self.pipeline_driver(&pipe).await?;
        Ok((len, first.into_iter().next().map(|(id, _)| id)))
    }
}
