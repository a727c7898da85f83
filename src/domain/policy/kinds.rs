//! The built-in action kind registry (cycles-action-kinds v0.1.26, `x-action-kind-registry`):
//! every kind with its risk class. Policies may name only these kinds: the registry is closed
//! to policy authors, and Tollgate has no declaration mechanism for `custom.*` kinds, so a
//! `custom.*` kind is refused everywhere (the spec rejects undeclared custom kinds with 400).

use super::RiskClass;
use super::RiskClass as R;

/// The registry version these kinds come from.
pub const REGISTRY_VERSION: &str = "0.1.26";
/// The spec's `maxLength` of an action kind string.
pub const KIND_LEN_MAX: usize = 64;

/// Sorted by kind, so lookups are a binary search.
const KINDS: &[(&str, RiskClass)] = &[
    ("agent.delegate", R::SideEffect),
    ("agent.human_escalation", R::ExternalSideEffect),
    ("agent.message", R::SideEffect),
    ("agent.spawn", R::SideEffect),
    ("audio.generate", R::ExternalSideEffect),
    ("audio.transcribe", R::ReadOnly),
    ("calendar.read", R::ReadOnly),
    ("calendar.write", R::ExternalSideEffect),
    ("code.deploy", R::HighRisk),
    ("code.exec", R::HighRisk),
    ("code.lint", R::ReadOnly),
    ("crm.record.delete", R::ExternalSideEffect),
    ("crm.record.read", R::ReadOnly),
    ("crm.record.write", R::SideEffect),
    ("db.query", R::ReadOnly),
    ("db.schema_change", R::HighRisk),
    ("db.write", R::SideEffect),
    ("document.create", R::SideEffect),
    ("document.edit", R::SideEffect),
    ("document.share", R::ExternalSideEffect),
    ("file.delete", R::SideEffect),
    ("file.read", R::ReadOnly),
    ("file.write", R::LocalMutation),
    ("http.delete", R::ExternalSideEffect),
    ("http.get", R::ReadOnly),
    ("http.graphql", R::SideEffect),
    ("http.post", R::ExternalSideEffect),
    ("http.put", R::ExternalSideEffect),
    ("image.edit", R::ExternalSideEffect),
    ("image.generate", R::ExternalSideEffect),
    ("llm.completion", R::SideEffect),
    ("llm.embedding", R::ReadOnly),
    ("llm.structured_output", R::SideEffect),
    ("memory.delete", R::SideEffect),
    ("memory.read", R::ReadOnly),
    ("memory.write", R::LocalMutation),
    ("message.chat.post", R::ExternalSideEffect),
    ("message.email.send", R::ExternalSideEffect),
    ("message.slack.post", R::ExternalSideEffect),
    ("message.sms.send", R::ExternalSideEffect),
    ("notification.push.send", R::ExternalSideEffect),
    ("notification.webhook.trigger", R::ExternalSideEffect),
    ("payment.charge", R::HighRisk),
    ("payment.refund", R::HighRisk),
    ("reasoning.plan", R::SideEffect),
    ("reasoning.reflect", R::SideEffect),
    ("social.dm.send", R::ExternalSideEffect),
    ("social.post.create", R::ExternalSideEffect),
    ("social.post.delete", R::ExternalSideEffect),
    ("storage.delete", R::SideEffect),
    ("storage.download", R::ReadOnly),
    ("storage.upload", R::SideEffect),
    ("unknown.call", R::SideEffect),
    ("vector.delete", R::SideEffect),
    ("vector.query", R::ReadOnly),
    ("vector.upsert", R::SideEffect),
    ("video.generate", R::HighRisk),
    ("video.transcode", R::SideEffect),
    ("vision.analyze", R::SideEffect),
    ("vision.ocr", R::SideEffect),
    ("vision.parse_document", R::SideEffect),
    ("web.search", R::ReadOnly),
];

/// The risk class of a built-in kind, or `None` when the registry does not hold it.
pub fn registered(kind: &str) -> Option<RiskClass> {
    KINDS.binary_search_by(|(k, _)| k.cmp(&kind)).ok().map(|i| KINDS[i].1)
}

/// The risk class a reservation of `kind` is governed by: the registry's, or `side_effect` for
/// an unregistered kind outside `custom.*` (the spec's UNREGISTERED KIND HANDLING).
/// `Err` for a `custom.*` kind, which must be declared and cannot be here.
pub fn risk_class_of(kind: &str) -> Result<RiskClass, String> {
    if let Some(r) = registered(kind) {
        return Ok(r);
    }
    if kind.starts_with("custom.") {
        return Err(format!("{kind:?} is an undeclared custom action kind"));
    }
    Ok(RiskClass::SideEffect)
}

/// Checks a kind a policy names: a built-in registry kind, exactly.
pub fn check_policy_kind(kind: &str) -> Result<(), String> {
    if kind.is_empty() || kind.chars().count() > KIND_LEN_MAX {
        return Err(format!("must be 1 to {KIND_LEN_MAX} characters"));
    }
    match registered(kind) {
        Some(_) => Ok(()),
        None if kind.starts_with("custom.") => {
            Err(format!("{kind:?} is an undeclared custom action kind (no custom kinds are declared)"))
        }
        None => Err(format!("{kind:?} is not in the action kind registry {REGISTRY_VERSION}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_is_sorted_and_holds_the_sixty_two_built_in_kinds() {
        assert_eq!(KINDS.len(), 62);
        assert!(KINDS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(registered("llm.completion"), Some(RiskClass::SideEffect));
        assert_eq!(registered("payment.charge"), Some(RiskClass::HighRisk));
    }

    #[test]
    fn unregistered_kinds_fall_back_to_side_effect_but_custom_ones_are_refused() {
        assert_eq!(risk_class_of("proprietary.action"), Ok(RiskClass::SideEffect));
        assert!(risk_class_of("custom.acme.erp.post").is_err());
        assert!(check_policy_kind("proprietary.action").is_err());
        assert!(check_policy_kind("custom.acme.erp.post").is_err());
        assert!(check_policy_kind("db.query").is_ok());
    }
}
