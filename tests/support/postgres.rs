//! A private, throwaway Postgres cluster from the system's binaries, for tests and benchmarks.
//!
//! `DATABASE_URL`, when set, names a server to use instead. Otherwise `initdb` makes a cluster
//! in a temporary folder and `pg_ctl` starts it on a free loopback port. As root the cluster
//! runs as the `postgres` user, since Postgres refuses root. A watchdog stops the cluster when
//! the process that started it exits, however it exits.

#![allow(dead_code)]

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// A running cluster this process owns (or a server named by `DATABASE_URL`).
pub struct TempPostgres {
    /// `postgres://user@host:port` without a database name.
    base_url: String,
    cluster: Option<Cluster>,
}

struct Cluster {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    port: u16,
}

/// How the cluster treats commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync and synchronous_commit off: fast, for tests.
    Throwaway,
    /// fsync and synchronous_commit on, as in production: for benchmarks. Both kinds space
    /// checkpoints out (`max_wal_size` 4GB, 15 min), as write-heavy production servers do.
    Durable,
}

impl TempPostgres {
    /// The server named by `DATABASE_URL`, else a new throwaway cluster.
    pub fn shared_or_start() -> Self {
        match std::env::var("DATABASE_URL") {
            Ok(url) => Self {
                base_url: strip_database(&url),
                cluster: None,
            },
            Err(_) => Self::start(Durability::Throwaway),
        }
    }

    /// Always a new cluster of our own (needed to stop and restart it).
    pub fn start(durability: Durability) -> Self {
        Self::start_with(durability, "", &[])
    }

    /// A new cluster with `conf` added to postgresql.conf and `files` (name, contents) written
    /// into its data folder, owned by the server's user, before it starts: certificates and
    /// keys, for example.
    pub fn start_with(durability: Durability, conf_extra: &str, files: &[(&str, &[u8])]) -> Self {
        let bin = pg_bin();
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("medic-pg-")
            .tempdir()
            .expect("tempdir");
        let data = dir.path().join("data");
        if as_postgres {
            run(Command::new("chmod").arg("755").arg(dir.path()));
            run(Command::new("install")
                .args(["-d", "-o", "postgres", "-g", "postgres"])
                .arg(&data));
        }
        let initdb = bin.join("initdb");
        run(pg_command(as_postgres, &initdb)
            .args(["--no-sync", "-A", "trust", "-U", "postgres", "-E", "UTF8", "-D"])
            .arg(&data));
        let durable = durability == Durability::Durable;
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 300\n\
             fsync = {on}\nsynchronous_commit = {on}\nfull_page_writes = {on}\nshared_buffers = 256MB\n\
             log_min_messages = fatal\nmax_wal_size = 4GB\ncheckpoint_timeout = 15min\n",
            on = if durable { "on" } else { "off" }
        );
        append(&data.join("postgresql.conf"), &conf);
        append(&data.join("postgresql.conf"), conf_extra);
        for (name, contents) in files {
            let path = data.join(name);
            std::fs::write(&path, contents).expect("write a file into the data folder");
            run(Command::new("chmod").arg("600").arg(&path));
            if as_postgres {
                run(Command::new("chown").arg("postgres:postgres").arg(&path));
            }
        }
        let port = free_port();
        let cluster = Cluster {
            _dir: dir,
            data,
            bin,
            as_postgres,
            port,
        };
        cluster.pg_ctl_start();
        cluster.watch(std::process::id());
        Self {
            base_url: format!("postgres://postgres@127.0.0.1:{port}"),
            cluster: Some(cluster),
        }
    }

    /// URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("{}/{database}", self.base_url)
    }

    /// Creates a new empty database and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        let (client, connection) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect");
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create database");
        drop(client);
        let _ = driver.await;
        self.url(name)
    }

    /// Stops the server as an outage would (fast shutdown: clients are disconnected).
    pub fn stop(&self) {
        let cluster = self
            .cluster
            .as_ref()
            .expect("only an owned cluster can be stopped");
        run(pg_command(cluster.as_postgres, &cluster.bin.join("pg_ctl"))
            .args(["stop", "-w", "-m", "fast", "-D"])
            .arg(&cluster.data));
    }

    /// The postmaster's process ID (an owned, running cluster's), from `postmaster.pid`.
    pub fn postmaster_pid(&self) -> u32 {
        let cluster = self.cluster.as_ref().expect("an owned cluster");
        let file = std::fs::read_to_string(cluster.data.join("postmaster.pid")).expect("postmaster.pid");
        file.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("a pid")
    }

    /// The port the server listens on (an owned cluster's).
    pub fn port(&self) -> u16 {
        self.cluster.as_ref().expect("an owned cluster").port
    }

    /// A streaming standby of this cluster (`pg_basebackup -R -X stream`), started on a port
    /// of its own; promote it with [`TempPostgres::promote`].
    pub fn standby(&self) -> TempPostgres {
        let primary = self.cluster.as_ref().expect("an owned cluster");
        let dir = tempfile::Builder::new()
            .prefix("medic-pg-")
            .tempdir()
            .expect("tempdir");
        let data = dir.path().join("data");
        if primary.as_postgres {
            run(Command::new("chmod").arg("755").arg(dir.path()));
            run(Command::new("install")
                .args(["-d", "-o", "postgres", "-g", "postgres"])
                .arg(&data));
        }
        run(
            pg_command(primary.as_postgres, &primary.bin.join("pg_basebackup"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "-p",
                ])
                .arg(primary.port.to_string())
                .arg("-D")
                .arg(&data),
        );
        // The server refuses a data folder others may read; the copy keeps the folder's mode.
        run(Command::new("chmod").arg("700").arg(&data));
        let port = free_port();
        let cluster = Cluster {
            _dir: dir,
            data,
            bin: primary.bin.clone(),
            as_postgres: primary.as_postgres,
            port,
        };
        cluster.pg_ctl_start();
        cluster.watch(std::process::id());
        TempPostgres {
            base_url: format!("postgres://postgres@127.0.0.1:{port}"),
            cluster: Some(cluster),
        }
    }

    /// Promotes a standby to primary, waiting until it accepts writes.
    pub fn promote(&self) {
        let cluster = self.cluster.as_ref().expect("an owned cluster");
        run(pg_command(cluster.as_postgres, &cluster.bin.join("pg_ctl"))
            .args(["promote", "-w", "-D"])
            .arg(&cluster.data));
    }

    /// Adds `conf` to postgresql.conf and reloads the server.
    pub fn reconfigure(&self, conf: &str) {
        let cluster = self.cluster.as_ref().expect("an owned cluster");
        append(&cluster.data.join("postgresql.conf"), conf);
        run(pg_command(cluster.as_postgres, &cluster.bin.join("pg_ctl"))
            .args(["reload", "-D"])
            .arg(&cluster.data));
    }

    /// Starts a stopped server again on the same port.
    pub fn restart(&self) {
        self.cluster
            .as_ref()
            .expect("only an owned cluster can be started")
            .pg_ctl_start();
    }
}

impl Cluster {
    fn pg_ctl_start(&self) {
        let options = format!("-p {}", self.port);
        let log = self.data.join("server.log");
        let output = pg_command(self.as_postgres, &self.bin.join("pg_ctl"))
            .args(["start", "-w", "-o", &options, "-l"])
            .arg(&log)
            .arg("-D")
            .arg(&self.data)
            .output()
            .expect("run pg_ctl");
        if !output.status.success() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "pg_ctl start failed: {}\nserver.log:\n{log}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
    }

    /// A shell that stops the cluster once `pid` (this process) is gone.
    // It must outlive this process, so it is never waited for.
    #[allow(clippy::zombie_processes)]
    fn watch(&self, pid: u32) {
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {runner}'{pg_ctl}' stop -m immediate -D '{data}' >/dev/null 2>&1; rm -rf '{data}'",
            runner = if self.as_postgres {
                "runuser -u postgres -- "
            } else {
                ""
            },
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data.display(),
        );
        Command::new("sh")
            .args(["-c", &stop])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn watchdog");
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if let Some(cluster) = &self.cluster {
            let _ = pg_command(cluster.as_postgres, &cluster.bin.join("pg_ctl"))
                .args(["stop", "-m", "immediate", "-D"])
                .arg(&cluster.data)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `pg_config --bindir`.
fn pg_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    if let Some(bin) = found.pop() {
        return bin;
    }
    let output = Command::new("pg_config").arg("--bindir").output();
    match output {
        Ok(output) if output.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        }
        _ => panic!(
            "no Postgres server binaries found: install them (apt-get install postgresql) \
             or set PG_BIN, or set DATABASE_URL to a server to use"
        ),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn pg_command(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open postgresql.conf");
    file.write_all(text.as_bytes()).expect("write postgresql.conf");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn strip_database(url: &str) -> String {
    let without_query = url.split('?').next().unwrap_or(url);
    match without_query.rfind('/') {
        Some(i) if i > "postgres://".len() => without_query[..i].to_owned(),
        _ => without_query.to_owned(),
    }
}
