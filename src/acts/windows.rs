//! Maintenance windows and the remediation pause: the switches people flip. A window has one
//! set of limits whichever surface opens it, so a responder cannot mute every page for ever.

use chrono::{DateTime, Utc};

use super::{
    door::{require, Acts, Refused},
    limits::WindowLimits,
};
use crate::{
    alertmanager::KV,
    domain::{Act, Actor, Mute, Role, Text},
    plan::matchers::Matchers,
    store::control::{NewWindow, Pause, Window},
};

/// Matchers a window may have.
pub const MAX_MATCHERS: usize = 20;
/// Bytes a matcher may have.
pub const MAX_MATCHER_BYTES: usize = 1000;

/// A window to open, as a surface read it.
#[derive(Debug, Clone)]
pub struct WindowRequest {
    /// Alertmanager matchers, one (or a `{..}` group) per entry.
    pub matchers: Vec<String>,
    /// None: now. A start in the past is now.
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: DateTime<Utc>,
    pub mute: Vec<Mute>,
    pub reason: Text,
}

impl Acts {
    /// Opens a maintenance window within the limits.
    pub async fn open_window(&self, actor: &Actor, request: WindowRequest) -> Result<Window, Refused> {
        let result = async {
            require(actor, Role::Responder)?;
            let (starts_at, mute) = self.check_window(actor, &request)?;
            let mute: Vec<&str> = mute.iter().map(|m| m.as_str()).collect();
            let window = NewWindow {
                matchers: &request.matchers,
                starts_at,
                ends_at: request.ends_at,
                mute: &mute,
                reason: request.reason.as_ref(),
            };
            let max = i64::from(self.limits.max_windows);
            let created = self
                .store
                .create_window(&window, actor, max)
                .await?
                .ok_or_else(|| {
                    Refused::Invalid(format!(
                    "{max} maintenance windows are in force or scheduled already (maintenance.max_windows)"
                ))
                })?;
            self.control.refresh(&self.store, &self.metrics.remediation).await;
            tracing::info!(window_id = created.id, by = %actor.name, role = %actor.role, via = %actor.surface,
                matchers = ?created.matchers, mute = ?created.mute, starts_at = %created.starts_at,
                ends_at = %created.ends_at, reason = %created.reason, "maintenance window opened");
            Ok(created)
        }
        .await;
        self.count(Act::MaintenanceStart, actor, &result, |_| true);
        result
    }

    /// The window's start and what it mutes, or why it may not be opened.
    fn check_window(
        &self,
        actor: &Actor,
        request: &WindowRequest,
    ) -> Result<(DateTime<Utc>, Vec<Mute>), Refused> {
        check_matchers(&request.matchers)?;
        let mut mute = request.mute.clone();
        mute.dedup();
        if mute.is_empty() {
            return Err(Refused::Invalid("mute at least one of remediation, pages".into()));
        }
        let now = Utc::now();
        let starts_at = request.starts_at.map_or(now, |start| start.max(now));
        if request.ends_at <= starts_at {
            return Err(Refused::Invalid(
                "ends_at must be after starts_at and in the future".into(),
            ));
        }
        let lasts = (request.ends_at - starts_at).to_std().unwrap_or_default();
        if lasts > WindowLimits::LONGEST {
            return Err(Refused::Invalid(
                "no maintenance window lasts more than 30 days".into(),
            ));
        }
        if lasts > self.limits.longest_for(actor) {
            return Err(Refused::Forbidden(format!(
                "{} has the role {}; a window longer than {} (maintenance.max_duration) needs admin",
                actor.name,
                actor.role,
                crate::domain::HumanDuration(self.limits.max_duration)
            )));
        }
        Ok((starts_at, mute))
    }

    /// Ends a window now; what it held resumes at once.
    pub async fn end_window(&self, actor: &Actor, id: i64) -> Result<Window, Refused> {
        let result = async {
            require(actor, Role::Responder)?;
            let window =
                self.store.end_window(id, actor).await?.ok_or_else(|| {
                    Refused::NotFound(format!("no current or future maintenance window {id}"))
                })?;
            self.control.refresh(&self.store, &self.metrics.remediation).await;
            tracing::info!(window_id = id, by = %actor.name, role = %actor.role, via = %actor.surface,
                "maintenance window ended");
            Ok(window)
        }
        .await;
        self.count(Act::MaintenanceEnd, actor, &result, |_| true);
        result
    }

    /// Pauses every remediation in every replica (`skipped_paused`) until resumed or `until`.
    pub async fn pause(
        &self,
        actor: &Actor,
        reason: Text,
        until: Option<DateTime<Utc>>,
    ) -> Result<Pause, Refused> {
        let result = async {
            require(actor, Role::Admin)?;
            if until.is_some_and(|until| until <= Utc::now()) {
                return Err(Refused::Invalid("until must be in the future".into()));
            }
            let pause = self.store.set_pause(reason.as_ref(), until, actor).await?;
            self.metrics.remediation.paused.set(1);
            tracing::warn!(by = %actor.name, role = %actor.role, via = %actor.surface, reason = reason.as_ref(),
                until = ?until, "remediation paused");
            Ok(pause)
        }
        .await;
        self.count(Act::Pause, actor, &result, |_| true);
        result
    }

    /// Resumes remediation; whether it was paused.
    pub async fn resume(&self, actor: &Actor) -> Result<bool, Refused> {
        let result = async {
            require(actor, Role::Admin)?;
            let was = self.store.clear_pause(actor).await?;
            self.metrics.remediation.paused.set(0);
            tracing::warn!(by = %actor.name, role = %actor.role, via = %actor.surface, was_paused = was,
                "remediation resumed");
            Ok(was)
        }
        .await;
        self.count(Act::Resume, actor, &result, |was| *was);
        result
    }
}

/// At least one and at most [`MAX_MATCHERS`] matchers, each parsed and at most
/// [`MAX_MATCHER_BYTES`]; and, as Alertmanager requires of silences, at least one that does not
/// match the empty string, so a window cannot cover every alert by accident or on purpose.
fn check_matchers(entries: &[String]) -> Result<(), Refused> {
    let bad = |e: String| Err(Refused::Invalid(e));
    if entries.is_empty() {
        return bad("a window needs at least one matcher".into());
    }
    if entries.len() > MAX_MATCHERS {
        return bad(format!("at most {MAX_MATCHERS} matchers"));
    }
    let mut parsed = Vec::new();
    for entry in entries {
        if entry.len() > MAX_MATCHER_BYTES {
            return bad(format!("a matcher is longer than {MAX_MATCHER_BYTES} bytes"));
        }
        match Matchers::parse(&[entry]) {
            Ok(matchers) => parsed.extend(matchers.iter().cloned()),
            Err(e) => return bad(format!("matcher {entry:?}: {e}")),
        }
    }
    if parsed.len() > MAX_MATCHERS {
        return bad(format!("at most {MAX_MATCHERS} matchers"));
    }
    let nothing = KV::new();
    if parsed.iter().all(|m| m.matches(&nothing)) {
        return bad(
            "at least one matcher must not match the empty string (as Alertmanager requires of silences), \
             e.g. namespace=\"shop\""
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[&str]) -> Vec<String> {
        list.iter().map(|m| (*m).to_owned()).collect()
    }

    #[test]
    fn a_window_needs_a_matcher_that_does_not_match_the_empty_string() {
        assert!(check_matchers(&entries(&[r#"namespace="shop""#])).is_ok());
        for everything in [r#"nolabel="""#, r#"a=~".*""#, r#"a!="x""#, r#"{a="", b=~".*"}"#] {
            let refused = check_matchers(&entries(&[everything])).unwrap_err();
            assert!(
                refused.to_string().contains("empty string"),
                "{everything}: {refused}"
            );
        }
        assert!(check_matchers(&entries(&[r#"nolabel="""#, r#"team="db""#])).is_ok());
    }

    #[test]
    fn a_window_has_at_most_twenty_matchers_of_at_most_1000_bytes() {
        let many: Vec<String> = (0..21).map(|i| format!("a{i}=\"x\"")).collect();
        assert!(check_matchers(&many).is_err());
        let grouped = format!("{{{}}}", many.join(", "));
        assert!(
            check_matchers(&[grouped]).is_err(),
            "20 matchers hidden in one entry"
        );
        let long = format!("a=\"{}\"", "x".repeat(1000));
        assert!(check_matchers(&[long]).is_err());
        assert!(check_matchers(&[]).is_err());
    }
}
