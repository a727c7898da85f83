//! The outbox streams as the drain uses them: consumer-group create, read, reclaim,
//! acknowledge-and-delete, and the depth gauge. Entries arrive as [`StreamEntry`], parsed
//! here from the raw reply so that no content (non-UTF-8, duplicate names) can fail a read
//! and stall a stream; the two consumer-group conditions a caller acts on are variants of
//! [`StreamError`], recognised here by the server's error code.

use std::collections::HashMap;

use redis::Value;

use super::RedisStore;
use crate::store::StoreError;

/// One stream entry: its id (`<ms>-<seq>`), its fields that hold text, and every field as
/// the bytes Redis holds (in stream order, duplicates and non-UTF-8 included), so an entry
/// the drain cannot use can still be kept whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: String,
    pub fields: HashMap<String, String>,
    pub raw: Vec<(Vec<u8>, Vec<u8>)>,
}

impl StreamEntry {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// The entry's names and values alternating, each as a netstring (`<length>:<bytes>,`):
    /// lossless for any bytes, and readable by eye when they are text.
    pub fn raw_netstrings(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for part in self.raw.iter().flat_map(|(name, value)| [name, value]) {
            out.extend_from_slice(part.len().to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(part);
            out.push(b',');
        }
        out
    }

    /// One entry of an XREADGROUP / XAUTOCLAIM reply: `[id, [name, value, …]]`. `None` for
    /// anything else, such as the nil Redis 6.2 gives for a claimed entry deleted since.
    fn parse(value: Value) -> Option<StreamEntry> {
        let Value::Array(mut parts) = value else { return None };
        if parts.len() != 2 {
            return None;
        }
        let body = parts.pop()?;
        let id = String::from_utf8(bytes_of(parts.pop()?)?).ok()?;
        let pairs: Vec<(Value, Value)> = match body {
            Value::Array(flat) => {
                let mut flat = flat.into_iter();
                std::iter::from_fn(|| Some((flat.next()?, flat.next()?))).collect()
            }
            Value::Map(pairs) => pairs,
            _ => Vec::new(),
        };
        let raw: Vec<(Vec<u8>, Vec<u8>)> =
            pairs.into_iter().filter_map(|(n, v)| Some((bytes_of(n)?, bytes_of(v)?))).collect();
        let fields = raw
            .iter()
            .filter_map(|(n, v)| Some((String::from_utf8(n.clone()).ok()?, String::from_utf8(v.clone()).ok()?)))
            .collect();
        Some(StreamEntry { id, fields, raw })
    }
}

fn bytes_of(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

/// The entries of a list of `[id, fields]` (entries that do not parse are skipped: they can
/// only be nils for deleted entries).
fn entries_of(value: Value) -> Vec<StreamEntry> {
    match value {
        Value::Array(items) => items.into_iter().filter_map(StreamEntry::parse).collect(),
        _ => Vec::new(),
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
        // `[[stream, entries]]` (a map of stream → entries under RESP3), nil when nothing is new.
        let streams: Vec<Value> = match self.query_driver(&cmd).await? {
            Value::Array(streams) => streams
                .into_iter()
                .filter_map(|s| match s {
                    Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
                    _ => None,
                })
                .collect(),
            Value::Map(pairs) => pairs.into_iter().map(|(_, entries)| entries).collect(),
            _ => Vec::new(),
        };
        Ok(streams.into_iter().flat_map(entries_of).collect())
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
        // `[next cursor, claimed entries, deleted ids]`.
        let reply: Value = self.query_driver(&cmd).await?;
        let claimed = match reply {
            Value::Array(parts) => parts.into_iter().nth(1),
            _ => None,
        };
        Ok(claimed.map(entries_of).unwrap_or_default())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(b: &[u8]) -> Value {
        Value::BulkString(b.to_vec())
    }

    #[test]
    fn an_entry_keeps_every_field_as_bytes_and_only_text_fields_as_fields() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk(b"1-0"),
                Value::Array(vec![
                    bulk(b"t"),
                    bulk(b"budget.funded"),
                    bulk(b"d"),
                    bulk(b"\xff\0"),
                    bulk(b"t"),
                    bulk(b"x"),
                ]),
            ]),
            // Redis 6.2 answers a claimed entry deleted since with a nil.
            Value::Nil,
        ]);
        let entries = entries_of(reply);
        assert_eq!(entries.len(), 1);
        let entry = &entries[0];
        assert_eq!(entry.id, "1-0");
        assert_eq!(entry.raw.len(), 3, "duplicates and non-UTF-8 values are kept");
        assert_eq!(entry.field("d"), None);
        assert_eq!(entry.raw_netstrings(), b"1:t,13:budget.funded,1:d,2:\xff\0,1:t,1:x,".to_vec());
    }
}
