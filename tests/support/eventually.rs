//! `eventually`: the one way a test waits for what happens after medic answered (a timer fired,
//! a message sent, a replica caught up), by looking again until it holds or the time is up.

use std::{
    fmt::Display,
    future::Future,
    time::{Duration, Instant},
};

/// How long [`eventually`] pauses between two looks: short, so that a test measuring how soon
/// something happens measures medic and not the wait.
const POLL: Duration = Duration::from_millis(50);

/// What one look found: the awaited value, or what was there instead.
pub trait Look {
    /// What [`eventually`] returns once the look finds it.
    type Value;
    /// `Ok` ends the wait; `Err` says what was seen, for the panic if the time runs out.
    fn found(self) -> Result<Self::Value, String>;
}

/// Nothing yet, or the value.
impl<T> Look for Option<T> {
    type Value = T;
    fn found(self) -> Result<T, String> {
        self.ok_or_else(|| "nothing yet".to_owned())
    }
}

/// The value, or what was seen instead (an incident's JSON, a status code, a count).
impl<T, E: Display> Look for Result<T, E> {
    type Value = T;
    fn found(self) -> Result<T, String> {
        self.map_err(|seen| seen.to_string())
    }
}

/// Whether a condition holds: `what` says all there is to say.
impl Look for bool {
    type Value = ();
    fn found(self) -> Result<(), String> {
        self.then_some(()).ok_or_else(|| "not yet".to_owned())
    }
}

/// Looks with `look` until it finds what the test waits for, and returns that; looks at once and
/// then every [`POLL`], and panics with `what` and the last look's finding once `timeout` has
/// passed since the first.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut look: F) -> <Fut::Output as Look>::Value
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Look,
{
    let started = Instant::now();
    loop {
        let seen = match look().await.found() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if started.elapsed() >= timeout {
            panic!("gave up after {timeout:?} waiting for {what}; last seen: {seen}");
        }
        tokio::time::sleep(POLL).await;
    }
}
