//! Calls out of medic over HTTPS (Slack, PagerDuty, webhooks, Alertmanager, Prometheus) start
//! from one client builder, which trusts the CA certificates the platform trusts plus those in
//! `SSL_CERT_FILE` and `SSL_CERT_DIR`.
//!
//! Companies with their own CA, or an egress proxy that re-signs traffic, add their CA to the
//! image's store or mount it and point `SSL_CERT_FILE` at it. OpenSSL reads only the variable
//! when it is set; here the platform's store stays trusted as well, so mounting an internal
//! CA does not cut medic off from Slack and PagerDuty. No roots are compiled in: what medic
//! trusts is what the platform (the image's `ca-certificates`) says, and updates with it.

use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use rustls::{pki_types::CertificateDer, RootCertStore};

/// The variables OpenSSL (and `rustls-native-certs`) read: a PEM bundle, and directories.
const CERT_FILE: &str = "SSL_CERT_FILE";
const CERT_DIR: &str = "SSL_CERT_DIR";

/// A `reqwest` client builder whose TLS trusts [`trusted_roots`]; callers add their timeouts.
/// Fails when `SSL_CERT_FILE` or `SSL_CERT_DIR` is set but cannot be read: a CA someone
/// meant to trust and did not is a misconfiguration to report at start, not at the first page.
pub fn client_builder() -> anyhow::Result<reqwest::ClientBuilder> {
    let roots = trusted_roots()?;
    if roots.is_empty() {
        tracing::warn!(
            "no CA certificates found (install ca-certificates, or set SSL_CERT_FILE): HTTPS calls will fail"
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS for outgoing HTTPS")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(reqwest::Client::builder().use_preconfigured_tls(tls))
}

/// The platform's CA store (the bundle and directories OpenSSL would read here), plus the
/// certificates in `SSL_CERT_FILE` and `SSL_CERT_DIR` when set. A certificate the platform
/// ships that rustls cannot parse is skipped, as OpenSSL skips it.
pub fn trusted_roots() -> anyhow::Result<RootCertStore> {
    let variables = std::env::var_os(CERT_FILE).is_some() || std::env::var_os(CERT_DIR).is_some();
    // With a variable set this reads only what it names; else the platform's store.
    let native = rustls_native_certs::load_native_certs();
    let mut certs: Vec<CertificateDer<'static>> = native.certs;
    if variables {
        if let Some(error) = native.errors.first() {
            return Err(anyhow!("{error}")).context(format!("reading {CERT_FILE} / {CERT_DIR}"));
        }
        if certs.is_empty() {
            return Err(anyhow!("{CERT_FILE} / {CERT_DIR} hold no PEM certificate"));
        }
        for dir in openssl_probe::candidate_cert_dirs() {
            certs.extend(rustls_native_certs::load_certs_from_paths(None, Some(dir)).certs);
        }
    }
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(certs);
    Ok(roots)
}
