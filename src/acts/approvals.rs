//! Answering a request for approval: the step then runs through its guard rails again (or is
//! recorded as rejected) at once.

use super::door::{require, Acts, Refused};
use crate::{
    domain::{Act, Actor, Role, Text},
    store::remediations::Answered,
};

/// A decision recorded.
#[derive(Debug)]
pub struct Decided {
    pub remediation: i64,
    pub approved: bool,
}

impl Acts {
    /// Approves (`approve`) or rejects a request still waiting; deciding twice, or too late,
    /// is a conflict.
    pub async fn decide(
        &self,
        actor: &Actor,
        remediation: i64,
        approve: bool,
        note: Option<Text>,
    ) -> Result<Decided, Refused> {
        let act = if approve { Act::Approve } else { Act::Reject };
        let result = async {
            require(actor, Role::Responder)?;
            let note = note.as_ref().map(AsRef::as_ref);
            match self
                .store
                .answer_request(remediation, approve, actor, note)
                .await?
            {
                Answered::Unknown => Err(Refused::NotFound(format!("no remediation {remediation}"))),
                Answered::NotWaiting(now) => Err(Refused::Conflict(format!(
                    "remediation {remediation} is not waiting for approval: it is {now}"
                ))),
                Answered::Recorded => {
                    tracing::info!(remediation_id = remediation, by = %actor.name, role = %actor.role,
                        auth = actor.auth.as_str(), address = %actor.address, via = %actor.surface,
                        approved = approve, "remediation request answered");
                    Ok(Decided {
                        remediation,
                        approved: approve,
                    })
                }
            }
        }
        .await;
        self.count(act, actor, &result, |_| true);
        result
    }
}
