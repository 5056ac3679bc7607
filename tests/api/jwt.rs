//! Signed identity: JSON Web Tokens from configured issuers, verified against keys from a file
//! or a URL. Keys are made and tokens signed with the `openssl` command here, apart from
//! medic's own library, so that a mistake shared by both cannot pass unnoticed.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine as _};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    config::{assert_problem, problems_in},
    fixture,
    sink::{Reply, Sink},
    TestApp,
};

const ISSUER: &str = "https://accounts.example.com";
const KUBERNETES: &str = "https://kubernetes.default.svc.cluster.local";
const DEPLOY_BOT: &str = "system:serviceaccount:ops:deploy-bot";
const JWKS_PATH: &str = "/openid/v1/jwks";

/// A signing key made by `openssl`, and its public half as a JWK.
struct Signer {
    kid: String,
    alg: &'static str,
    pem: PathBuf,
    jwk: Value,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl").args(args).output().expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

impl Signer {
    fn rsa(dir: &Path, kid: &str) -> Signer {
        let pem = dir.join(format!("{kid}.pem"));
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            path(&pem),
        ]);
        let modulus = String::from_utf8(openssl(&["rsa", "-in", path(&pem), "-noout", "-modulus"])).unwrap();
        let n = hex::decode(modulus.trim().trim_start_matches("Modulus=")).unwrap();
        let jwk =
            json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": B64.encode(n), "e": "AQAB"});
        Signer {
            kid: kid.into(),
            alg: "RS256",
            pem,
            jwk,
        }
    }

    fn p256(dir: &Path, kid: &str) -> Signer {
        let pem = dir.join(format!("{kid}.pem"));
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            path(&pem),
        ]);
        // The public key's DER ends with the uncompressed point: 0x04, x, y.
        let der = openssl(&["pkey", "-in", path(&pem), "-pubout", "-outform", "DER"]);
        let point = &der[der.len() - 64..];
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": B64.encode(&point[..32]), "y": B64.encode(&point[32..])});
        Signer {
            kid: kid.into(),
            alg: "ES256",
            pem,
            jwk,
        }
    }

    fn ed25519(dir: &Path, kid: &str) -> Signer {
        let pem = dir.join(format!("{kid}.pem"));
        openssl(&["genpkey", "-algorithm", "ED25519", "-out", path(&pem)]);
        let der = openssl(&["pkey", "-in", path(&pem), "-pubout", "-outform", "DER"]);
        let jwk =
            json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": B64.encode(&der[der.len() - 32..])});
        Signer {
            kid: kid.into(),
            alg: "EdDSA",
            pem,
            jwk,
        }
    }

    /// A token of `claims`, signed by this key under its own algorithm and key id.
    fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.alg, &self.kid, claims)
    }

    /// A token whose header says `alg` and `kid`, signed by this key.
    fn sign_as(&self, alg: &str, kid: &str, claims: &Value) -> String {
        let input = signing_input(&json!({"alg": alg, "typ": "JWT", "kid": kid}), claims);
        let message = self.pem.with_extension("msg");
        std::fs::write(&message, &input).unwrap();
        let signature = match self.alg {
            "EdDSA" => openssl(&[
                "pkeyutl",
                "-sign",
                "-rawin",
                "-inkey",
                path(&self.pem),
                "-in",
                path(&message),
            ]),
            "ES256" => raw_ecdsa(&openssl(&[
                "dgst",
                "-sha256",
                "-sign",
                path(&self.pem),
                path(&message),
            ])),
            _ => openssl(&["dgst", "-sha256", "-sign", path(&self.pem), path(&message)]),
        };
        format!("{input}.{}", B64.encode(signature))
    }

    /// The public key in PEM, as an attacker would download it.
    fn public_pem(&self) -> Vec<u8> {
        openssl(&["pkey", "-in", path(&self.pem), "-pubout"])
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

/// ECDSA's DER signature (SEQUENCE of two INTEGERs) as JWS wants it: r and s, 32 bytes each.
fn raw_ecdsa(der: &[u8]) -> Vec<u8> {
    let mut at = 2;
    let mut out = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[at], 0x02, "an INTEGER");
        let len = der[at + 1] as usize;
        let value = &der[at + 2..at + 2 + len];
        let value = &value[value.len().saturating_sub(32)..];
        out.extend(std::iter::repeat_n(0u8, 32 - value.len()));
        out.extend_from_slice(value);
        at += 2 + len;
    }
    out
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Claims good for an hour, from `iss` to medic.
fn claims(iss: &str, sub: &str, groups: &[&str]) -> Value {
    json!({"iss": iss, "sub": sub, "aud": ["medic"], "email": format!("{sub}@example.com"),
           "groups": groups, "iat": now(), "exp": now() + 3600})
}

fn jwks(signers: &[&Signer]) -> String {
    json!({"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

/// The keys of both issuers: the accounts issuer's in a file, Kubernetes' at a URL.
struct Keys {
    dir: tempfile::TempDir,
    rsa: Signer,
    p256: Signer,
    ed: Signer,
    cluster: Signer,
    sink: Sink,
}

impl Keys {
    async fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let (rsa, p256, ed) = (
            Signer::rsa(dir.path(), "rsa-1"),
            Signer::p256(dir.path(), "ec-1"),
            Signer::ed25519(dir.path(), "ed-1"),
        );
        let cluster = Signer::rsa(dir.path(), "cluster-1");
        std::fs::write(dir.path().join("jwks.json"), jwks(&[&rsa, &p256, &ed])).unwrap();
        let sink = Sink::start(1).await;
        sink.set_default(JWKS_PATH, Reply::status(200).with_body(&jwks(&[&cluster])));
        Keys {
            dir,
            rsa,
            p256,
            ed,
            cluster,
            sink,
        }
    }

    fn yaml(&self) -> String {
        format!(
            "server:
  auth:
    jwt:
      - issuer: {ISSUER}
        audiences: [medic, other]
        jwks_file: {file}
        user_claim: email
        roles: {{sre-oncall: responder, sre-leads: admin, readers: viewer}}
        leeway: 30s
      - issuer: {KUBERNETES}
        audiences: [medic]
        jwks_url: {url}
        subjects: {{\"{DEPLOY_BOT}\": responder}}
",
            file = self.dir.path().join("jwks.json").display(),
            url = self.sink.url(JWKS_PATH),
        )
    }

    async fn app(&self) -> TestApp {
        TestApp::builder()
            .without_users()
            .config(&self.yaml())
            .spawn()
            .await
    }

    fn fetches(&self) -> usize {
        self.sink.received_at(JWKS_PATH).len()
    }
}

async fn get(app: &TestApp, token: &str, path: &str) -> StatusCode {
    let url = format!("{}{path}", app.address);
    app.client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn ack(app: &TestApp, token: &str, id: i64) -> reqwest::Response {
    app.client
        .post(format!("{}/api/v1/incidents/{id}/ack", app.address))
        .bearer_auth(token)
        .json(&json!({"note": "on it"}))
        .send()
        .await
        .unwrap()
}

async fn incident(app: &TestApp) -> i64 {
    app.post_for_incident(&serde_json::from_str(&fixture("firing.json")).unwrap())
        .await
}

/// The acknowledgement in the incident's timeline, read with `token`.
async fn acknowledged(app: &TestApp, token: &str, id: i64) -> Value {
    let incident: Value = app
        .client
        .get(format!("{}/api/v1/incidents/{id}", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "acknowledged")
        .cloned()
        .expect("an acknowledgement in the timeline")
}

#[tokio::test]
async fn tokens_signed_with_rsa_p256_and_ed25519_keys_read_the_incidents() {
    let keys = Keys::new().await;
    let app = keys.app().await;
    for signer in [&keys.rsa, &keys.p256, &keys.ed] {
        let token = signer.sign(&claims(ISSUER, "reader", &["readers"]));
        assert_eq!(
            get(&app, &token, "/api/v1/incidents").await,
            StatusCode::OK,
            "{}",
            signer.alg
        );
    }
}

#[tokio::test]
async fn expired_misaddressed_forged_and_unsigned_tokens_are_refused_with_401() {
    let keys = Keys::new().await;
    let app = keys.app().await;
    let good = claims(ISSUER, "reader", &["sre-leads"]);
    let with = |key: &str, value: Value| {
        let mut changed = good.clone();
        changed[key] = value;
        changed
    };
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let rsa = &keys.rsa;
    let hmac = jsonwebtoken::EncodingKey::from_secret(&rsa.public_pem());
    let mut hs256 = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs256.kid = Some(rsa.kid.clone());
    let refused = [
        (
            "expired past the leeway",
            rsa.sign(&with("exp", json!(now() - 120))),
        ),
        ("not yet valid", rsa.sign(&with("nbf", json!(now() + 600)))),
        (
            "nbf as a string",
            rsa.sign(&with("nbf", json!((now() + 600).to_string()))),
        ),
        ("no exp", rsa.sign(&no_exp)),
        ("another audience", rsa.sign(&with("aud", json!(["grafana"])))),
        ("no audience", rsa.sign(&with("aud", Value::Null))),
        (
            "an issuer medic does not know",
            rsa.sign(&with("iss", json!("https://evil.example.com"))),
        ),
        ("the other issuer's claim", keys.cluster.sign(&good)),
        (
            "a key id the issuer never had",
            rsa.sign_as("RS256", "rsa-9", &good),
        ),
        (
            "an EC signature under the RSA key's id",
            keys.p256.sign_as("ES256", "rsa-1", &good),
        ),
        (
            "RS256 claimed for the EC key",
            rsa.sign_as("RS256", "ec-1", &good),
        ),
        (
            "alg none",
            format!(
                "{}.",
                signing_input(&json!({"alg": "none", "kid": "rsa-1"}), &good)
            ),
        ),
        (
            "HS256 keyed with the public key",
            jsonwebtoken::encode(&hs256, &good, &hmac).unwrap(),
        ),
        ("a changed payload", {
            let token = rsa.sign(&good);
            let parts: Vec<&str> = token.split('.').collect();
            let admin = B64.encode(with("email", json!("root@example.com")).to_string());
            format!("{}.{admin}.{}", parts[0], parts[2])
        }),
    ];
    for (what, token) in refused {
        let response = app
            .client
            .get(format!("{}/api/v1/incidents", app.address))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("Bearer"));
    }
    let within_leeway = rsa.sign(&with("exp", json!(now() - 5)));
    assert_eq!(
        get(&app, &within_leeway, "/api/v1/incidents").await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn groups_give_the_role_and_the_audit_trail_names_the_issuer() {
    let keys = Keys::new().await;
    let app = keys.app().await;
    let id = incident(&app).await;
    let viewer = keys.ed.sign(&claims(ISSUER, "vic", &["readers", "dev"]));
    let stranger = keys.ed.sign(&claims(ISSUER, "sam", &["marketing"]));
    let responder = keys.p256.sign(&claims(ISSUER, "rita", &["dev", "sre-oncall"]));

    assert_eq!(
        get(&app, &stranger, "/api/v1/incidents").await,
        StatusCode::FORBIDDEN,
        "no role"
    );
    assert_eq!(ack(&app, &viewer, id).await.status(), StatusCode::FORBIDDEN);
    let acked = ack(&app, &responder, id).await;
    assert_eq!(acked.status(), StatusCode::OK);
    let body: Value = acked.json().await.unwrap();
    assert_eq!(body["acknowledged"]["by"], "rita@example.com", "the user claim");

    let event = acknowledged(&app, &viewer, id).await;
    assert_eq!(event["auth"], "jwt");
    assert_eq!(event["issuer"], ISSUER);
    assert_eq!(event["role"], "responder");
    assert_eq!(event["via"], "api");
    let stored = app
        .count(
            "SELECT count(*) FROM audit_events WHERE via = 'jwt' AND issuer = 'https://accounts.example.com'",
        )
        .await;
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn a_kubernetes_service_account_token_acts_as_its_subjects_role() {
    let keys = Keys::new().await;
    let app = keys.app().await;
    let id = incident(&app).await;
    // What the kubelet projects into a CronJob's pod: the API server's issuer, the pod's
    // ServiceAccount as subject, the audience the volume asked for.
    let token = keys.cluster.sign(&json!({
        "iss": KUBERNETES, "sub": DEPLOY_BOT, "aud": ["medic"], "iat": now(), "nbf": now(),
        "exp": now() + 3600,
        "kubernetes.io": {"namespace": "ops", "serviceaccount": {"name": "deploy-bot", "uid": "1"}},
    }));
    let acked = ack(&app, &token, id).await;
    assert_eq!(acked.status(), StatusCode::OK);
    let event = acknowledged(&app, &token, id).await;
    assert_eq!(event["by"], DEPLOY_BOT);
    assert_eq!(event["auth"], "jwt");
    assert_eq!(event["issuer"], KUBERNETES);

    let other = keys
        .cluster
        .sign(&claims(KUBERNETES, "system:serviceaccount:ops:other", &[]));
    assert_eq!(
        get(&app, &other, "/api/v1/incidents").await,
        StatusCode::FORBIDDEN
    );
    let for_the_api_server = keys.cluster.sign(&json!({
        "iss": KUBERNETES, "sub": DEPLOY_BOT, "aud": ["https://kubernetes.default.svc"], "exp": now() + 3600,
    }));
    assert_eq!(
        get(&app, &for_the_api_server, "/api/v1/incidents").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_unknown_key_fetches_the_keys_again_at_most_once_a_minute() {
    let keys = Keys::new().await;
    let app = keys.app().await;
    let bot = claims(KUBERNETES, DEPLOY_BOT, &[]);
    for _ in 0..3 {
        assert_eq!(
            get(&app, &keys.cluster.sign(&bot), "/api/v1/incidents").await,
            StatusCode::OK
        );
    }
    assert_eq!(keys.fetches(), 1, "fetched once, then cached");

    // The cluster rotates its keys: the new key is fetched at its first token.
    let rotated = Signer::rsa(keys.dir.path(), "cluster-2");
    keys.sink.set_default(
        JWKS_PATH,
        Reply::status(200).with_body(&jwks(&[&keys.cluster, &rotated])),
    );
    assert_eq!(
        get(&app, &rotated.sign(&bot), "/api/v1/incidents").await,
        StatusCode::OK
    );
    assert_eq!(keys.fetches(), 2);

    for kid in ["made-up-1", "made-up-2", "made-up-3"] {
        let token = keys.cluster.sign_as("RS256", kid, &bot);
        assert_eq!(
            get(&app, &token, "/api/v1/incidents").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        keys.fetches(),
        2,
        "no fetch within a minute of the last one for an unknown key"
    );
    assert_eq!(
        get(&app, &rotated.sign(&bot), "/api/v1/incidents").await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn keys_that_cannot_be_fetched_refuse_the_token_with_401_not_500() {
    let keys = Keys::new().await;
    let slow = Reply::status(200).with_body(&jwks(&[&keys.cluster]));
    keys.sink
        .set_default(JWKS_PATH, slow.with_delay(Duration::from_secs(10)));
    let app = keys.app().await;
    let token = keys.cluster.sign(&claims(KUBERNETES, DEPLOY_BOT, &[]));
    let started = std::time::Instant::now();
    let (one, two) = tokio::join!(
        get(&app, &token, "/api/v1/incidents"),
        get(&app, &token, "/api/v1/incidents")
    );
    assert_eq!((one, two), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(7),
        "a slow issuer is given up on: {waited:?}"
    );

    keys.sink.set_default(JWKS_PATH, Reply::status(503));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        get(&app, &token, "/api/v1/incidents").await,
        StatusCode::UNAUTHORIZED
    );
    let other_issuer = keys.rsa.sign(&claims(ISSUER, "reader", &["readers"]));
    assert_eq!(
        get(&app, &other_issuer, "/api/v1/incidents").await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_changed_key_file_is_read_again() {
    let keys = Keys::new().await;
    let app = keys.app().await;
    let rotated = Signer::ed25519(keys.dir.path(), "ed-2");
    let token = rotated.sign(&claims(ISSUER, "reader", &["readers"]));
    assert_eq!(
        get(&app, &token, "/api/v1/incidents").await,
        StatusCode::UNAUTHORIZED
    );
    std::fs::write(keys.dir.path().join("jwks.json"), jwks(&[&keys.rsa, &rotated])).unwrap();
    assert_eq!(get(&app, &token, "/api/v1/incidents").await, StatusCode::OK);
    let retired = keys.p256.sign(&claims(ISSUER, "reader", &["readers"]));
    assert_eq!(
        get(&app, &retired, "/api/v1/incidents").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_console_takes_a_bearer_token_as_the_viewer_of_one_request() {
    let keys = Keys::new().await;
    let app = keys.app().await;
    let token = keys.rsa.sign(&claims(ISSUER, "rita", &["sre-oncall"]));
    let page = app
        .client
        .get(format!("{}/ui/", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("rita@example.com"));
    assert_eq!(
        app.count("SELECT count(*) FROM console_sessions").await,
        0,
        "no session"
    );

    let expired = keys
        .rsa
        .sign(&json!({"iss": ISSUER, "aud": "medic", "email": "rita@example.com", "exp": now() - 600}));
    assert_eq!(get(&app, &expired, "/ui/").await, StatusCode::UNAUTHORIZED);
}

#[test]
fn check_config_names_each_bad_jwt_setting_by_its_key_path() {
    let problems = problems_in(
        "    jwt:
      - audiences: []
        jwks_url: https://a.example.com/jwks
        jwks_file: /etc/jwks.json
        leeway: 10m
        user_claim: ''
      - issuer: https://b.example.com
        audiences: [medic]
        roles: {oncall: responder}
      - issuer: https://c.example.com
        audiences: [medic]
        jwks_url: http://c.example.com/jwks
        jwks_file: ''
        default_role: viewer
",
    );
    let at = "server.auth.jwt";
    assert_problem(&problems, &format!("{at}[0].issuer"), "required");
    assert_problem(&problems, &format!("{at}[0].audiences"), "audience");
    assert_problem(&problems, &format!("{at}[0]"), "not both");
    assert_problem(&problems, &format!("{at}[0].leeway"), "at most 5m");
    assert_problem(&problems, &format!("{at}[0].user_claim"), "must name a claim");
    assert_problem(&problems, &format!("{at}[1]"), "needs jwks_url or jwks_file");
    assert_problem(&problems, &format!("{at}[2]"), "not both");

    let one = problems_in(
        "    jwt:
      issuer: https://c.example.com
      audiences: [medic]
      jwks_url: http://c.example.com/jwks
",
    );
    assert_problem(&one, &format!("{at}.jwks_url"), "https://");
    assert_problem(&one, at, "gives no token a role");
    let role = problems_in(
        "    jwt:
      issuer: https://c.example.com
      audiences: [medic]
      jwks_url: https://c.example.com/jwks
      roles: {oncall: superuser}
",
    );
    assert_problem(&role, &format!("{at}.roles.oncall"), "superuser");
}
