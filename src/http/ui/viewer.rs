//! The person looking at the console (whoever `session` says it is), and the CSRF token their
//! forms must carry.

use super::failure::Failure;
use crate::domain::{Actor, Role};

/// The person looking, and what their forms must carry.
pub(super) struct Viewer {
    /// Who they are, acting from the console.
    pub person: Actor,
    /// The token every state-changing form carries.
    pub csrf: String,
    /// Signed in with a token (and so may sign out).
    pub signed_in: bool,
    /// A `Set-Cookie` the page must send (a new double-submit token).
    pub set_cookie: Option<String>,
}

impl Viewer {
    pub fn may(&self, role: Role) -> bool {
        self.person.role >= role
    }

    /// 403 unless `presented` is this viewer's CSRF token. Whether their role allows the act
    /// is the act's to say.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), Failure> {
        let presented = presented.unwrap_or_default();
        let same: bool = subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), self.csrf.as_bytes()).into();
        if presented.is_empty() || !same {
            tracing::warn!(user = %self.person.name, "console form without its CSRF token refused");
            return Err(Failure::forbidden(
                "this form is stale or did not come from the console; reload the page",
            ));
        }
        Ok(())
    }
}
