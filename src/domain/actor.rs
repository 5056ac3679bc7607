//! Who does something, in the words the audit trail stores: the person, their role, how they
//! were authenticated and the surface the act came through.

use std::fmt;

use super::Role;

/// How a person was authenticated (`audit_events.via`, shown as `auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// One of the users' bearer tokens (or a console session signed in with one).
    Token,
    /// A trusted authenticating proxy named them.
    Proxy,
    /// `server.auth.allow_unauthenticated`: nobody was asked.
    Anonymous,
    /// Slack's request signature, and the Slack user mapped to a medic user.
    Slack,
    /// PagerDuty's webhook signature, and the PagerDuty user who acted.
    PagerDuty,
    /// A JSON Web Token signed by a configured issuer (`Actor::issuer` names it).
    Jwt,
}

impl Auth {
    pub const ALL: [Auth; 6] = [
        Auth::Token,
        Auth::Proxy,
        Auth::Anonymous,
        Auth::Slack,
        Auth::PagerDuty,
        Auth::Jwt,
    ];

    /// The word stored (CHECK `audit_events_via_check`).
    pub fn as_str(self) -> &'static str {
        match self {
            Auth::Token => "token",
            Auth::Proxy => "proxy",
            Auth::Anonymous => "anonymous",
            Auth::Slack => "slack",
            Auth::PagerDuty => "pagerduty",
            Auth::Jwt => "jwt",
        }
    }
}

/// The way an act came (`audit_events.channel`, shown as `via`; `incidents.acked_via` for an
/// acknowledgement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Api,
    Console,
    Slack,
    PagerDuty,
}

impl Surface {
    pub const ALL: [Surface; 4] = [Surface::Api, Surface::Console, Surface::Slack, Surface::PagerDuty];

    /// The word stored (CHECK on `audit_events.channel`) and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Api => "api",
            Surface::Console => "console",
            Surface::Slack => "slack",
            Surface::PagerDuty => "pagerduty",
        }
    }

    /// The surface stored under `word`.
    pub fn parse(word: &str) -> Option<Surface> {
        Surface::ALL.into_iter().find(|surface| surface.as_str() == word)
    }
}

impl serde::Serialize for Surface {
    /// As the word stored, as the API has always shown it.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for Surface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a person did (`audit_events.action`, CHECK `audit_events_action_check`); also the
/// `act` label of `medic_acts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Acknowledge,
    /// PagerDuty said the incident is resolved: medic stops as for an acknowledgement.
    ResolveElsewhere,
    Approve,
    Reject,
    Pause,
    Resume,
    MaintenanceStart,
    MaintenanceEnd,
    Silence,
    Unsilence,
    /// An admin lifts a rule step's demotion: it acts on its own again.
    Promote,
}

impl Act {
    pub const ALL: [Act; 11] = [
        Act::Acknowledge,
        Act::ResolveElsewhere,
        Act::Approve,
        Act::Reject,
        Act::Pause,
        Act::Resume,
        Act::MaintenanceStart,
        Act::MaintenanceEnd,
        Act::Silence,
        Act::Unsilence,
        Act::Promote,
    ];

    /// The word stored in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Act::Acknowledge => "acknowledge",
            Act::ResolveElsewhere => "resolve_elsewhere",
            Act::Approve => "approve",
            Act::Reject => "reject",
            Act::Pause => "pause",
            Act::Resume => "resume",
            Act::MaintenanceStart => "maintenance_start",
            Act::MaintenanceEnd => "maintenance_end",
            Act::Silence => "silence",
            Act::Unsilence => "unsilence",
            Act::Promote => "promote",
        }
    }
}

/// A person (or tool) acting, as a surface authenticated them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
    pub auth: Auth,
    /// Where the request came from: the peer, the client a trusted proxy names, or the
    /// integration (`slack`, `pagerduty`).
    pub address: String,
    pub surface: Surface,
    /// The issuer (`iss`) that vouched for them when `auth` is [`Auth::Jwt`]: two issuers may
    /// each have a user of the same name, and the audit trail must tell them apart.
    pub issuer: Option<String>,
}

impl Actor {
    /// Whether their role allows what needs `role`.
    pub fn may(&self, role: Role) -> bool {
        self.role >= role
    }
}

/// Free text a person wrote (a note, a reason): trimmed, at most [`Text::MAX`] bytes, no NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(String);

impl Text {
    pub const MAX: usize = 2000;

    /// None for nothing but white space; an error naming `field` for text too long or with NUL.
    pub fn parse(field: &str, value: Option<&str>) -> Result<Option<Text>, String> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if value.len() > Self::MAX {
            return Err(format!("{field:?} is longer than {} bytes", Self::MAX));
        }
        if value.contains('\0') {
            return Err(format!("{field:?}: NUL characters are not accepted"));
        }
        Ok(Some(Text(value.to_owned())))
    }

    /// Like [`Text::parse`], but the text is required.
    pub fn required(field: &str, value: &str) -> Result<Text, String> {
        Self::parse(field, Some(value))?.ok_or_else(|| format!("{field:?} is required"))
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_surface_reads_back_as_itself() {
        for surface in Surface::ALL {
            assert_eq!(Surface::parse(surface.as_str()), Some(surface));
            assert_eq!(serde_json::to_value(surface).unwrap(), surface.as_str());
        }
        assert_eq!(Surface::parse("token"), None);
    }

    #[test]
    fn text_is_trimmed_bounded_and_free_of_nul() {
        assert_eq!(Text::parse("note", Some("  ")).unwrap(), None);
        assert_eq!(Text::parse("note", Some(" hi ")).unwrap().unwrap().as_ref(), "hi");
        assert!(Text::parse("note", Some(&"x".repeat(2001))).is_err());
        assert!(Text::parse("note", Some("a\0b")).is_err());
        assert!(Text::required("reason", " ").unwrap_err().contains("reason"));
    }
}
