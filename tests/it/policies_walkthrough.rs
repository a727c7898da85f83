//! README §Policies' walkthrough, run as it is written: the shell block is taken from the
//! README, pointed at a test engine (its ports and admin key), and run with bash; every answer
//! it prints must be a success, and the dry run's replay must count what the README says.

use serde_json::Value;

use crate::helpers::{ADMIN_KEY, TestApp};

/// The first `sh` block after the walkthrough's introduction in README §Policies.
fn walkthrough() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let intro = readme.find("A walkthrough (engine running as in the quick start, a fresh deployment;").expect("intro");
    let start = intro + readme[intro..].find("```sh\n").expect("the block") + "```sh\n".len();
    let end = start + readme[start..].find("```").expect("the block's end");
    readme[start..end].to_string()
}

#[tokio::test]
async fn the_readme_policies_walkthrough_runs_as_written() {
    let app = TestApp::spawn().await;
    let (runtime, admin) = (app.instance.runtime.unwrap(), app.instance.admin.unwrap());
    let script = walkthrough()
        .replace("change-me-to-a-long-secret", ADMIN_KEY)
        .replace("localhost:7979", &admin.to_string())
        .replace("localhost:7878", &runtime.to_string());
    let out = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .output()
        .await
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the walkthrough failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    // curl prints the answers back to back; `echo "$POL"` prints a bare id between them.
    let mut answers = Vec::new();
    for chunk in stdout.split('\n') {
        let values = serde_json::Deserializer::from_str(chunk).into_iter::<Value>();
        answers.extend(values.map_while(Result::ok).filter(Value::is_object));
    }
    let errors: Vec<&Value> = answers.iter().filter(|a| a.get("error").is_some()).collect();
    assert!(errors.is_empty(), "answers with errors: {errors:?}\n{stdout}");
    let kinds = answers.iter().find(|a| a.get("kinds").is_some()).expect("the registry list");
    assert_eq!(kinds["kinds"].as_array().map(Vec::len), Some(6), "six high-risk kinds");
    let reservations = answers.iter().filter(|a| a.get("reservation_id").is_some()).count();
    assert_eq!(reservations, 3);
    let dry = answers.iter().find(|a| a.get("replay").is_some()).expect("the dry run");
    let replay = &dry["replay"];
    println!("README dry run replay: {replay}");
    assert_eq!((replay["reservations"].as_i64(), replay["denied"].as_i64()), (Some(3), Some(1)), "{replay}");
    assert_eq!(replay["top_scopes"][0]["scope"], "tenant:hooli/agent:planner");
    assert_eq!(dry["summary"]["deny"], 1);
    let versions = answers.iter().find(|a| a.get("versions").is_some()).expect("the versions");
    assert_eq!(versions["current_version"], 2);
    // The rollback to version 1 answers the first token cap (the create's answer went into $POL).
    let first_cap = answers.iter().filter(|a| a.get("policy_id").is_some() && a["caps"]["max_tokens"] == 4096);
    assert_eq!(first_cap.count(), 1, "{stdout}");
}
