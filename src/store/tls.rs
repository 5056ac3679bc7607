//! Connecting to Postgres, with TLS through rustls as `sslmode` asks: `disable`, `prefer` and
//! `require` (no certificate check unless `sslrootcert` is given), `verify-ca` (signed by a
//! trusted CA) and `verify-full` (also naming the host). Used for medic's pool, its LISTEN
//! connection, and the databases remediation acts on.

use std::sync::Arc;

use rustls::{
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        WebPkiServerVerifier,
    },
    crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms},
    pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime},
    CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{PgConnection, Tls, TlsMode};

/// A connection's driving half, to be spawned (or polled for notifications).
pub type Connection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream,
>;

/// Opens connections to one database: its settings and the TLS they ask for.
#[derive(Clone)]
pub struct Connector {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
}

impl Connector {
    /// The connector for a parsed connection string; fails if its CA file cannot be read.
    pub fn new(connection: PgConnection) -> Result<Connector, String> {
        Ok(Connector {
            tls: connector(&connection.tls)?,
            config: connection.config,
        })
    }

    /// One connection (not pooled) and the task that drives it, to be spawned.
    pub async fn connect(&self) -> Result<(tokio_postgres::Client, Connection), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }
}

/// The rustls connector for `tls`.
pub fn connector(tls: &Tls) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let checked = tls.root_cert.is_some() || matches!(tls.mode, TlsMode::VerifyCa | TlsMode::VerifyFull);
    let ca = if checked {
        let roots = Arc::new(roots(tls)?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| format!("TLS: {e}"))?;
        Some(webpki)
    } else {
        None
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (tls.mode, ca) {
        (TlsMode::VerifyFull, Some(webpki)) => webpki,
        (_, ca) => Arc::new(Lenient {
            ca,
            algorithms: provider.signature_verification_algorithms,
        }),
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The CAs in `sslrootcert`, else the system's.
fn roots(tls: &Tls) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match &tls.root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err("no CA certificate to check the server's against: set sslrootcert".into());
    }
    Ok(roots)
}

/// `verify-ca` (and `require` with a root certificate): the chain must lead to a trusted CA,
/// whatever host name the certificate carries. `prefer` and `require` without a root
/// certificate (no CA to check against), as libpq does them: encrypted, the certificate not
/// checked. Either way the handshake's signatures are.
#[derive(Debug)]
struct Lenient {
    /// The CA check, if there is a CA to check against.
    ca: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = &self.ca else {
            return Ok(ServerCertVerified::assertion());
        };
        match ca.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
