//! Per-request correlation: a server-made `request_id` and a W3C trace id taken from
//! `traceparent`, else `X-Cycles-Trace-Id`, else freshly generated (RUNTIME-CHECKLIST R-P1..R-P4).
//!
//! The middleware puts a [`RequestCtx`] in the request's extensions and in a task-local, so an
//! error body built anywhere inside the handler can carry both ids; it echoes both on every
//! response, whatever its status.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_CYCLES_TRACE_ID: HeaderName = HeaderName::from_static("x-cycles-trace-id");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Correlation ids of one HTTP request; carried into audit rows and events.
pub type RequestCtx = crate::domain::Correlation;

tokio::task_local! {
    static CURRENT: RequestCtx;
}

/// The context of the request being served, or a fresh one outside any request.
pub fn current() -> RequestCtx {
    CURRENT.try_with(Clone::clone).unwrap_or_else(|_| fresh(&HeaderMap::new()))
}

/// The correlation of a request with these headers: a new request id, the caller's trace id.
pub fn fresh(headers: &HeaderMap) -> RequestCtx {
    {
        let (trace_id, trace_flags) = match headers.get(&TRACEPARENT).and_then(parse_traceparent) {
            Some((id, flags)) => (id, Some(flags)),
            None => match headers.get(&X_CYCLES_TRACE_ID).and_then(parse_trace_id) {
                Some(id) => (id, None),
                None => (new_trace_id(), None),
            },
        };
        let user_agent = headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        RequestCtx {
            request_id: uuid::Uuid::now_v7().to_string(),
            trace_id,
            trace_flags,
            user_agent,
            source_ip: None,
            admin: None,
            correlation_id: None,
        }
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn all_zero(s: &str) -> bool {
    s.bytes().all(|b| b == b'0')
}

/// `00-<32 hex trace>-<16 hex span>-<2 hex flags>`, lowercase, non-zero ids; anything else is absent.
pub fn parse_traceparent(value: &HeaderValue) -> Option<(String, u8)> {
    let s = value.to_str().ok()?;
    let mut parts = s.split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || version != "00" {
        return None;
    }
    let well_formed = trace.len() == 32
        && span.len() == 16
        && flags.len() == 2
        && [trace, span, flags].iter().all(|p| is_lower_hex(p));
    if !well_formed || all_zero(trace) || all_zero(span) {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace.to_string(), flags))
}

fn parse_trace_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    (s.len() == 32 && is_lower_hex(s) && !all_zero(s)).then(|| s.to_string())
}

/// 16 random bytes as 32 lowercase hex, never all zero.
pub fn new_trace_id() -> String {
    loop {
        let id = uuid::Uuid::new_v4().as_u128();
        if id != 0 {
            return format!("{id:032x}");
        }
    }
}

/// Middleware: builds the context, runs the rest of the stack inside it, echoes the ids.
pub async fn middleware(mut request: Request, next: Next) -> Response {
    let mut ctx = fresh(request.headers());
    ctx.source_ip = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|axum::extract::ConnectInfo(addr)| addr.ip().to_string());
    request.extensions_mut().insert(ctx.clone());
    let request_id = HeaderValue::from_str(&ctx.request_id).ok();
    let trace_id = HeaderValue::from_str(&ctx.trace_id).ok();
    let mut response = CURRENT.scope(ctx, next.run(request)).await;
    let headers = response.headers_mut();
    if let Some(v) = request_id {
        headers.insert(X_REQUEST_ID.clone(), v);
    }
    if let Some(v) = trace_id {
        headers.insert(X_CYCLES_TRACE_ID.clone(), v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_with_zero_span_is_absent() {
        let v = HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01");
        assert!(parse_traceparent(&v).is_none());
    }

    #[test]
    fn valid_traceparent_wins_over_cycles_header() {
        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
        h.insert(&X_CYCLES_TRACE_ID, HeaderValue::from_static("11111111111111111111111111111111"));
        let ctx = fresh(&h);
        assert_eq!(ctx.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(ctx.trace_flags, Some(1));
    }

    #[test]
    fn uppercase_cycles_trace_id_is_treated_as_absent() {
        let mut h = HeaderMap::new();
        h.insert(&X_CYCLES_TRACE_ID, HeaderValue::from_static("0AF7651916CD43DD8448EB211C80319C"));
        let ctx = fresh(&h);
        assert_ne!(ctx.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(ctx.trace_id.len(), 32);
    }
}
