//! A fake Kubernetes API server that speaks enough of the real HTTP protocol for medic's remediations.
//!
//! It serves pods (with the eviction and log subresources), events (with field selectors),
//! deployments (with the scale subresource),
//! replica sets (read only), horizontal pod autoscalers and pod disruption budgets as JSON,
//! with Kubernetes' `Status` errors, bearer-token authentication, resource versions, delete
//! preconditions, merge and strategic merge patches and `dryRun=All`. A small controller (every
//! 25 ms, and right after every write) keeps, as the Deployment controller does, one replica set
//! per deployment template (`{deployment}-{pod-template-hash}`, controlled by the deployment, the
//! older ones at 0 replicas) whose pods it controls; keeps each deployment at its replica count,
//! replaces pods whose template is outdated, makes new pods Ready after a per-deployment delay,
//! raises deployments to their HPA's `minReplicas` and keeps status fields current; each new
//! replica set gets the next `deployment.kubernetes.io/revision`. A test can make it hang, or
//! forbid a resource (403). The server runs on its own thread with
//! its own actix system, so it does not depend on the runtime of the test that started it, and
//! it stops when the [`FakeKube`] is dropped.
//!
//! The files: this one has [`FakeKube`] (start, kubeconfig, the requests seen), the shared
//! state and the object types; `cluster` has the handle's methods that put objects in and read
//! them back; `request` parses, authenticates, routes and records each request; `pods`,
//! `deployments`, `replica_sets`, `hpas`, `pdbs`, `events` and `logs` answer each resource's
//! endpoints; `controller` is the
//! reconcile loop; `metadata`, `selectors`, `patch` and `reply` are what those share.

mod cluster;
mod controller;
mod deployments;
mod events;
mod hpas;
mod logs;
mod metadata;
mod patch;
mod pdbs;
mod pods;
mod replica_sets;
mod reply;
mod request;
mod selectors;

use std::{
    collections::BTreeMap,
    io::Write,
    net::{SocketAddr, TcpListener},
    sync::{mpsc, Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use actix_web::{dev::ServerHandle, web, App, HttpServer};
use serde_json::Value;

use controller::control;
use request::handle;

/// The bearer token every request must carry.
#[allow(dead_code)]
pub const TOKEN: &str = "fake-token";

/// Largest request body the server accepts.
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// One request the fake API server answered.
#[allow(dead_code)]
#[derive(Clone, Debug)]
pub struct Request {
    /// HTTP method, e.g. "PATCH".
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// The raw query string ("" if none).
    pub query: String,
    /// The status code the server answered.
    pub status: u16,
    /// The request body parsed as JSON, or `Null` (empty or not JSON).
    pub body: Value,
    /// The request's Content-Type without parameters ("" if none).
    pub content_type: String,
    /// The delete preconditions the server read and enforced (from a DELETE's DeleteOptions or
    /// an Eviction's `deleteOptions`); `None` if there were none, e.g. when the client sent
    /// `delete_options`, which Kubernetes ignores.
    pub preconditions: Option<Value>,
}

/// `(namespace, name)`.
type Key = (String, String);

fn key(namespace: &str, name: &str) -> Key {
    (namespace.to_owned(), name.to_owned())
}

/// A pod with what the controller needs to know about it.
#[derive(Clone)]
struct Pod {
    json: Value,
    /// The deployment that owns it (through its replica set).
    owner: Option<String>,
    /// The deployment template it was created from.
    template: Value,
    born: Instant,
    /// Creation order, to delete the newest first.
    seq: u64,
    /// Created by the controller and not yet made Ready by it (nor given a status by a test).
    pending: bool,
}

/// A deployment and its fake pods' behaviour.
#[derive(Clone)]
struct Deployment {
    json: Value,
    ready_after: Duration,
    never_ready: bool,
}

/// Every object of the fake cluster.
#[derive(Clone, Default)]
struct Store {
    revision: u64,
    seq: u64,
    pods: BTreeMap<Key, Pod>,
    deployments: BTreeMap<Key, Deployment>,
    replica_sets: BTreeMap<Key, Value>,
    hpas: BTreeMap<Key, Value>,
    pdbs: BTreeMap<Key, Value>,
    /// Events, in the order they were added.
    events: Vec<Value>,
    /// What each container wrote: `(namespace, pod, container)`.
    logs: BTreeMap<(String, String, String), logs::ContainerLogs>,
    /// Resources medic may not read (e.g. `events`, `pods/log`): a 403, as RBAC answers.
    forbidden: std::collections::BTreeSet<String>,
}

/// State shared by the server's workers, its controller and the [`FakeKube`].
struct Shared {
    store: Mutex<Store>,
    requests: Mutex<Vec<Request>>,
    /// While set, every request waits before it is answered (an API server that hangs).
    hang: std::sync::atomic::AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide the cluster from the others.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fake Kubernetes API server on 127.0.0.1 with a free port.
#[allow(dead_code)]
pub struct FakeKube {
    addr: SocketAddr,
    shared: Arc<Shared>,
    handle: ServerHandle,
    /// Disconnects when the server thread has finished.
    finished: mpsc::Receiver<()>,
}

#[allow(dead_code)]
impl FakeKube {
    /// Starts the server and its controller on their own thread; the cluster starts empty.
    pub async fn start() -> FakeKube {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake API server to a loopback port");
        let addr = listener.local_addr().expect("the fake API server's address");
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            requests: Mutex::new(Vec::new()),
            hang: std::sync::atomic::AtomicBool::new(false),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let controlled = Arc::clone(&shared);
        let (handle_tx, handle_rx) = tokio::sync::oneshot::channel();
        let (finished_tx, finished) = mpsc::channel::<()>();

        std::thread::Builder::new()
            .name(format!("fake-kube-{}", addr.port()))
            .spawn(move || {
                let _finished = finished_tx;
                actix_web::rt::System::new().block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .app_data(web::PayloadConfig::new(BODY_LIMIT))
                            .default_service(web::to(handle))
                    })
                    .workers(2)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener)
                    .expect("the fake API server listens")
                    .run();
                    let _ = handle_tx.send(server.handle());
                    actix_web::rt::spawn(control(controlled));
                    server.await.expect("the fake API server runs");
                });
            })
            .expect("spawn the fake API server's thread");

        let handle = handle_rx.await.expect("the fake API server started");
        FakeKube {
            addr,
            shared,
            handle,
            finished,
        }
    }

    /// http://127.0.0.1:PORT
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig (cluster server = url(), insecure http, user token TOKEN, context
    /// "fake", namespace "default") and returns the temp file (keep it alive).
    pub fn kubeconfig(&self) -> tempfile::NamedTempFile {
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: fake\n  user:\n    token: {TOKEN}\ncontexts:\n- name: fake\n  context:\n    \
             cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\n",
            self.url()
        );
        let mut file = tempfile::Builder::new()
            .prefix("fake-kubeconfig-")
            .suffix(".yaml")
            .tempfile()
            .expect("create the kubeconfig file");
        file.write_all(config.as_bytes()).expect("write the kubeconfig");
        file.flush().expect("flush the kubeconfig");
        file
    }

    /// Locks the cluster; the caller reconciles after writing.
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.shared.store)
    }

    /// Every request so far, in the order they were answered: method, path, query string,
    /// status code answered, body (parsed JSON or Null), content type and preconditions seen.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        // Sending the stop command happens now; the returned future only awaits completion.
        drop(self.handle.stop(false));
        // Give the server a moment to release its port and threads, without hanging a test.
        let _ = self.finished.recv_timeout(Duration::from_secs(5));
    }
}
