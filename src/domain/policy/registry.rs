//! The action kind registry as `GET /v1/action-kinds` publishes it: every built-in kind of
//! cycles-action-kinds v0.1.26 (`x-action-kind-registry`) in the spec's order (`unknown.call`,
//! the catch-all, last), with its description, policy key spec and MCP tool prefixes. The
//! text is the spec's, whitespace folded. `kinds` holds the same kinds sorted for lookups; a
//! test keeps the two equal. No built-in kind is deprecated in this registry version.

use super::RiskClass;
use super::RiskClass as R;

/// The spec's `ActionPolicyKeySpec`: which `Action.policy_keys` dimensions mean something for
/// a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    pub host: bool,
    pub recipient_domain: bool,
    /// The name of the resource dimension (`table`, `collection`, ...).
    pub resource_type: Option<&'static str>,
    pub path_prefix: bool,
}

/// One registry entry (the spec's `ActionKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindEntry {
    pub kind: &'static str,
    pub risk_class: RiskClass,
    pub description: &'static str,
    /// `None` for kinds with no host, domain, resource or path routing.
    pub policy_key_spec: Option<KeySpec>,
    pub mcp_tool_prefixes: &'static [&'static str],
}

const NONE: Option<KeySpec> = None;

const fn keys(
    host: bool,
    recipient_domain: bool,
    resource_type: Option<&'static str>,
    path_prefix: bool,
) -> Option<KeySpec> {
    Some(KeySpec { host, recipient_domain, resource_type, path_prefix })
}

const fn entry(
    kind: &'static str,
    risk_class: RiskClass,
    policy_key_spec: Option<KeySpec>,
    description: &'static str,
    mcp_tool_prefixes: &'static [&'static str],
) -> KindEntry {
    KindEntry { kind, risk_class, description, policy_key_spec, mcp_tool_prefixes }
}

/// The built-in kinds in the spec's order.
#[rustfmt::skip]
pub const REGISTRY: &[KindEntry] = &[
    entry("llm.completion", R::SideEffect, NONE,
        "LLM text completion or chat call (may trigger further actions)",
        &["llm_", "chat_", "complete_", "openai_chat", "anthropic_", "generate_text"]),
    entry("llm.embedding", R::ReadOnly, NONE,
        "Generate embedding vector for text",
        &["embed_", "embedding_", "openai_embed", "get_embedding", "encode_text"]),
    entry("llm.structured_output", R::SideEffect, keys(true, false, None, false),
        "LLM call with structured output constraint (JSON schema, function calling, tool use). Distinct from llm.completion for providers that bill differently.",
        &["structured_output", "json_mode", "function_call"]),
    entry("agent.spawn", R::SideEffect, NONE,
        "Spawn a child agent or sub-task with its own execution context. Governs fan-out: each spawned agent inherits or derives a budget scope.",
        &["spawn_agent", "create_agent", "fork_agent", "new_agent"]),
    entry("agent.delegate", R::SideEffect, keys(true, false, None, false),
        "Delegate a task to a named agent or agent pool. The delegate may execute actions under its own policy scope.",
        &["delegate_", "handoff_", "assign_agent", "route_to_agent"]),
    entry("agent.message", R::SideEffect, NONE,
        "Send a message to another agent within the same runtime or cluster. Enables agent-to-agent coordination and protocol exchanges.",
        &["send_to_agent", "agent_message", "a2a_send", "inter_agent"]),
    entry("agent.human_escalation", R::ExternalSideEffect, keys(false, true, None, false),
        "Escalate a decision or task to a human operator. Externally visible: triggers a notification and blocks until human response.",
        &["escalate_", "human_review", "request_approval", "ask_human"]),
    entry("web.search", R::ReadOnly, NONE,
        "Web search query (read-only, no side effects)",
        &["search_", "web_search", "search"]),
    entry("http.get", R::ReadOnly, keys(true, false, None, false),
        "HTTP GET to an external endpoint",
        &["http_get", "fetch_url", "get_url"]),
    entry("http.post", R::ExternalSideEffect, keys(true, false, None, false),
        "HTTP POST to an external endpoint",
        &["http_post", "post_url", "call_api", "api_call"]),
    entry("http.put", R::ExternalSideEffect, keys(true, false, None, false),
        "HTTP PUT/PATCH to an external endpoint",
        &["http_put", "http_patch", "update_api"]),
    entry("http.delete", R::ExternalSideEffect, keys(true, false, None, false),
        "HTTP DELETE to an external endpoint",
        &["http_delete", "delete_api"]),
    entry("http.graphql", R::SideEffect, keys(true, false, None, false),
        "Execute a GraphQL query or mutation. Classified as side_effect because a single request may contain both reads and writes.",
        &["graphql_", "gql_query", "gql_mutate"]),
    entry("message.email.send", R::ExternalSideEffect, keys(true, true, None, false),
        "Send an email to one or more recipients",
        &["send_email", "email_", "smtp_", "sendgrid_"]),
    entry("message.slack.post", R::ExternalSideEffect, keys(true, false, None, false),
        "Post a message to a Slack channel or user",
        &["slack_", "post_slack", "send_slack"]),
    entry("message.sms.send", R::ExternalSideEffect, keys(false, true, None, false),
        "Send an SMS message",
        &["send_sms", "sms_", "twilio_"]),
    entry("message.chat.post", R::ExternalSideEffect, keys(true, false, None, false),
        "Post a message to a chat platform (Teams, Discord, Mattermost, etc.). Use message.slack.post for Slack-specific routing; use this for other platforms.",
        &["teams_", "discord_", "mattermost_", "chat_send", "post_message"]),
    entry("db.query", R::ReadOnly, keys(false, false, Some("table"), false),
        "Read-only database query (SELECT)",
        &["db_query", "query_db", "sql_query", "select_"]),
    entry("db.write", R::SideEffect, keys(false, false, Some("table"), false),
        "Database write (INSERT, UPDATE, DELETE, UPSERT)",
        &["db_write", "db_insert", "db_update", "db_delete", "sql_write"]),
    entry("db.schema_change", R::HighRisk, keys(false, false, Some("table"), false),
        "Database schema modification (DDL: CREATE, ALTER, DROP)",
        &["db_migrate", "alter_table", "create_table", "drop_table"]),
    entry("crm.record.read", R::ReadOnly, keys(false, false, Some("object_type"), false),
        "Read a CRM record",
        &["get_contact", "get_lead", "crm_read", "salesforce_get"]),
    entry("crm.record.write", R::SideEffect, keys(false, false, Some("object_type"), false),
        "Create or update a CRM record",
        &["create_contact", "update_contact", "crm_write", "salesforce_create"]),
    entry("crm.record.delete", R::ExternalSideEffect, keys(false, false, Some("object_type"), false),
        "Delete a CRM record (typically irreversible)",
        &["delete_contact", "crm_delete", "salesforce_delete"]),
    entry("file.read", R::ReadOnly, keys(false, false, None, true),
        "Read a file from local or shared storage",
        &["read_file", "file_read", "get_file", "open_file"]),
    entry("file.write", R::LocalMutation, keys(false, false, None, true),
        "Write or create a file in local or shared storage",
        &["write_file", "file_write", "create_file", "save_file"]),
    entry("file.delete", R::SideEffect, keys(false, false, None, true),
        "Delete a file from storage",
        &["delete_file", "file_delete", "remove_file"]),
    entry("code.exec", R::HighRisk, keys(false, false, None, true),
        "Execute arbitrary code in a sandbox or interpreter",
        &["exec_", "run_code", "python_exec", "bash_exec", "js_exec"]),
    entry("code.deploy", R::HighRisk, keys(true, false, None, false),
        "Deploy code to a runtime environment",
        &["deploy_", "code_publish", "vercel_deploy", "lambda_deploy"]),
    entry("code.lint", R::ReadOnly, keys(false, false, None, true),
        "Run static analysis, linting, or type-checking on code. Read-only inspection with no state modification.",
        &["lint_", "check_code", "type_check", "static_analysis"]),
    entry("vector.query", R::ReadOnly, keys(false, false, Some("collection"), false),
        "Vector similarity search (read-only)",
        &["vector_search", "similarity_search", "pinecone_query"]),
    entry("vector.upsert", R::SideEffect, keys(false, false, Some("collection"), false),
        "Insert or update vectors in a vector store",
        &["vector_upsert", "embed_and_store", "pinecone_upsert"]),
    entry("vector.delete", R::SideEffect, keys(false, false, Some("collection"), false),
        "Delete vectors or documents from a vector store. Irreversible data loss for the affected embeddings.",
        &["vector_delete", "pinecone_delete", "remove_embedding", "delete_vectors"]),
    entry("memory.read", R::ReadOnly, keys(false, false, Some("store"), false),
        "Read from agent long-term memory, knowledge base, or RAG retrieval store. Includes semantic search over memory.",
        &["memory_read", "recall_", "retrieve_memory", "rag_query", "knowledge_search"]),
    entry("memory.write", R::LocalMutation, keys(false, false, Some("store"), false),
        "Write to agent long-term memory or knowledge base. Includes storing conversation summaries, facts, or documents for future retrieval.",
        &["memory_write", "memorize_", "store_memory", "rag_ingest", "knowledge_store"]),
    entry("memory.delete", R::SideEffect, keys(false, false, Some("store"), false),
        "Delete entries from agent long-term memory or knowledge base. Irreversible data loss without backups.",
        &["memory_delete", "forget_", "clear_memory", "rag_delete"]),
    entry("reasoning.plan", R::SideEffect, NONE,
        "Generate or revise an execution plan. Typically involves LLM calls to decompose a goal into steps. Operators can quota to cap runaway planning loops.",
        &["plan_", "create_plan", "decompose_", "reason_"]),
    entry("reasoning.reflect", R::SideEffect, NONE,
        "Self-evaluation or critique loop where the agent reviews its own output. Consumes LLM calls; operators can quota to prevent infinite self-correction.",
        &["reflect_", "self_evaluate", "critique_", "review_output"]),
    entry("calendar.read", R::ReadOnly, keys(true, false, None, false),
        "Read calendar events or availability",
        &["get_calendar", "list_events", "check_availability"]),
    entry("calendar.write", R::ExternalSideEffect, keys(true, false, None, false),
        "Create or modify calendar events",
        &["create_event", "update_event", "schedule_meeting"]),
    entry("payment.charge", R::HighRisk, keys(true, false, None, false),
        "Initiate a payment charge or transaction",
        &["charge_", "payment_", "stripe_charge", "process_payment"]),
    entry("payment.refund", R::HighRisk, keys(true, false, None, false),
        "Issue a payment refund",
        &["refund_", "issue_refund", "stripe_refund"]),
    entry("image.generate", R::ExternalSideEffect, keys(true, false, None, false),
        "AI image generation from a text prompt or reference image. Billed on submit regardless of downstream use. Examples: DALL-E, Stable Diffusion, Midjourney, Imagen.",
        &["generate_image", "create_image", "dalle_", "image_gen", "text_to_image"]),
    entry("image.edit", R::ExternalSideEffect, keys(true, false, None, false),
        "AI-assisted image editing, inpainting, or outpainting.",
        &["edit_image", "inpaint_", "outpaint_", "image_edit"]),
    entry("video.generate", R::HighRisk, keys(true, false, None, false),
        "AI video generation. high_risk: expensive (large billing events), long-running (minutes to hours), irreversible output. Examples: Sora, RunwayML, Pika.",
        &["generate_video", "create_video", "text_to_video", "runway_"]),
    entry("video.transcode", R::SideEffect, keys(true, false, None, true),
        "Transcode or re-encode an existing video file.",
        &["transcode_", "encode_video", "ffmpeg_"]),
    entry("audio.generate", R::ExternalSideEffect, keys(true, false, None, false),
        "AI audio generation: text-to-speech, voice cloning, or music generation. Examples: ElevenLabs, OpenAI TTS, Suno.",
        &["generate_audio", "text_to_speech", "tts_", "elevenlabs_"]),
    entry("audio.transcribe", R::ReadOnly, keys(true, false, None, false),
        "Transcribe audio or video to text. Source audio is not modified. Examples: Whisper, Deepgram.",
        &["transcribe_", "speech_to_text", "whisper_", "deepgram_"]),
    entry("vision.analyze", R::SideEffect, keys(true, false, None, false),
        "Analyze an image using a vision model. Includes scene description, object detection, visual question answering, and chart interpretation.",
        &["analyze_image", "vision_", "describe_image", "image_understand", "gpt4v_"]),
    entry("vision.ocr", R::SideEffect, keys(true, false, None, false),
        "Extract text from images or scanned documents via OCR. May use specialized OCR services or vision LLMs.",
        &["ocr_", "extract_text", "read_document", "document_ocr"]),
    entry("vision.parse_document", R::SideEffect, keys(true, false, None, true),
        "Parse a document (PDF, scan, form) into structured data. Includes table extraction, form field recognition, and layout analysis.",
        &["parse_document", "extract_form", "pdf_extract", "document_parse", "parse_pdf"]),
    entry("social.post.create", R::ExternalSideEffect, keys(true, false, None, false),
        "Publish a post to a social platform or public-facing channel. Irreversible once visible. Examples: Twitter/X, LinkedIn, Reddit.",
        &["post_tweet", "create_post", "publish_", "tweet_", "linkedin_post"]),
    entry("social.post.delete", R::ExternalSideEffect, keys(true, false, None, false),
        "Delete a previously published post. Irreversible and externally visible.",
        &["delete_post", "delete_tweet", "remove_post"]),
    entry("social.dm.send", R::ExternalSideEffect, keys(true, true, None, false),
        "Send a direct message on a social platform. Not public, but still an external irreversible communication.",
        &["send_dm", "send_message", "dm_", "direct_message"]),
    entry("notification.push.send", R::ExternalSideEffect, keys(true, false, None, false),
        "Send a push notification to a mobile device or browser. High-volume sends have reputational impact. Examples: FCM, APNs.",
        &["send_push", "push_notification", "fcm_", "apns_", "notify_"]),
    entry("notification.webhook.trigger", R::ExternalSideEffect, keys(true, false, None, false),
        "Trigger an outbound webhook to a pre-configured endpoint. Distinct from http.post: target is registered, not ad-hoc.",
        &["trigger_webhook", "send_webhook", "webhook_notify"]),
    entry("storage.upload", R::SideEffect, keys(true, false, None, true),
        "Upload a file or object to cloud storage (S3, GCS, Azure Blob).",
        &["upload_file", "s3_put", "gcs_upload", "blob_upload"]),
    entry("storage.download", R::ReadOnly, keys(true, false, None, true),
        "Download a file or object from cloud storage. May incur egress costs.",
        &["download_file", "s3_get", "gcs_download", "blob_download"]),
    entry("storage.delete", R::SideEffect, keys(true, false, None, true),
        "Delete an object from cloud storage. Irreversible without versioning.",
        &["delete_object", "s3_delete", "gcs_delete", "blob_delete"]),
    entry("document.create", R::SideEffect, keys(true, false, None, false),
        "Create a document, spreadsheet, or page in a workspace tool.",
        &["create_doc", "create_document", "new_page", "notion_create"]),
    entry("document.edit", R::SideEffect, keys(true, false, None, false),
        "Edit or update an existing document, spreadsheet, or page in a workspace tool.",
        &["edit_doc", "update_document", "modify_page", "notion_update", "gdocs_edit"]),
    entry("document.share", R::ExternalSideEffect, keys(true, true, None, false),
        "Share a document with external users or make it publicly accessible. external_side_effect because it grants access to third parties and the permission change is immediately visible outside the system.",
        &["share_doc", "share_document", "grant_access", "set_permissions"]),
    entry("unknown.call", R::SideEffect, NONE,
        "Fallback for MCP tool calls that cannot be normalized to a registered kind. risk_class=side_effect is conservative and safe. Operators SHOULD configure policies for specific kinds rather than relying on this fallback.",
        &[]),
];

/// The entry of a built-in kind (exact match: no prefix or fuzzy matching, as the spec says).
pub fn entry_of(kind: &str) -> Option<&'static KindEntry> {
    REGISTRY.iter().find(|e| e.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::kinds;

    #[test]
    fn the_published_registry_holds_exactly_the_kinds_policies_may_name_with_the_same_risk_classes() {
        assert_eq!(REGISTRY.len(), 62);
        assert_eq!(REGISTRY.last().map(|e| e.kind), Some("unknown.call"));
        for e in REGISTRY {
            assert_eq!(kinds::registered(e.kind), Some(e.risk_class), "{}", e.kind);
            assert!(e.kind.len() <= kinds::KIND_LEN_MAX && e.description.len() <= 512, "{}", e.kind);
            assert!(e.mcp_tool_prefixes.iter().all(|p| p.len() <= 128), "{}", e.kind);
        }
        let mut names: Vec<&str> = REGISTRY.iter().map(|e| e.kind).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len());
    }
}
