//! What every benchmark needs: settings from the environment, a free port, a ready medic.

#![allow(dead_code)]

use std::{net::TcpListener, time::Duration};

/// `name` from the environment, parsed, else `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("local address")
        .port()
}

/// Waits until the medic at `base` answers `/readyz` with 200.
pub async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("medic did not become ready");
}

/// CPU time (user and system, in seconds) used so far by process `pid`; with `children`, also
/// by its live child processes and the ones it has waited for (a Postgres server's backends).
pub fn cpu_seconds(pid: u32, children: bool) -> f64 {
    // Fields after the command's closing parenthesis, from 3 (state): 14 utime, 15 stime,
    // 16 cutime, 17 cstime; 4 is the parent's pid.
    let fields = |pid: &str| -> Option<Vec<u64>> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        Some(rest.split(' ').map(|f| f.parse().unwrap_or(0)).collect())
    };
    let Some(own) = fields(&pid.to_string()) else {
        return 0.0;
    };
    let mut ticks = own[11] + own[12];
    if children {
        ticks += own[13] + own[14];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(child) = fields(&name).filter(|f| f[1] == u64::from(pid)) {
                ticks += child[11] + child[12];
            }
        }
    }
    // The kernel counts in clock ticks, 100 a second on Linux (USER_HZ).
    ticks as f64 / 100.0
}
