//! The retry policy for failed sends, as pure arithmetic: exponential backoff with equal
//! jitter, `Retry-After` honoured, and a horizon after which the engine gives up.

use std::{
    hash::{BuildHasher, RandomState},
    time::{Duration, Instant},
};

use crate::{config::RetrySettings, domain::TimerOutcome};

/// How failed sends are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the second attempt; it doubles with each attempt after that.
    pub initial: Duration,
    /// The longest delay between two attempts.
    pub max: Duration,
    /// Since the timer was due: past this, stop and record it as given up.
    pub give_up_after: Duration,
}

impl Backoff {
    /// The policy of `engine.retry`.
    pub fn new(settings: &RetrySettings) -> Self {
        Self {
            initial: settings.initial_backoff.0,
            max: settings.max_backoff.0,
            give_up_after: settings.give_up_after.0,
        }
    }

    /// The delay after failed attempt number `attempt` (1-based), with `jitter` in [0, 1):
    /// equal jitter keeps half of the exponential delay and draws the other half at random,
    /// so replicas retrying together spread out.
    pub fn delay(&self, attempt: i32, jitter: f64) -> Duration {
        let exponent = u32::try_from(attempt.max(1) - 1).unwrap_or(0).min(20);
        let backoff = self.initial.saturating_mul(1 << exponent).min(self.max);
        backoff / 2 + backoff.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }

    /// What follows a failed attempt worth retrying: the backoff, or the server's
    /// `Retry-After` clamped to [the backoff, what is left of the horizon], so that neither a
    /// `Retry-After: 0` nor an absurd one makes medic retry more often than the backoff allows
    /// or wait past the horizon. Given up once `waited` (since the timer was due) reaches the
    /// horizon.
    pub fn after_failure(
        &self,
        attempt: i32,
        waited: Duration,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> TimerOutcome {
        let backoff = self.delay(attempt, jitter);
        let left = self.give_up_after.saturating_sub(waited);
        if left.is_zero() || backoff > left {
            return TimerOutcome::GaveUp;
        }
        let delay = retry_after.map_or(backoff, |asked| asked.clamp(backoff, left));
        TimerOutcome::Retry {
            delay_ms: i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// Uniform in [0, 1), from the standard library's randomly keyed hasher.
pub fn random_fraction() -> f64 {
    let bits = RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn backoff() -> Backoff {
        Backoff {
            initial: SECOND,
            max: 60 * SECOND,
            give_up_after: 3600 * SECOND,
        }
    }

    #[test]
    fn the_delay_doubles_each_attempt_up_to_the_maximum() {
        let b = backoff();
        // No jitter drawn: half the exponential delay; all of it drawn: the whole.
        assert_eq!(b.delay(1, 0.0), SECOND / 2);
        assert_eq!(b.delay(1, 1.0), SECOND);
        assert_eq!(b.delay(2, 1.0), 2 * SECOND);
        assert_eq!(b.delay(3, 1.0), 4 * SECOND);
        assert_eq!(b.delay(7, 1.0), 60 * SECOND, "capped at max");
        assert_eq!(
            b.delay(10_000, 1.0),
            60 * SECOND,
            "no overflow on huge attempt numbers"
        );
        assert_eq!(b.delay(0, 1.0), SECOND, "attempt 0 reads as the first");
        assert_eq!(b.delay(-3, 1.0), SECOND);
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole_delay() {
        let b = backoff();
        for _ in 0..1000 {
            let delay = b.delay(3, random_fraction());
            assert!((2 * SECOND..4 * SECOND).contains(&delay), "{delay:?}");
        }
        assert_eq!(b.delay(3, 7.0), 4 * SECOND, "jitter is clamped");
    }

    #[test]
    fn retry_after_is_honoured_within_the_backoff_and_the_horizon() {
        let b = backoff();
        let ms = |outcome| match outcome {
            TimerOutcome::Retry { delay_ms } => delay_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ms(b.after_failure(1, Duration::ZERO, Some(2 * SECOND), 1.0)),
            2000
        );
        assert_eq!(ms(b.after_failure(2, Duration::ZERO, None, 0.0)), 1000);
        assert_eq!(
            ms(b.after_failure(3, Duration::ZERO, Some(Duration::ZERO), 1.0)),
            4000,
            "Retry-After: 0 waits the backoff, never less"
        );
        assert_eq!(
            ms(b.after_failure(1, 3000 * SECOND, Some(Duration::MAX), 0.0)),
            600_000,
            "an absurd Retry-After waits until the horizon, no longer, without overflowing"
        );
        let almost = 3599 * SECOND + SECOND / 2;
        assert_eq!(
            b.after_failure(1, almost, Some(2 * SECOND), 1.0),
            TimerOutcome::GaveUp
        );
        assert_eq!(b.after_failure(1, 3600 * SECOND, None, 0.0), TimerOutcome::GaveUp);
        assert_eq!(b.after_failure(1, Duration::MAX, None, 0.0), TimerOutcome::GaveUp);
    }

    #[test]
    fn random_fractions_fall_in_the_unit_interval() {
        for _ in 0..1000 {
            assert!((0.0..1.0).contains(&random_fraction()));
        }
    }
}
