//! Validation of a subscription's fields, before anything is stored.

use super::*;

/// Whether a JSON value holds U+0000 in any key or string (PostgreSQL jsonb refuses it).
pub(super) fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

pub(in crate::catalogue) fn field_error((field, message): (String, String)) -> Error {
    Error::invalid_field(&field, message)
}

pub(in crate::catalogue) fn new_secret() -> Result<String> {
    let bytes = crate::auth::secret::random_bytes_32().map_err(Error::internal)?;
    Ok(format!("whsec_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

pub(in crate::catalogue) fn check_input(input: &SubscriptionInput) -> Result<()> {
    let chars = |field: &str, v: &Option<String>, max: usize| -> Result<()> {
        match v {
            Some(s) if s.chars().count() > max => {
                Err(Error::invalid_field(field, format!("must be at most {max} characters")))
            }
            _ => Ok(()),
        }
    };
    chars("name", &input.name, 256)?;
    chars("description", &input.description, 1024)?;
    chars("scope_filter", &input.scope_filter, SCOPE_FILTER_MAX)?;
    for (field, value) in
        [("name", &input.name), ("description", &input.description), ("scope_filter", &input.scope_filter)]
    {
        if value.as_deref().is_some_and(|s| s.contains('\0')) {
            return Err(Error::invalid_field(field, "must not contain NUL characters"));
        }
    }
    if input.scope_filter.as_deref() == Some("") {
        return Err(Error::invalid_field("scope_filter", "must not be empty; omit it to match every scope"));
    }
    if let Some(secret) = &input.signing_secret
        && (secret.is_empty() || secret.len() > SECRET_LEN_MAX)
    {
        return Err(Error::invalid_field("signing_secret", format!("must be 1 to {SECRET_LEN_MAX} bytes")));
    }
    if let Some(headers) = &input.headers {
        check_headers(headers)?;
    }
    if let Some(policy) = &input.retry_policy {
        policy.validate().map_err(field_error)?;
    }
    if let Some(thresholds) = &input.thresholds {
        thresholds.validate().map_err(field_error)?;
    }
    if let Some(n) = input.disable_after_failures
        && !(1..=DISABLE_AFTER_MAX).contains(&n)
    {
        return Err(Error::invalid_field("disable_after_failures", format!("must be from 1 to {DISABLE_AFTER_MAX}")));
    }
    if let Some(m) = &input.metadata {
        check_metadata(m)?;
    }
    Ok(())
}

fn check_headers(headers: &BTreeMap<String, String>) -> Result<()> {
    if headers.len() > HEADERS_MAX {
        return Err(Error::invalid_field("headers", format!("at most {HEADERS_MAX} headers")));
    }
    for (name, value) in headers {
        if !crate::domain::webhook::is_header_name(name) {
            return Err(Error::invalid_field("headers", format!("{name:?} is not a valid header name")));
        }
        if value.len() > HEADER_VALUE_MAX || !crate::domain::webhook::is_header_value(value) {
            return Err(Error::invalid_field("headers", format!("the value of {name} is not a valid header value")));
        }
    }
    Ok(())
}

fn check_metadata(m: &Value) -> Result<()> {
    if !m.is_object() {
        return Err(Error::invalid_field("metadata", "must be an object"));
    }
    if has_nul(m) {
        return Err(Error::invalid_field("metadata", "must not contain NUL characters"));
    }
    if let Some(v) = unstorable_number(m) {
        return Err(Error::invalid_field(
            "metadata",
            format!("holds {v}, which is too large to store; use a smaller magnitude"),
        ));
    }
    if m.to_string().len() > METADATA_BYTES_MAX {
        return Err(Error::invalid_field("metadata", format!("must serialize to at most {METADATA_BYTES_MAX} bytes")));
    }
    Ok(())
}
