//! Postgres connection strings as libpq reads them, with what tokio-postgres does not parse
//! itself: `sslmode=verify-ca` and `verify-full`, and `sslrootcert`. Used for medic's own
//! database and for the databases remediation may act on.

use std::{path::PathBuf, time::Duration};

/// How the connection is encrypted and the server checked (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never TLS.
    Disable,
    /// TLS if the server offers it, without checking its certificate (libpq's default).
    Prefer,
    /// Always TLS; the certificate is checked against `sslrootcert` when one is given.
    Require,
    /// Always TLS, the certificate signed by a trusted CA.
    VerifyCa,
    /// Always TLS, the certificate signed by a trusted CA and naming the host.
    VerifyFull,
}

/// The TLS half of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: TlsMode,
    /// CA certificates (PEM) to trust; the system's when absent.
    pub root_cert: Option<PathBuf>,
}

/// A connection string, parsed.
#[derive(Debug, Clone)]
pub struct PgConnection {
    /// Everything tokio-postgres reads itself (hosts, `target_session_attrs`, ...).
    pub config: tokio_postgres::Config,
    pub tls: Tls,
}

/// Bounds on each session medic opens, so that nothing it runs can hang unseen.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub connect_timeout: Duration,
    /// Longest statement; zero for none.
    pub statement_timeout: Duration,
    /// Longest idle time inside a transaction; zero for none.
    pub idle_in_transaction_timeout: Duration,
    /// TCP keepalives: idle time before the first probe (a dead peer is noticed then).
    pub keepalives_idle: Duration,
}

impl PgConnection {
    /// Parses a URL (`postgres://...`, several hosts allowed) or a `key=value` string. Errors
    /// never echo the string: it may hold a password.
    pub fn parse(text: &str) -> Result<PgConnection, String> {
        let (rest, tls) = take_tls(text)?;
        let config = rest
            .parse::<tokio_postgres::Config>()
            .map_err(|e| format!("not a valid connection string: {e}"))?;
        Ok(PgConnection { config, tls })
    }

    /// Applies `limits` to every session, keeping options the string gave.
    pub fn limit(mut self, limits: &SessionLimits) -> Self {
        let ms = |d: Duration| d.as_millis();
        let mut options = self.config.get_options().unwrap_or_default().to_owned();
        for (name, value) in [
            ("statement_timeout", limits.statement_timeout),
            (
                "idle_in_transaction_session_timeout",
                limits.idle_in_transaction_timeout,
            ),
        ] {
            options.push_str(&format!(" -c {name}={}", ms(value)));
        }
        self.config
            .options(options.trim())
            .connect_timeout(limits.connect_timeout)
            .keepalives(true)
            .keepalives_idle(limits.keepalives_idle);
        self
    }
}

/// Takes `sslmode` and `sslrootcert` out of the string; what tokio-postgres cannot read is
/// replaced by what it can (`verify-*` is `require` to it; the checking is ours).
fn take_tls(text: &str) -> Result<(String, Tls), String> {
    let url = text.starts_with("postgres://") || text.starts_with("postgresql://");
    let (head, params, joiner) = if url {
        match text.split_once('?') {
            Some((head, query)) => (
                format!("{head}?"),
                query.split('&').map(str::to_owned).collect(),
                "&",
            ),
            None => (text.to_owned(), Vec::new(), "&"),
        }
    } else {
        (
            String::new(),
            text.split_whitespace().map(str::to_owned).collect::<Vec<_>>(),
            " ",
        )
    };
    let mut tls = Tls {
        mode: TlsMode::Prefer,
        root_cert: None,
    };
    let mut kept = Vec::new();
    for param in params {
        match param.split_once('=') {
            Some(("sslmode", value)) => {
                tls.mode = match value {
                    "disable" => TlsMode::Disable,
                    "allow" | "prefer" => TlsMode::Prefer,
                    "require" => TlsMode::Require,
                    "verify-ca" => TlsMode::VerifyCa,
                    "verify-full" => TlsMode::VerifyFull,
                    other => {
                        return Err(format!(
                        "sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
                    ))
                    }
                };
                let theirs = match tls.mode {
                    TlsMode::Disable => "disable",
                    TlsMode::Prefer => "prefer",
                    _ => "require",
                };
                kept.push(format!("sslmode={theirs}"));
            }
            Some(("sslrootcert", path)) => {
                let path = if url {
                    percent_decode(path)
                } else {
                    path.to_owned()
                };
                tls.root_cert = Some(PathBuf::from(path));
            }
            _ => kept.push(param),
        }
    }
    let joined = kept.join(joiner);
    let rest = if url && kept.is_empty() {
        head.trim_end_matches('?').to_owned()
    } else {
        format!("{head}{joined}")
    };
    Ok((rest, tls))
}

/// `%2F` and the like in a URL's query value.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_modes_and_root_certificates_are_read_from_urls_and_key_values() {
        let parsed = PgConnection::parse(
            "postgres://u:p@db.example:5432/medic?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(parsed.tls.mode, TlsMode::VerifyFull);
        assert_eq!(parsed.tls.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(
            parsed.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(parsed.config.get_application_name(), Some("x"));

        let parsed = PgConnection::parse("host=db user=u sslmode=verify-ca sslrootcert=/ca.pem").unwrap();
        assert_eq!(parsed.tls.mode, TlsMode::VerifyCa);
        assert_eq!(parsed.tls.root_cert, Some(PathBuf::from("/ca.pem")));

        let plain = PgConnection::parse("postgres://u@h1:5432,h2:5433/medic?target_session_attrs=read-write")
            .unwrap();
        assert_eq!(plain.tls.mode, TlsMode::Prefer);
        assert_eq!(plain.config.get_hosts().len(), 2);
        assert_eq!(
            PgConnection::parse("postgres://u@h/db?sslmode=disable")
                .unwrap()
                .tls
                .mode,
            TlsMode::Disable
        );
        assert!(PgConnection::parse("postgres://u@h/db?sslmode=sometimes").is_err());
        let secret = PgConnection::parse("postgres://u:hunter2@h:notaport/db").unwrap_err();
        assert!(!secret.contains("hunter2"), "{secret}");
    }

    #[test]
    fn session_limits_become_server_options() {
        let limits = SessionLimits {
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            idle_in_transaction_timeout: Duration::from_secs(60),
            keepalives_idle: Duration::from_secs(20),
        };
        let parsed = PgConnection::parse("postgres://u@h/db?options=-c%20search_path%3Dx")
            .unwrap()
            .limit(&limits);
        assert_eq!(
            parsed.config.get_options(),
            Some("-c search_path=x -c statement_timeout=30000 -c idle_in_transaction_session_timeout=60000")
        );
        assert_eq!(parsed.config.get_keepalives_idle(), Duration::from_secs(20));
    }
}
