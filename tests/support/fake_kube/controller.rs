//! The controller: keeps deployments' replica sets and pods, readiness and every object's status
//! current.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use serde_json::{json, Value};

use super::{
    key, lock,
    metadata::{random_suffix, set_status, template_hash, touch},
    pods::{pod_ready, pod_status},
    Key, Pod, Shared, Store,
};

/// The annotation the Deployment controller numbers revisions with.
const REVISION: &str = "deployment.kubernetes.io/revision";

/// A replica set's revision number (0 before it has one).
fn set_revision(set: &Value) -> u64 {
    set["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// How often the controller loop runs.
const CONTROLLER_PERIOD: Duration = Duration::from_millis(25);

impl Store {
    /// One pass of the controller; also run right after every write.
    pub(super) fn reconcile(&mut self) {
        self.apply_hpa_minimums();
        let deployments: Vec<Key> = self.deployments.keys().cloned().collect();
        for deployment in &deployments {
            let replica_set = self.sync_replica_sets(deployment);
            self.replace_outdated_pods(deployment);
            self.scale_pods(deployment, &replica_set);
        }
        self.promote_ready_pods();
        for deployment in &deployments {
            self.update_deployment_status(deployment);
        }
        self.update_replica_set_statuses();
        self.update_hpa_statuses();
        self.update_pdb_statuses();
    }

    /// The pods a deployment owns, oldest first.
    pub(super) fn owned_pods(&self, (ns, name): &Key) -> Vec<Key> {
        let mut owned: Vec<(&Key, &Pod)> = self
            .pods
            .iter()
            .filter(|((namespace, _), pod)| namespace == ns && pod.owner.as_ref() == Some(name))
            .collect();
        owned.sort_by_key(|(_, pod)| pod.seq);
        owned.into_iter().map(|(k, _)| k.clone()).collect()
    }

    fn apply_hpa_minimums(&mut self) {
        for ((ns, _), hpa) in &self.hpas {
            let target = &hpa["spec"]["scaleTargetRef"];
            let Some(deployment) = target["name"].as_str().filter(|_| target["kind"] == "Deployment") else {
                continue;
            };
            let Some(deployment) = self.deployments.get_mut(&key(ns, deployment)) else {
                continue;
            };
            let min = hpa["spec"]["minReplicas"].as_i64().unwrap_or(1);
            let json = &mut deployment.json;
            if json["spec"]["replicas"].as_i64().unwrap_or(0) < min {
                json["spec"]["replicas"] = json!(min);
                json["metadata"]["generation"] =
                    json!(json["metadata"]["generation"].as_i64().unwrap_or(0) + 1);
                touch(json, &mut self.revision);
            }
        }
    }

    /// The replica set of the deployment's current template, created if missing, at the
    /// deployment's replica count; those of older templates go to 0 and stay, as history.
    fn sync_replica_sets(&mut self, deployment: &Key) -> Key {
        let json = &self.deployments[deployment].json;
        let hash = template_hash(&json["spec"]["template"]);
        let current = key(&deployment.0, &format!("{}-{hash}", deployment.1));
        let (uid, replicas) = (json["metadata"]["uid"].clone(), json["spec"]["replicas"].clone());
        if !self.replica_sets.contains_key(&current) {
            let replica_set = self.new_replica_set(deployment, &hash);
            self.replica_sets.insert(current.clone(), replica_set);
        }
        let Store {
            replica_sets,
            revision,
            ..
        } = self;
        let owned = replica_sets
            .iter_mut()
            .filter(|(_, set)| set["metadata"]["ownerReferences"][0]["uid"] == uid);
        let mut newest = 0;
        let mut current_revision = 0;
        for (set_key, set) in owned {
            let wanted = if *set_key == current {
                replicas.clone()
            } else {
                json!(0)
            };
            if set["spec"]["replicas"] != wanted {
                set["spec"]["replicas"] = wanted;
                set["metadata"]["generation"] =
                    json!(set["metadata"]["generation"].as_i64().unwrap_or(0) + 1);
                touch(set, revision);
            }
            let number = set_revision(set);
            if *set_key == current {
                current_revision = number;
            } else {
                newest = newest.max(number);
            }
        }
        if current_revision <= newest {
            // A new template (or an old one again) is the next revision, as the Deployment
            // controller numbers them.
            current_revision = newest + 1;
            let set = self.replica_sets.get_mut(&current).expect("created above");
            set["metadata"]["annotations"][REVISION] = json!(current_revision.to_string());
            touch(set, &mut self.revision);
        }
        let deployment = &mut self.deployments.get_mut(deployment).expect("listed").json;
        if deployment["metadata"]["annotations"][REVISION] != json!(current_revision.to_string()) {
            deployment["metadata"]["annotations"][REVISION] = json!(current_revision.to_string());
            touch(deployment, &mut self.revision);
        }
        current
    }

    /// A replica set for the deployment's template, labelled and selecting by its hash.
    fn new_replica_set(&mut self, (ns, name): &Key, hash: &str) -> Value {
        let deployment = self.deployments[&key(ns, name)].json.clone();
        let mut template = deployment["spec"]["template"].clone();
        template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let mut selector = deployment["spec"]["selector"].clone();
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        let labels = template["metadata"]["labels"].clone();
        let mut metadata = self.metadata(ns, &format!("{name}-{hash}"), labels);
        metadata["generation"] = json!(1);
        metadata["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": name,
            "uid": deployment["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
        }]);
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": metadata,
            "spec": {"replicas": deployment["spec"]["replicas"], "selector": selector, "template": template},
            "status": {"replicas": 0},
        })
    }

    /// Deletes the pods created from an older template of the deployment.
    fn replace_outdated_pods(&mut self, deployment: &Key) {
        let template = &self.deployments[deployment].json["spec"]["template"];
        let outdated: Vec<Key> = self
            .owned_pods(deployment)
            .into_iter()
            .filter(|pod| &self.pods[pod].template != template)
            .collect();
        for pod in outdated {
            self.pods.remove(&pod);
            self.revision += 1;
        }
    }

    /// Creates (in `replica_set`) or deletes (newest first) pods until the deployment has
    /// `spec.replicas`.
    fn scale_pods(&mut self, deployment: &Key, replica_set: &Key) {
        let wanted = self.deployments[deployment].json["spec"]["replicas"]
            .as_i64()
            .unwrap_or(1)
            .max(0) as usize;
        let owned = self.owned_pods(deployment);
        for extra in owned.iter().skip(wanted) {
            self.pods.remove(extra);
            self.revision += 1;
        }
        for _ in owned.len()..wanted {
            self.create_pod(deployment, replica_set);
        }
    }

    fn create_pod(&mut self, (ns, deployment): &Key, replica_set: &Key) {
        let name = loop {
            let name = format!("{deployment}-{}", random_suffix());
            if !self.pods.contains_key(&key(ns, &name)) {
                break name;
            }
        };
        let template = self.deployments[&key(ns, deployment)].json["spec"]["template"].clone();
        let owner = &self.replica_sets[replica_set];
        let (owner_name, owner_uid) = (
            owner["metadata"]["name"].clone(),
            owner["metadata"]["uid"].clone(),
        );
        let labels = owner["spec"]["template"]["metadata"]["labels"].clone();
        let mut metadata = self.metadata(ns, &name, labels);
        if let Some(annotations) = template["metadata"]["annotations"].as_object() {
            metadata["annotations"] = json!(annotations);
        }
        metadata["generateName"] = json!(format!("{}-", owner_name.as_str().unwrap_or_default()));
        metadata["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner_name, "uid": owner_uid,
            "controller": true, "blockOwnerDeletion": true,
        }]);
        let mut spec = template["spec"].clone();
        spec["nodeName"] = json!("fake-node");
        let status = pod_status(&spec, false, 0, None, Utc::now());
        let json =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status});
        self.seq += 1;
        let pod = Pod {
            json,
            owner: Some(deployment.clone()),
            template,
            born: Instant::now(),
            seq: self.seq,
            pending: true,
        };
        self.pods.insert(key(ns, &name), pod);
    }

    /// Makes pending pods Ready once their deployment's delay has passed.
    fn promote_ready_pods(&mut self) {
        for ((ns, _), pod) in self.pods.iter_mut().filter(|(_, pod)| pod.pending) {
            let owner = pod.owner.as_deref().unwrap_or_default();
            let Some(deployment) = self.deployments.get(&key(ns, owner)) else {
                continue;
            };
            if deployment.never_ready || pod.born.elapsed() < deployment.ready_after {
                continue;
            }
            pod.pending = false;
            pod.json["status"] = pod_status(&pod.json["spec"], true, 0, None, Utc::now());
            touch(&mut pod.json, &mut self.revision);
        }
    }

    fn update_deployment_status(&mut self, deployment: &Key) {
        let owned = self.owned_pods(deployment);
        let json = &self.deployments[deployment].json;
        let ready = owned
            .iter()
            .filter(|pod| pod_ready(&self.pods[*pod].json))
            .count() as i64;
        let updated = owned
            .iter()
            .filter(|pod| self.pods[*pod].template == json["spec"]["template"])
            .count();
        let wanted = json["spec"]["replicas"].as_i64().unwrap_or(1);
        let status = json!({
            "observedGeneration": json["metadata"]["generation"], "replicas": owned.len(),
            "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": ready,
            "unavailableReplicas": (wanted - ready).max(0),
        });
        let json = &mut self.deployments.get_mut(deployment).expect("listed above").json;
        set_status(json, status, &mut self.revision);
    }

    /// Each replica set's pod counts, from the pods it controls.
    fn update_replica_set_statuses(&mut self) {
        let Store {
            replica_sets,
            pods,
            revision,
            ..
        } = self;
        for ((ns, _), set) in replica_sets.iter_mut() {
            let controlled: Vec<&Pod> = pods
                .iter()
                .filter(|((namespace, _), pod)| {
                    namespace == ns
                        && pod.json["metadata"]["ownerReferences"][0]["uid"] == set["metadata"]["uid"]
                })
                .map(|(_, pod)| pod)
                .collect();
            let ready = controlled.iter().filter(|pod| pod_ready(&pod.json)).count();
            let status = json!({
                "observedGeneration": set["metadata"]["generation"], "replicas": controlled.len(),
                "readyReplicas": ready, "availableReplicas": ready,
            });
            set_status(set, status, revision);
        }
    }

    fn update_hpa_statuses(&mut self) {
        for ((ns, _), hpa) in self.hpas.iter_mut() {
            let target = hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap_or_default();
            let Some(deployment) = self.deployments.get(&key(ns, target)) else {
                continue;
            };
            let status = json!({
                "currentReplicas": deployment.json["status"]["replicas"],
                "desiredReplicas": deployment.json["spec"]["replicas"],
            });
            set_status(hpa, status, &mut self.revision);
        }
    }

    fn update_pdb_statuses(&mut self) {
        let keys: Vec<Key> = self.pdbs.keys().cloned().collect();
        for pdb_key in keys {
            let spec = &self.pdbs[&pdb_key]["spec"];
            let (selected, ready) = self.count_selected(&pdb_key.0, &spec["selector"]["matchLabels"]);
            let desired = match (spec["minAvailable"].as_i64(), spec["maxUnavailable"].as_i64()) {
                (Some(min), _) => min,
                (None, Some(max)) => (selected - max).max(0),
                (None, None) => 0,
            };
            let status = json!({
                "observedGeneration": self.pdbs[&pdb_key]["metadata"]["generation"],
                "expectedPods": selected, "currentHealthy": ready, "desiredHealthy": desired,
                "disruptionsAllowed": (ready - desired).max(0),
            });
            let pdb = self.pdbs.get_mut(&pdb_key).expect("listed above");
            set_status(pdb, status, &mut self.revision);
        }
    }
}

/// Runs the controller until the server's actix system stops.
pub(super) async fn control(shared: Arc<Shared>) {
    loop {
        actix_web::rt::time::sleep(CONTROLLER_PERIOD).await;
        lock(&shared.store).reconcile();
    }
}
