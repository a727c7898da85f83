//! The audit export format: one entry with its chain link per line (NDJSON) or row (CSV), so a
//! copy of the log can be verified offline. A line carries the entry's sequence number, every
//! hashed field (the timestamp also as whole microseconds, what the hash covers), `prev_hash`
//! and `hash` in hex. Both the admin API (writing) and `tollgate audit verify --file`
//! (reading) use this module, so the two cannot drift apart.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::audit::AuditEntry;

/// An entry as stored in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainedEntry {
    pub seq: i64,
    pub entry: AuditEntry,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// CSV columns, in order (the header row).
pub const CSV_COLUMNS: [&str; 18] = [
    "seq",
    "log_id",
    "timestamp",
    "timestamp_us",
    "tenant_id",
    "key_id",
    "user_agent",
    "source_ip",
    "operation",
    "resource_type",
    "resource_id",
    "request_id",
    "trace_id",
    "status",
    "error_code",
    "metadata",
    "prev_hash",
    "hash",
];

impl ChainedEntry {
    /// Whether the entry's content still hashes to its recorded link.
    pub fn holds(&self) -> bool {
        self.entry.link_hash(self.seq, &self.prev_hash) == self.hash
    }

    fn json(&self) -> Value {
        let e = &self.entry;
        json!({
            "seq": self.seq,
            "log_id": e.log_id.to_string(),
            "timestamp": e.timestamp.format(&Rfc3339).unwrap_or_default(),
            "timestamp_us": (e.timestamp.unix_timestamp_nanos() / 1_000).to_string(),
            "tenant_id": e.tenant_id,
            "key_id": e.key_id,
            "user_agent": e.user_agent,
            "source_ip": e.source_ip,
            "operation": e.operation,
            "resource_type": e.resource_type,
            "resource_id": e.resource_id,
            "request_id": e.request_id,
            "trace_id": e.trace_id,
            "status": e.status,
            "error_code": e.error_code,
            "metadata": e.metadata,
            "prev_hash": hex::encode(&self.prev_hash),
            "hash": hex::encode(&self.hash),
        })
    }

    /// One NDJSON line, newline included.
    pub fn to_ndjson(&self) -> String {
        let mut line = self.json().to_string();
        line.push('\n');
        line
    }

    /// One CSV row in [`CSV_COLUMNS`] order, newline included; `metadata` as JSON text.
    pub fn to_csv(&self) -> String {
        let doc = self.json();
        let cells: Vec<String> = CSV_COLUMNS
            .iter()
            .map(|c| match &doc[*c] {
                Value::Null => String::new(),
                Value::String(s) => csv_cell(s),
                other => csv_cell(&other.to_string()),
            })
            .collect();
        let mut row = cells.join(",");
        row.push_str("\r\n");
        row
    }

    /// Parses one NDJSON line; the error names the field that is missing or malformed.
    pub fn from_ndjson(line: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
        let need = |k: &str| text(k).ok_or_else(|| format!("{k} is missing"));
        let hex_of = |k: &str| need(k).and_then(|h| hex::decode(h).map_err(|_| format!("{k} is not hex")));
        let micros: i128 = need("timestamp_us")?.parse().map_err(|_| "timestamp_us is not an integer".to_string())?;
        let entry = AuditEntry {
            log_id: need("log_id")?.parse().map_err(|_| "log_id is not a UUID".to_string())?,
            timestamp: OffsetDateTime::from_unix_timestamp_nanos(micros * 1_000)
                .map_err(|_| "timestamp_us is out of range".to_string())?,
            tenant_id: need("tenant_id")?,
            key_id: text("key_id"),
            user_agent: text("user_agent"),
            source_ip: text("source_ip"),
            operation: need("operation")?,
            resource_type: text("resource_type"),
            resource_id: text("resource_id"),
            request_id: text("request_id"),
            trace_id: text("trace_id"),
            status: v
                .get("status")
                .and_then(Value::as_i64)
                .and_then(|s| i32::try_from(s).ok())
                .ok_or("status is missing")?,
            error_code: text("error_code"),
            metadata: v.get("metadata").filter(|m| !m.is_null()).cloned(),
        };
        let seq = v.get("seq").and_then(Value::as_i64).ok_or("seq is missing")?;
        Ok(Self { seq, entry, prev_hash: hex_of("prev_hash")?, hash: hex_of("hash")? })
    }
}

/// A CSV cell (RFC 4180): quoted when it holds a comma, a quote or a line break.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// Where an exported file stops holding: the 1-based line and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBreak {
    pub line: usize,
    pub seq: Option<i64>,
    pub reason: String,
}

/// Verifies an NDJSON export line by line: every entry must hash to its recorded link, and
/// where two lines have consecutive sequence numbers the later one's `prev_hash` must be the
/// earlier one's `hash` (a filtered export skips entries, so gaps are allowed). Returns the
/// number of entries verified and the first break.
pub fn verify_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> (u64, Option<FileBreak>) {
    let mut verified = 0;
    let mut previous: Option<(i64, Vec<u8>)> = None;
    for (i, line) in lines.into_iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |seq: Option<i64>, reason: String| Some(FileBreak { line: i + 1, seq, reason });
        let entry = match ChainedEntry::from_ndjson(line) {
            Ok(e) => e,
            Err(why) => return (verified, at(None, why)),
        };
        if !entry.holds() {
            return (verified, at(Some(entry.seq), "content does not match its hash (the line was altered)".into()));
        }
        if let Some((seq, hash)) = &previous {
            if entry.seq <= *seq {
                return (verified, at(Some(entry.seq), format!("out of order after entry {seq}")));
            }
            if entry.seq == seq + 1 && entry.prev_hash != *hash {
                return (verified, at(Some(entry.seq), "prev_hash does not match the preceding entry's hash".into()));
            }
        }
        previous = Some((entry.seq, entry.hash.clone()));
        verified += 1;
    }
    (verified, None)
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_with_separators_quotes_or_line_breaks_are_quoted() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
    }
}
