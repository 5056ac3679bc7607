//! TLS to Postgres: `sslmode` and `sslrootcert` in the URL are honoured, with rustls. A server
//! with `ssl = on` and a certificate made here: `verify-full` works; a wrong CA or a wrong
//! host name is refused with an error that says so.

use std::{path::Path, process::Command};

use medic::{
    config::PgConnection,
    store::{error_chain, tls::Connector},
};

use crate::helpers::{fixture, Durability, TempPostgres, TestApp};

/// Runs openssl in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`name`.crt, `name`.key) in `dir`.
pub fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

/// A server certificate for `san` signed by CA `ca`: (certificate, key) as PEM.
pub fn server_cert(dir: &Path, ca: &str, name: &str, san: &str) -> (Vec<u8>, Vec<u8>) {
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        format!("subjectAltName={san}\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=postgres",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.crt"),
            "-extfile",
            ext.to_str().unwrap(),
        ],
    );
    (
        std::fs::read(dir.join(format!("{name}.crt"))).unwrap(),
        std::fs::read(dir.join(format!("{name}.key"))).unwrap(),
    )
}

/// A cluster with TLS on, its certificate naming `san`, signed by CA `trusted`.
fn tls_postgres(dir: &Path, san: &str) -> TempPostgres {
    let (cert, key) = server_cert(dir, "trusted", "server", san);
    TempPostgres::start_with(
        Durability::Throwaway,
        "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
        &[("server.crt", &cert), ("server.key", &key)],
    )
}

async fn connect(url: &str) -> Result<(), String> {
    let connector = Connector::new(PgConnection::parse(url)?)?;
    let (client, connection) = connector.connect().await.map_err(|e| error_chain(&e))?;
    tokio::spawn(connection);
    let ssl: bool = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if ssl {
        Ok(())
    } else {
        Err("connected without TLS".into())
    }
}

#[tokio::test]
async fn verify_full_connects_and_a_wrong_ca_or_host_name_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    ca(dir.path(), "trusted");
    ca(dir.path(), "stranger");
    let postgres = tls_postgres(dir.path(), "IP:127.0.0.1,DNS:localhost");
    let port = postgres.port();
    let url = |host: &str, mode: &str, ca: &str| {
        format!(
            "postgres://postgres@{host}:{port}/postgres?sslmode={mode}&sslrootcert={}",
            dir.path().join(format!("{ca}.crt")).display()
        )
    };

    connect(&url("127.0.0.1", "verify-full", "trusted"))
        .await
        .expect("verify-full with the right CA");
    connect(&url("localhost", "verify-full", "trusted"))
        .await
        .expect("by its DNS name too");
    let wrong_ca = connect(&url("127.0.0.1", "verify-full", "stranger"))
        .await
        .unwrap_err();
    assert!(
        wrong_ca.contains("certificate") && wrong_ca.contains("UnknownIssuer"),
        "{wrong_ca}"
    );
    let wrong_ca = connect(&url("127.0.0.1", "verify-ca", "stranger"))
        .await
        .unwrap_err();
    assert!(wrong_ca.contains("UnknownIssuer"), "{wrong_ca}");
    let plain = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=require");
    connect(&plain)
        .await
        .expect("require: encrypted, unchecked, as libpq does");
    let disabled = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
    assert_eq!(connect(&disabled).await.unwrap_err(), "connected without TLS");
    let missing = url("127.0.0.1", "verify-full", "nowhere");
    let missing = connect(&missing).await.unwrap_err();
    assert!(
        missing.contains("sslrootcert") && missing.contains("nowhere.crt"),
        "{missing}"
    );
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_host_and_verify_ca_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    ca(dir.path(), "trusted");
    let postgres = tls_postgres(dir.path(), "DNS:db.example.internal");
    let url = |mode: &str| {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode={mode}&sslrootcert={}",
            postgres.port(),
            dir.path().join("trusted.crt").display()
        )
    };
    let wrong_host = connect(&url("verify-full")).await.unwrap_err();
    assert!(wrong_host.contains("not valid for name"), "{wrong_host}");
    connect(&url("verify-ca"))
        .await
        .expect("verify-ca checks the CA, not the name");
}

#[tokio::test]
async fn medic_keeps_its_state_over_verified_tls() {
    let dir = tempfile::tempdir().unwrap();
    ca(dir.path(), "trusted");
    let postgres = tls_postgres(dir.path(), "IP:127.0.0.1");
    let base = postgres.create_database("medic").await;
    let url = format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        dir.path().join("trusted.crt").display()
    );
    let app = TestApp::builder().database(&url).spawn().await;
    assert_eq!(app.post_webhook_raw(fixture("firing.json")).await.status(), 200);
    assert_eq!(app.incidents().await.len(), 1);
    let (client, connection) = tokio_postgres::connect(&postgres.url("medic"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*), bool_and(s.ssl) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
              WHERE a.application_name = 'medic'",
            &[],
        )
        .await
        .unwrap();
    let (sessions, all_tls): (i64, Option<bool>) = (row.get(0), row.get(1));
    assert!(sessions >= 1, "medic has sessions open");
    assert_eq!(all_tls, Some(true), "every medic session is encrypted");
}
