//! Replica sets (`apps/v1`): list and get. The controller writes them; nothing else may.

use super::{
    key,
    reply::{list, not_found, ok, Answer},
    request::Call,
    Store,
};

impl Store {
    pub(super) fn list_replica_sets(&self, ns: &str, call: &Call) -> Answer {
        let items = Self::select(self.replica_sets.iter(), ns, call)?;
        list("apps/v1", "ReplicaSetList", self.revision, items)
    }

    pub(super) fn get_replica_set(&self, ns: &str, name: &str) -> Answer {
        let set = self.replica_sets.get(&key(ns, name));
        ok(
            200,
            set.ok_or_else(|| not_found("replicasets", "apps", name))?.clone(),
        )
    }
}
