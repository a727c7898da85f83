//! Correlation ids of the request being served, carried into audit rows, events and outbound
//! webhooks. The API layer builds them from the HTTP request; below it they are plain data.

/// Who asked, as far as logs and audit care: the request and trace ids and the client's agent.
#[derive(Debug, Clone, Default)]
pub struct Correlation {
    pub request_id: String,
    /// W3C trace id (32 lowercase hex).
    pub trace_id: String,
    /// Trace flags of a valid inbound `traceparent` (outbound webhooks preserve them).
    pub trace_flags: Option<u8>,
    pub user_agent: Option<String>,
    /// The client's address as the listener saw it (audit rows' `source_ip`).
    pub source_ip: Option<String>,
    /// The admin principal that authenticated the request (admin plane only), so every audit
    /// entry names it as the actor.
    pub admin: Option<super::access::AdminIdentity>,
    /// The correlation id of the events the ledger emits for this request, when it is not the
    /// default of their type (a bulk action's fan-out id).
    pub correlation_id: Option<String>,
}
