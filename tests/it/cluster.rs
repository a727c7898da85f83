//! A three-master Redis Cluster on loopback ports, started once per test process by the
//! first test that asks for it and shared (every test has its own key prefix and tenants).
//! The nodes are children of a thread that lives as long as the process, with a parent-death
//! signal, so they stop when the test binary exits however it exits.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The cluster bus listens on port + 10000, so node ports stay at or below 55535.
const PORT_MIN: u16 = 21000;
const PORT_MAX: u16 = 55000;
const NODES: usize = 3;
const START_TIMEOUT: Duration = Duration::from_secs(30);

static CLUSTER: OnceLock<Vec<String>> = OnceLock::new();

fn free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
}

fn pick_ports() -> Vec<u16> {
    let span = PORT_MAX - PORT_MIN;
    let mut port = PORT_MIN + (std::process::id() % u32::from(span)) as u16;
    let mut out = Vec::new();
    while out.len() < NODES {
        port = if port >= PORT_MAX { PORT_MIN } else { port + 1 };
        if free(port) {
            out.push(port);
        }
    }
    out
}

fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli").args(args).stdin(Stdio::null()).output().expect("redis-cli on PATH");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the node directories of earlier test processes that have exited.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("tollgate-cluster-")
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start() -> Vec<String> {
    remove_stale_dirs();
    let dir = std::env::temp_dir().join(format!("tollgate-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cluster dir");
    let ports = pick_ports();
    let (tx, rx) = std::sync::mpsc::channel();
    let node_dir = dir.clone();
    let node_ports = ports.clone();
    // The nodes' parent thread must outlive every test: PR_SET_PDEATHSIG fires when the
    // thread that spawned a child exits.
    std::thread::spawn(move || {
        let mut children = Vec::new();
        for port in &node_ports {
            let conf = node_dir.join(format!("nodes-{port}.conf"));
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                .args(["--cluster-config-file", conf.to_str().unwrap_or_default()])
                .args(["--save", "", "--appendonly", "no", "--dir", node_dir.to_str().unwrap_or_default()])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            children.push(cmd.spawn().expect("redis-server on PATH"));
        }
        let _ = tx.send(());
        loop {
            std::thread::park();
        }
    });
    rx.recv().expect("nodes spawned");
    let deadline = Instant::now() + START_TIMEOUT;
    for port in &ports {
        while redis_cli(&["-p", &port.to_string(), "ping"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "cluster node {port} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut args = vec!["--cluster", "create"];
    args.extend(addrs.iter().map(String::as_str));
    args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
    redis_cli(&args);
    for port in &ports {
        while !redis_cli(&["-p", &port.to_string(), "cluster", "info"]).contains("cluster_state:ok") {
            assert!(Instant::now() < deadline, "cluster did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect()
}

/// The node URLs of this process's cluster, starting it on first use.
pub fn nodes() -> Vec<String> {
    CLUSTER.get_or_init(start).clone()
}
