//! Who may do what through the API: each person or tool has one role, and each role may do
//! everything the roles below it may.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A role, ordered: `Admin` may do everything a `Responder` may, who may do everything a
/// `Viewer` may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads incidents, timelines and everything else under `GET /api/v1`.
    Viewer,
    /// Also acts on incidents as a person would: acknowledge (later: approve, silence,
    /// maintenance windows).
    Responder,
    /// Also flips the switches that affect everything (later: pausing all remediation).
    Admin,
}

impl Role {
    /// The name used in the config, the API and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Responder => "responder",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_do_what_the_roles_below_it_may() {
        assert!(Role::Admin > Role::Responder);
        assert!(Role::Responder > Role::Viewer);
        let parsed: Vec<Role> = serde_json::from_str(r#"["viewer", "responder", "admin"]"#).unwrap();
        assert_eq!(parsed, [Role::Viewer, Role::Responder, Role::Admin]);
        assert!(serde_json::from_str::<Role>(r#""root""#).is_err());
    }
}
