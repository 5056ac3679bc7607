//! A local recording HTTP sink that stands in for Slack, PagerDuty and generic webhooks.
//!
//! The sink listens on a free loopback port, records every request (any method, any path) and
//! answers with replies the test chose: queued replies per path prefix are used in order, then
//! a per-prefix default, then 200 "ok". The server runs on its own thread with its own actix
//! system, so it does not depend on the runtime of the test that started it, and it stops
//! when the [`Sink`] is dropped.

use std::{
    collections::{HashMap, VecDeque},
    net::{SocketAddr, TcpListener},
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant, SystemTime},
};

use actix_web::{dev::ServerHandle, http::StatusCode, web, App, HttpRequest, HttpResponse, HttpServer};

/// Largest request body the sink accepts.
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// What the sink answers to one request.
#[allow(dead_code)]
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Response headers, in order; a name may repeat.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: String,
    /// How long the sink waits before answering (after recording the request).
    pub delay: Duration,
}

#[allow(dead_code)]
impl Reply {
    /// A reply with this status, an empty body, no headers and no delay.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the response body.
    pub fn with_body(mut self, body: &str) -> Reply {
        self.body = body.to_owned();
        self
    }

    /// Waits this long before answering.
    pub fn with_delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// One request the sink received.
#[allow(dead_code)]
#[derive(Clone, Debug)]
pub struct Received {
    /// When the request's body had been read.
    pub at: SystemTime,
    /// HTTP method, e.g. "POST".
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Headers by lowercase name; repeated headers are joined with ", ".
    pub headers: HashMap<String, String>,
    /// The body parsed as JSON, or `Null` if it is not JSON.
    pub body: serde_json::Value,
    /// The raw body (lossily decoded as UTF-8).
    pub text: String,
    /// The body's bytes (protobuf, for an OTLP receiver).
    pub bytes: Vec<u8>,
}

/// State shared by the server's workers and the [`Sink`].
struct State {
    received: Mutex<Vec<Received>>,
    count: AtomicUsize,
    replies: Mutex<Replies>,
}

/// Queued and default replies by path prefix.
#[derive(Default)]
struct Replies {
    queued: Vec<(String, VecDeque<Reply>)>,
    defaults: Vec<(String, Reply)>,
}

impl Replies {
    /// The reply for `path`: the longest prefix with a queued reply, else the default of the
    /// longest matching prefix, else 200 "ok".
    fn next(&mut self, path: &str) -> Reply {
        let queued = self
            .queued
            .iter_mut()
            .filter(|(prefix, queue)| path.starts_with(prefix.as_str()) && !queue.is_empty())
            .max_by_key(|(prefix, _)| prefix.len());
        if let Some((_, queue)) = queued {
            if let Some(reply) = queue.pop_front() {
                return reply;
            }
        }
        self.defaults
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, reply)| reply.clone())
            .unwrap_or_else(|| Reply::status(200).with_body("ok"))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide what was recorded from the others.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn handle(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let path = req.path().to_owned();
    let mut headers: HashMap<String, String> = HashMap::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str().to_ascii_lowercase())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let received = Received {
        at: SystemTime::now(),
        method: req.method().as_str().to_owned(),
        path: path.clone(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        text: String::from_utf8_lossy(&body).into_owned(),
        bytes: body.to_vec(),
    };

    // Choose the reply while holding the recording lock, so replies follow arrival order.
    let reply = {
        let mut all = lock(&state.received);
        all.push(received);
        state.count.fetch_add(1, Ordering::Release);
        lock(&state.replies).next(&path)
    };

    if !reply.delay.is_zero() {
        actix_web::rt::time::sleep(reply.delay).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    for (name, value) in &reply.headers {
        response.append_header((name.as_str(), value.as_str()));
    }
    response.body(reply.body)
}

/// The `ts` the local Slack Web API ([`Sink::slack_web_api`]) gives every message it posts.
pub const SLACK_ROOT_TS: &str = "1700000000.000100";

/// A recording HTTP server on 127.0.0.1 with a free port.
#[allow(dead_code)]
pub struct Sink {
    addr: SocketAddr,
    state: Arc<State>,
    handle: ServerHandle,
    /// Disconnects when the server thread has finished.
    finished: mpsc::Receiver<()>,
}

#[allow(dead_code)]
impl Sink {
    /// Starts with `workers` actix workers (tests use 1, the benchmark more). Default reply: 200
    /// with body "ok".
    pub async fn start(workers: usize) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the sink to a loopback port");
        let addr = listener.local_addr().expect("the sink's address");
        let state = Arc::new(State {
            received: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            replies: Mutex::new(Replies::default()),
        });
        let data = web::Data::from(Arc::clone(&state));
        let (handle_tx, handle_rx) = tokio::sync::oneshot::channel();
        let (finished_tx, finished) = mpsc::channel::<()>();

        std::thread::Builder::new()
            .name(format!("sink-{}", addr.port()))
            .spawn(move || {
                let _finished = finished_tx;
                actix_web::rt::System::new().block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .app_data(web::PayloadConfig::new(BODY_LIMIT))
                            .default_service(web::to(handle))
                    })
                    .workers(workers.max(1))
                    .backlog(4096)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener)
                    .expect("the sink listens")
                    .run();
                    let _ = handle_tx.send(server.handle());
                    server.await.expect("the sink runs");
                });
            })
            .expect("spawn the sink's thread");

        let handle = handle_rx.await.expect("the sink's server started");
        Sink {
            addr,
            state,
            handle,
            finished,
        }
    }

    /// A local Slack Web API under `/api/`: every method answers `ok`, `chat.postMessage` with
    /// the channel `C0TEST` and the `ts` [`SLACK_ROOT_TS`].
    pub async fn slack_web_api() -> Sink {
        let sink = Sink::start(1).await;
        sink.set_default(
            "/api/chat.postMessage",
            Reply::status(200).with_body(&format!(
                r#"{{"ok":true,"channel":"C0TEST","ts":"{SLACK_ROOT_TS}"}}"#
            )),
        );
        sink.set_default(
            "/api/",
            Reply::status(200).with_body(r#"{"ok":true,"messages":[]}"#),
        );
        sink
    }

    /// http://127.0.0.1:PORT followed by `path` (which starts with '/').
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Replies used in order for requests whose path starts with `path_prefix`; once used up,
    /// the default applies again. Where several prefixes have queued replies, the longest wins.
    pub fn enqueue(&self, path_prefix: &str, replies: Vec<Reply>) {
        let mut all = lock(&self.state.replies);
        match all.queued.iter_mut().find(|(prefix, _)| prefix == path_prefix) {
            Some((_, queue)) => queue.extend(replies),
            None => all.queued.push((path_prefix.to_owned(), replies.into())),
        }
    }

    /// Sets the reply used when no queued reply applies, for paths starting with `path_prefix`
    /// (e.g. PagerDuty's 202). Where several prefixes match, the longest wins.
    pub fn set_default(&self, path_prefix: &str, reply: Reply) {
        let mut all = lock(&self.state.replies);
        match all.defaults.iter_mut().find(|(prefix, _)| prefix == path_prefix) {
            Some((_, default)) => *default = reply,
            None => all.defaults.push((path_prefix.to_owned(), reply)),
        }
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state.received).clone()
    }

    /// Received requests whose path starts with `path_prefix`, in arrival order.
    pub fn received_at(&self, path_prefix: &str) -> Vec<Received> {
        lock(&self.state.received)
            .iter()
            .filter(|r| r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    /// How many requests so far (cheap: takes no lock).
    pub fn count(&self) -> usize {
        self.state.count.load(Ordering::Acquire)
    }

    /// Waits (polling every 10 ms) until at least `n` requests with this path prefix arrived and
    /// returns all of them, or panics after `timeout` with what did arrive.
    pub async fn wait_for(&self, path_prefix: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let arrived = self.received_at(path_prefix);
            if arrived.len() >= n {
                return arrived;
            }
            if Instant::now() >= deadline {
                panic!(
                    "sink: expected at least {n} requests at {path_prefix:?} within {timeout:?}, got {}:\n{}",
                    arrived.len(),
                    self.describe()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Asserts that nothing arrives at the prefix beyond `n` requests: sleeps `period`, then
    /// panics with details unless exactly `n` requests with this prefix arrived.
    pub async fn expect_no_more(&self, path_prefix: &str, n: usize, period: Duration) {
        tokio::time::sleep(period).await;
        let arrived = self.received_at(path_prefix).len();
        if arrived != n {
            panic!(
                "sink: expected exactly {n} requests at {path_prefix:?} after {period:?}, got {arrived}:\n{}",
                self.describe()
            );
        }
    }

    /// Everything received, one line each, for panic messages.
    fn describe(&self) -> String {
        let all = lock(&self.state.received);
        if all.is_empty() {
            return "  (nothing received)".to_owned();
        }
        all.iter()
            .map(|r| {
                let text: String = r.text.chars().take(300).collect();
                format!("  {} {} {}", r.method, r.path, text)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Sending the stop command happens now; the returned future only awaits completion.
        drop(self.handle.stop(false));
        // Give the server a moment to release its port and threads, without hanging a test.
        let _ = self.finished.recv_timeout(Duration::from_secs(5));
    }
}
