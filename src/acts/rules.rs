//! Promoting a demoted rule step: an admin says it may act on its own again.

use super::door::{require, Acts, Refused};
use crate::{
    domain::{Act, Actor, Role, Text},
    store::demotions::{Demotion, Promoted},
};

impl Acts {
    /// Lifts the demotion of `rule`'s step `step`; a step not demoted is a conflict.
    pub async fn promote(
        &self,
        actor: &Actor,
        rule: &str,
        step: i32,
        note: Option<Text>,
    ) -> Result<Demotion, Refused> {
        let result = async {
            require(actor, Role::Admin)?;
            let note = note.as_ref().map(AsRef::as_ref);
            match self.store.promote(rule, step, actor, note).await? {
                Promoted::NotDemoted => Err(Refused::Conflict(format!(
                    "rule {rule:?} step {step} is not demoted"
                ))),
                Promoted::Lifted(demotion) => {
                    tracing::info!(rule, step, by = %actor.name, role = %actor.role, auth = actor.auth.as_str(),
                        address = %actor.address, via = %actor.surface, demotion = %demotion.reason,
                        note = note.unwrap_or(""), "rule step promoted");
                    Ok(demotion)
                }
            }
        }
        .await;
        self.count(Act::Promote, actor, &result, |_| true);
        result
    }
}
