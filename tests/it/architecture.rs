//! The map in README §Architecture, checked against the source: each test reads `src/` as text
//! and fails naming the file and line that breaks an invariant.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/`, with its path relative to the crate root, up to its unit-test
/// module (fixtures there may spell anything).
fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path: PathBuf = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).expect("under the root").to_string_lossy().replace('\\', "/");
                let text = std::fs::read_to_string(&path).expect("source is UTF-8");
                let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_string();
                out.push((rel, code));
            }
        }
    }
    out.sort();
    out
}

/// Lines of code (comments dropped) that use `name` as a path root: `name::` not preceded by
/// `::` or an identifier character, or `use name`.
fn uses_crate(line: &str, name: &str) -> bool {
    let code = line.split("//").next().unwrap_or_default();
    let mut from = 0;
    while let Some(i) = code[from..].find(&format!("{name}::")) {
        let at = from + i;
        let before = code[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            return true;
        }
        from = at + name.len() + 2;
    }
    let trimmed = code.trim_start();
    trimmed.starts_with(&format!("use {name};")) || trimmed.starts_with(&format!("pub use {name};"))
}

fn violations(files: &[(String, String)], in_scope: impl Fn(&str) -> bool, bad: impl Fn(&str) -> bool) -> Vec<String> {
    files
        .iter()
        .filter(|(path, _)| in_scope(path))
        .flat_map(|(path, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, l)| bad(l))
                .map(move |(n, l)| format!("{path}:{}: {}", n + 1, l.trim()))
        })
        .collect()
}

#[test]
fn only_the_store_module_speaks_to_a_redis_or_postgres_driver() {
    let found = violations(
        &sources(),
        |p| !p.starts_with("src/store/"),
        |l| uses_crate(l, "redis") || uses_crate(l, "sqlx") || uses_crate(l, "deadpool_redis"),
    );
    assert!(found.is_empty(), "driver used outside src/store/:\n{}", found.join("\n"));
}

/// The layers below the API: they answer `domain::Error` and know nothing of HTTP.
const BELOW_API: [&str; 6] =
    ["src/ledger/", "src/catalogue/", "src/domain/", "src/events/", "src/store/", "src/workers/"];

#[test]
fn the_layers_below_the_api_know_no_http() {
    let found = violations(
        &sources(),
        |p| BELOW_API.iter().any(|d| p.starts_with(d)),
        |l| {
            ["axum", "http", "tower", "tower_http", "hyper"].iter().any(|c| uses_crate(l, c))
                || ["crate::http", "crate::error", "crate::admin_api", "crate::runtime_api", "crate::state"]
                    .iter()
                    .any(|m| l.split("//").next().unwrap_or_default().contains(m))
        },
    );
    assert!(found.is_empty(), "HTTP below the API layers:\n{}", found.join("\n"));
}

#[test]
fn no_error_overrides_the_status_its_code_has_in_the_table() {
    let found = violations(&sources(), |_| true, |l| l.contains(".with_status(") || l.contains("fn with_status"));
    assert!(found.is_empty(), "status overrides:\n{}", found.join("\n"));
}

#[test]
fn wire_error_strings_are_written_only_in_the_error_table() {
    let table = "src/domain/error.rs";
    let found = violations(
        &sources(),
        |p| p != table,
        |l| {
            let code = l.split("//").next().unwrap_or_default();
            ["\"INVALID_REQUEST\"", "\"BUDGET_EXCEEDED\"", "\"TENANT_CLOSED\"", "\"INTERNAL_ERROR\""]
                .iter()
                .any(|w| code.contains(w))
        },
    );
    assert!(found.is_empty(), "wire error strings outside {table}:\n{}", found.join("\n"));
}

#[test]
fn only_the_catalogue_writes_audit_entries() {
    let found = violations(
        &sources(),
        |p| !p.starts_with("src/catalogue/") && !p.starts_with("src/store/"),
        |l| l.contains(".audited(") || l.contains("audit::append("),
    );
    assert!(found.is_empty(), "audit entries written outside the catalogue:\n{}", found.join("\n"));
}

#[test]
fn list_endpoints_share_one_pagination_module() {
    let found = violations(
        &sources(),
        |p| p != "src/http/page.rs",
        |l| {
            let code = l.split("//").next().unwrap_or_default();
            code.contains("URL_SAFE_NO_PAD") && code.contains("decode")
                || code.contains("\"asc\"") && !code.contains("sort")
                || code.contains("Some(\"asc\")")
        },
    );
    assert!(found.is_empty(), "cursor or sort parsing outside src/http/page.rs:\n{}", found.join("\n"));
}

/// Files longer than this are split by responsibility (STYLE: "files under ~400 lines").
const FILE_LINES_MAX: usize = 450;

#[test]
fn no_source_file_is_longer_than_the_limit() {
    let long: Vec<String> = sources()
        .iter()
        .map(|(p, t)| (p, t.lines().count()))
        .filter(|(_, n)| *n > FILE_LINES_MAX)
        .map(|(p, n)| format!("{p}: {n} lines"))
        .collect();
    assert!(long.is_empty(), "files over {FILE_LINES_MAX} lines:\n{}", long.join("\n"));
}

/// Functions longer than this are split (STYLE: "functions under ~70").
const FN_LINES_MAX: usize = 75;

/// `(file, line, name, length)` of every `fn` in the source, its length counted from the
/// signature to the closing brace at the signature's indentation.
fn functions(files: &[(String, String)]) -> Vec<(String, usize, String, usize)> {
    let mut out = Vec::new();
    for (path, text) in files {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let indent = line.len() - line.trim_start().len();
            let mut words = line
                .split_whitespace()
                .skip_while(|w| w.starts_with("pub") || ["async", "const", "unsafe"].contains(w));
            if words.next() != Some("fn") {
                continue;
            }
            let name = words.next().unwrap_or_default().split(['(', '<']).next().unwrap_or_default().to_string();
            let close = format!("{}}}", " ".repeat(indent));
            let end = lines[i + 1..].iter().position(|l| l.trim_end() == close).map_or(lines.len(), |p| i + 1 + p);
            out.push((path.clone(), i + 1, name, end - i + 1));
        }
    }
    out
}

#[test]
fn no_function_is_longer_than_the_limit() {
    let long: Vec<String> = functions(&sources())
        .into_iter()
        .filter(|(_, _, _, n)| *n > FN_LINES_MAX)
        .map(|(p, l, name, n)| format!("{p}:{l}: fn {name}: {n} lines"))
        .collect();
    assert!(long.is_empty(), "functions over {FN_LINES_MAX} lines:\n{}", long.join("\n"));
}
