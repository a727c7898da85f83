//! The yardstick step: a minimal 3-scope reserve script — an idempotency GET and SET, one
//! HMGET and one HINCRBY per scope, a reservation HSET and an expiry ZADD — driven straight
//! at the engine's Redis by `redis-benchmark` (a fresh key per call, `__rand_int__`). It is what
//! a naive one-call-per-request engine could reach on this Redis at best; the engine's HTTP
//! reserves are compared with it at the same concurrency.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The script: KEYS[1] idempotency key, KEYS[2] budgets hash, KEYS[3] reservation,
/// KEYS[4] expiry zset; ARGV[1] estimate, ARGV[2] deadline, ARGV[3..] scopes.
const SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) then return 0 end
local e = tonumber(ARGV[1])
for i = 3, #ARGV do
  local v = redis.call('HMGET', KEYS[2], ARGV[i] .. ':a', ARGV[i] .. ':r')
  if tonumber(v[1]) - tonumber(v[2]) < e then return -1 end
end
for i = 3, #ARGV do redis.call('HINCRBY', KEYS[2], ARGV[i] .. ':r', e) end
redis.call('HSET', KEYS[3], 'estimate', e, 'deadline', ARGV[2], 'status', 'ACTIVE')
redis.call('ZADD', KEYS[4], ARGV[2], KEYS[3])
redis.call('SET', KEYS[1], KEYS[3], 'PX', 86400000)
return 1
"#;

pub struct YardstickResult {
    pub clients: usize,
    pub requests: usize,
    pub per_s: f64,
}

fn host_port(redis_url: &str) -> Result<(String, u16)> {
    let rest = redis_url.split("://").nth(1).context("--redis-url has no scheme")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "6379"));
    Ok((host.to_string(), port.parse().context("--redis-url port")?))
}

/// Loads the script, seeds three budgets under the bench prefix, runs `redis-benchmark` with
/// `clients` connections for `requests` calls and returns its calls per second.
pub async fn run(redis_url: &str, prefix: &str, clients: usize, requests: usize) -> Result<YardstickResult> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(SCRIPT).query_async(&mut conn).await?;
    let tag = format!("{prefix}:{{yardstick}}");
    let budgets = format!("{tag}:budgets");
    let scopes = ["tenant:y", "tenant:y/workspace:ws", "tenant:y/workspace:ws/agent:a"];
    for s in scopes {
        let _: () = redis::cmd("HSET")
            .arg(&budgets)
            .arg(format!("{s}:a"))
            .arg(i64::MAX / 2)
            .arg(format!("{s}:r"))
            .arg(0)
            .query_async(&mut conn)
            .await?;
    }
    let (host, port) = host_port(redis_url)?;
    let mut cmd = tokio::process::Command::new("redis-benchmark");
    cmd.args(["-h", &host, "-p", &port.to_string(), "-c", &clients.to_string(), "-n", &requests.to_string()])
        .args(["-r", "1000000000", "-q"])
        .args(["EVALSHA", &sha, "4"])
        .arg(format!("{tag}:idem:__rand_int__"))
        .arg(&budgets)
        .arg(format!("{tag}:res:__rand_int__"))
        .arg(format!("{tag}:expiry"))
        .args(["1000", "4102444800000"])
        .args(scopes)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .context("redis-benchmark did not finish in 600 s")?
        .context("running redis-benchmark (is it installed? it comes with redis-server)")?;
    if !out.status.success() {
        bail!("redis-benchmark failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    // `-q` ends with "<command>: <n> requests per second[, p50=…]"; the progress lines
    // before it are separated by carriage returns.
    let text = String::from_utf8_lossy(&out.stdout);
    let per_s = text
        .split(['\r', '\n'])
        .filter_map(|l| l.split_once(": ")?.1.split(" requests per second").next()?.trim().parse::<f64>().ok())
        .next_back()
        .with_context(|| format!("no 'requests per second' in redis-benchmark's output: {text}"))?;
    // The records it wrote carry the bench prefix: scripts/bench deletes `<prefix>:*`.
    Ok(YardstickResult { clients, requests, per_s })
}
