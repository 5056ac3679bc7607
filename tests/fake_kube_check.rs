//! Scratch checks of the fake Kubernetes API server (to be deleted).

#[path = "support/fake_kube.rs"]
mod fake_kube;

use std::time::Duration;

use fake_kube::{FakeKube, TOKEN};
use serde_json::{json, Value};

const SECS: Duration = Duration::from_secs(5);

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn new(kube: &FakeKube) -> Api {
        Api {
            client: reqwest::Client::new(),
            base: kube.url(),
        }
    }

    async fn send(&self, method: &str, path: &str, content_type: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(TOKEN)
            .header("content-type", content_type);
        if let Some(body) = body {
            req = req.body(body.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, "application/json", None).await
    }
}

fn names(pods: &[Value]) -> Vec<String> {
    pods.iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

fn uids(pods: &[Value]) -> Vec<String> {
    pods.iter()
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn list_wait_evict() {
    let kube = FakeKube::start().await;
    let api = Api::new(&kube);
    kube.add_deployment("default", "web", 3, &[("app", "web"), ("tier", "front")]);
    kube.add_pod("default", "lonely", &[("app", "other")], true, 0, None);

    let (status, list) = api
        .get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    let (_, list) = api
        .get("/api/v1/namespaces/default/pods?labelSelector=app%3D%3Dweb,tier!%3Dback")
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    let (_, list) = api
        .get("/api/v1/namespaces/default/pods?labelSelector=app%20in%20(other,x)")
        .await;
    assert_eq!(names(list["items"].as_array().unwrap()), ["lonely"]);
    let (_, list) = api
        .get("/api/v1/namespaces/default/pods?labelSelector=app!%3Dweb")
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (status, bad) = api
        .get("/api/v1/namespaces/default/pods?labelSelector=a%20in%20x)")
        .await;
    assert_eq!(
        (status, bad["reason"].as_str()),
        (400, Some("BadRequest")),
        "{bad}"
    );

    let pod = &list["items"][0];
    assert_eq!(pod["apiVersion"], "v1");
    assert!(pod["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    let ready = kube.wait_ready_pods("default", "web", 3, SECS).await;
    let victim = ready[0].clone();
    assert_eq!(victim["metadata"]["ownerReferences"][0]["name"], "web-rs");
    assert_eq!(victim["status"]["containerStatuses"][0]["ready"], true);
    let name = victim["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    let dep = kube.deployment("default", "web").unwrap();
    assert_eq!(dep["status"]["readyReplicas"], 3);

    // Wrong UID.
    let path = format!("/api/v1/namespaces/default/pods/{name}/eviction");
    let eviction = |uid: &str| {
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"},
               "deleteOptions": {"preconditions": {"uid": uid}}})
    };
    let (status, body) = api
        .send("POST", &path, "application/json", Some(eviction("nope")))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["reason"], "Conflict");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("Precondition failed: UID in precondition: nope, UID in object meta: "));

    // Dry run changes nothing.
    let uid = victim["metadata"]["uid"].as_str().unwrap();
    let (status, _) = api
        .send(
            "POST",
            &format!("{path}?dryRun=All"),
            "application/json",
            Some(eviction(uid)),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(kube.pods("default").len(), 4);

    // Success.
    let (status, body) = api
        .send("POST", &path, "application/json", Some(eviction(uid)))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201})
    );
    let (status, body) = api.get(&format!("/api/v1/namespaces/default/pods/{name}")).await;
    assert_eq!((status, body["reason"].as_str()), (404, Some("NotFound")));
    assert_eq!(body["details"]["kind"], "pods");
    let after = kube.wait_ready_pods("default", "web", 3, SECS).await;
    assert!(!names(&after).contains(&name.to_owned()));
    assert_eq!(kube.requests().last().unwrap().status, 404);
    let evictions: Vec<_> = kube
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .collect();
    assert_eq!(evictions.len(), 3);
    assert_eq!(evictions[2].preconditions, Some(json!({"uid": uid})));

    // Missing pod.
    let (status, _) = api
        .send("POST", &path, "application/json", Some(eviction(uid)))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn pdb_blocks_and_delete_options_ignored() {
    let kube = FakeKube::start().await;
    let api = Api::new(&kube);
    kube.add_deployment("prod", "api", 2, &[("app", "api")]);
    kube.set_ready_after("prod", "api", Duration::from_millis(50));
    kube.add_pdb("prod", "api-pdb", &[("app", "api")], Some(2), None);
    let pods = kube.wait_ready_pods("prod", "api", 2, SECS).await;
    let (status, list) = api
        .get("/apis/policy/v1/namespaces/prod/poddisruptionbudgets")
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["status"]["disruptionsAllowed"], 0, "{list}");

    let name = pods[0]["metadata"]["name"].as_str().unwrap();
    let path = format!("/api/v1/namespaces/prod/pods/{name}/eviction");
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "prod"}});
    let (status, reply) = api.send("POST", &path, "application/json", Some(body)).await;
    assert_eq!(status, 429, "{reply}");
    assert_eq!(reply["reason"], "TooManyRequests");
    assert_eq!(
        reply["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(reply["details"]["causes"][0]["reason"], "DisruptionBudget");
    assert_eq!(
        reply["details"]["causes"][0]["message"],
        "The disruption budget api-pdb needs 2 healthy pods and has 2 currently"
    );

    // A not-Ready pod may go, even against the budget; delete_options is ignored.
    kube.set_pod_status(
        "prod",
        name,
        false,
        7,
        Some("CrashLoopBackOff"),
        chrono::Utc::now(),
    );
    let pod = &kube
        .pods("prod")
        .into_iter()
        .find(|p| p["metadata"]["name"] == name)
        .unwrap();
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "CrashLoopBackOff"
    );
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 7);
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "prod"},
                      "delete_options": {"preconditions": {"uid": "wrong"}}});
    let (status, reply) = api.send("POST", &path, "application/json", Some(body)).await;
    assert_eq!(status, 201, "{reply}");
    let last = kube.requests().pop().unwrap();
    assert_eq!(last.preconditions, None);
    assert!(last.body["delete_options"].is_object());
    kube.wait_ready_pods("prod", "api", 2, SECS).await;

    // maxUnavailable
    kube.add_pod("prod", "solo-a", &[("app", "solo")], true, 0, None);
    kube.add_pod("prod", "solo-b", &[("app", "solo")], false, 0, None);
    kube.add_pdb("prod", "solo-pdb", &[("app", "solo")], None, Some(1));
    let path = "/api/v1/namespaces/prod/pods/solo-a/eviction";
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "solo-a"}});
    let (status, reply) = api.send("POST", path, "application/json", Some(body)).await;
    assert_eq!(status, 429, "{reply}");
    assert_eq!(
        reply["details"]["causes"][0]["message"],
        "The disruption budget solo-pdb needs 1 healthy pods and has 1 currently"
    );
}

#[tokio::test]
async fn delete_with_preconditions() {
    let kube = FakeKube::start().await;
    let api = Api::new(&kube);
    kube.add_pod("default", "p", &[("app", "p")], true, 0, None);
    let uid = kube.pods("default")[0]["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = "/api/v1/namespaces/default/pods/p";
    let (status, body) = api
        .send(
            "DELETE",
            path,
            "application/json",
            Some(json!({"preconditions": {"uid": "stale"}})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["message"],
        format!("Operation cannot be fulfilled on pods \"p\": Precondition failed: UID in precondition: stale, UID in object meta: {uid}")
    );
    assert_eq!(body["details"], json!({"name": "p", "kind": "pods"}));
    let (status, body) = api
        .send(
            "DELETE",
            path,
            "application/json",
            Some(json!({"preconditions": {"uid": uid}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "Pod");
    assert!(kube.pods("default").is_empty());
    let (status, _) = api.send("DELETE", path, "application/json", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn scale_and_patches() {
    let kube = FakeKube::start().await;
    let api = Api::new(&kube);
    kube.add_deployment("default", "web", 2, &[("app", "web")]);
    kube.set_ready_after("default", "web", Duration::from_millis(30));
    let before = kube.wait_ready_pods("default", "web", 2, SECS).await;
    let scale_path = "/apis/apps/v1/namespaces/default/deployments/web/scale";
    let (status, scale) = api.get(scale_path).await;
    assert_eq!(status, 200);
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"], json!({"replicas": 2, "selector": "app=web"}));

    let (status, scale) = api
        .send(
            "PATCH",
            scale_path,
            "application/merge-patch+json",
            Some(json!({"spec": {"replicas": 4}})),
        )
        .await;
    assert_eq!(status, 200, "{scale}");
    assert_eq!(scale["spec"]["replicas"], 4);
    kube.wait_ready_pods("default", "web", 4, SECS).await;
    assert_eq!(kube.pods("default").len(), 4);

    // PUT with a stale resourceVersion, then with none.
    let (status, body) = api
        .send(
            "PUT",
            scale_path,
            "application/json",
            Some(json!({"metadata": {"name": "web", "resourceVersion": "1"}, "spec": {"replicas": 1}})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("the object has been modified"));
    let (status, _) = api
        .send(
            "PUT",
            scale_path,
            "application/json",
            Some(json!({"metadata": {"name": "web"}, "spec": {"replicas": 2}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(kube.pods("default").len(), 2);
    let kept = kube.wait_ready_pods("default", "web", 2, SECS).await;
    assert_eq!(uids(&kept), uids(&before), "scaling down deletes the newest pods");

    // Merge patch of the template's annotations rolls every pod.
    let dep_path = "/apis/apps/v1/namespaces/default/deployments/web";
    let generation = kube.deployment("default", "web").unwrap()["metadata"]["generation"]
        .as_i64()
        .unwrap();
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2024-01-01T00:00:00Z"}}}}});
    let (status, dep) = api
        .send("PATCH", dep_path, "application/merge-patch+json", Some(patch))
        .await;
    assert_eq!(status, 200, "{dep}");
    assert_eq!(dep["metadata"]["generation"], generation + 1);
    let rolled = kube.wait_ready_pods("default", "web", 2, SECS).await;
    assert!(uids(&rolled).iter().all(|uid| !uids(&before).contains(uid)));
    assert_eq!(
        rolled[0]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2024-01-01T00:00:00Z"
    );
    let dep = kube.deployment("default", "web").unwrap();
    assert_eq!(dep["status"]["observedGeneration"], generation + 1);
    assert_eq!(dep["status"]["updatedReplicas"], 2);

    // Strategic patch adds an env var and keeps the image.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"name": "MODE", "value": "safe"}]}]}}}});
    let (status, dep) = api
        .send(
            "PATCH",
            dep_path,
            "application/strategic-merge-patch+json",
            Some(patch.clone()),
        )
        .await;
    assert_eq!(status, 200, "{dep}");
    let container = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "app:1");
    assert_eq!(container["env"], json!([{"name": "MODE", "value": "safe"}]));
    let patch2 = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"name": "MORE", "value": "x"}]}]}}}});
    let (_, dep) = api
        .send(
            "PATCH",
            dep_path,
            "application/strategic-merge-patch+json",
            Some(patch2),
        )
        .await;
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let pods = kube.wait_ready_pods("default", "web", 2, SECS).await;
    assert_eq!(
        pods[0]["spec"]["containers"][0]["env"].as_array().unwrap().len(),
        2
    );

    // A merge patch replaces the list.
    let (_, dep) = api
        .send("PATCH", dep_path, "application/merge-patch+json", Some(patch))
        .await;
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        Value::Null
    );

    // Stale resourceVersion in a patch.
    let stale = json!({"metadata": {"resourceVersion": "3"}, "spec": {"replicas": 5}});
    let (status, body) = api
        .send("PATCH", dep_path, "application/merge-patch+json", Some(stale))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["details"],
        json!({"name": "web", "group": "apps", "kind": "deployments"})
    );

    // Wrong content type.
    let (status, body) = api
        .send(
            "PATCH",
            dep_path,
            "application/json-patch+json",
            Some(json!([{"op": "replace"}])),
        )
        .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (415, Some("UnsupportedMediaType")),
        "{body}"
    );
    let (status, _) = api
        .send("PATCH", dep_path, "application/apply-patch+yaml", Some(json!({})))
        .await;
    assert_eq!(status, 415);

    // Lists.
    let (status, list) = api
        .get("/apis/apps/v1/namespaces/default/deployments?labelSelector=app%3Dweb")
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["kind"], "DeploymentList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, list) = api
        .get("/apis/apps/v1/namespaces/default/deployments?labelSelector=app%3Dnope")
        .await;
    assert!(list["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn hpa_min_raises_deployment() {
    let kube = FakeKube::start().await;
    let api = Api::new(&kube);
    kube.add_deployment("default", "web", 2, &[("app", "web")]);
    kube.add_hpa("default", "web-hpa", "web", 2, 10);
    let (status, list) = api
        .get("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers")
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["spec"]["scaleTargetRef"]["name"], "web");
    let path = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/web-hpa";
    let (status, hpa) = api
        .send(
            "PATCH",
            path,
            "application/merge-patch+json",
            Some(json!({"spec": {"minReplicas": 4}})),
        )
        .await;
    assert_eq!(status, 200, "{hpa}");
    assert_eq!(hpa["spec"]["minReplicas"], 4);
    assert_eq!(hpa["spec"]["maxReplicas"], 10);
    assert_eq!(kube.deployment("default", "web").unwrap()["spec"]["replicas"], 4);
    kube.wait_ready_pods("default", "web", 4, SECS).await;
    assert_eq!(
        kube.hpa("default", "web-hpa").unwrap()["status"]["currentReplicas"],
        4
    );
    let (status, _) = api
        .get("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/nope")
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn auth_unknown_never_ready_and_kubeconfig() {
    let kube = FakeKube::start().await;
    let api = Api::new(&kube);
    let resp = reqwest::get(format!("{}/api/v1/namespaces/default/pods", kube.url()))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Unauthorized");
    assert_eq!(body["code"], 401);
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/namespaces/default/pods", kube.url()))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    let (status, body) = api.get("/apis/batch/v1/namespaces/default/jobs").await;
    assert_eq!(
        (status, body["reason"].as_str(), body["kind"].as_str()),
        (404, Some("NotFound"), Some("Status"))
    );
    let (status, _) = api.get("/version").await;
    assert_eq!(status, 200);

    kube.add_deployment("default", "stuck", 1, &[("app", "stuck")]);
    kube.set_never_ready("default", "stuck", true);
    tokio::time::sleep(Duration::from_millis(400)).await;
    kube.wait_ready_pods("default", "stuck", 0, Duration::from_millis(100))
        .await;
    kube.set_never_ready("default", "stuck", false);
    kube.wait_ready_pods("default", "stuck", 1, SECS).await;

    let config = kube.kubeconfig();
    let text = std::fs::read_to_string(config.path()).unwrap();
    assert!(text.contains(&format!("server: {}", kube.url())));
    assert!(text.contains("token: fake-token"));
    println!("{text}");
    let requests = kube.requests();
    assert_eq!(requests[0].status, 401);
    assert_eq!(requests[0].method, "GET");
}

mod with_kube {
    use super::*;
    use k8s_openapi::api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::Pod,
        policy::v1::{Eviction, PodDisruptionBudget},
    };
    use kube::{
        api::{DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams, Preconditions},
        config::{KubeConfigOptions, Kubeconfig},
        Api, Client, Config,
    };

    async fn client(kube: &FakeKube) -> (Client, tempfile::NamedTempFile) {
        let file = kube.kubeconfig();
        let mut config = Config::from_custom_kubeconfig(
            Kubeconfig::read_from(file.path()).unwrap(),
            &KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(config.default_namespace, "default");
        config.default_retry = false;
        (Client::try_from(config).unwrap(), file)
    }

    fn api_error(e: kube::Error) -> (u16, String) {
        match e {
            kube::Error::Api(status) => (status.code, status.reason.clone()),
            other => panic!("not an API error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn kube_client_round_trip() {
        let kube = FakeKube::start().await;
        kube.add_deployment("default", "web", 2, &[("app", "web")]);
        kube.set_ready_after("default", "web", Duration::from_millis(30));
        kube.add_pdb("default", "web-pdb", &[("app", "web")], Some(2), None);
        kube.add_hpa("default", "web-hpa", "web", 1, 5);
        let (client, _file) = client(&kube).await;
        let pods: Api<Pod> = Api::default_namespaced(client.clone());
        let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
        let ready = kube.wait_ready_pods("default", "web", 2, SECS).await;

        let listed = pods.list(&ListParams::default().labels("app=web")).await.unwrap();
        assert_eq!(listed.items.len(), 2);
        let pod = pods
            .get(ready[0]["metadata"]["name"].as_str().unwrap())
            .await
            .unwrap();
        let name = pod.metadata.name.clone().unwrap();
        assert_eq!(pod.metadata.owner_references.as_ref().unwrap()[0].name, "web-rs");
        assert_eq!(
            api_error(pods.get("nope").await.unwrap_err()),
            (404, "NotFound".into())
        );

        // kube-rs' evict sends `delete_options`, which is ignored: blocked by the PDB.
        let ep = EvictParams {
            delete_options: Some(DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some("x".into()),
                    resource_version: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            api_error(pods.evict(&name, &ep).await.unwrap_err()),
            (429, "TooManyRequests".into())
        );
        assert_eq!(kube.requests().last().unwrap().preconditions, None);

        // A proper Eviction via create_subresource, with a wrong uid.
        let mut eviction = Eviction::default();
        eviction.metadata.name = Some(name.clone());
        eviction.metadata.namespace = Some("default".into());
        eviction.delete_options = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions {
            preconditions: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Preconditions {
                uid: Some("x".into()),
                resource_version: None,
            }),
            ..Default::default()
        });
        let err = pods
            .create_subresource::<Eviction, kube::core::Status>(
                "eviction",
                &name,
                &PostParams::default(),
                &eviction,
            )
            .await
            .unwrap_err();
        assert_eq!(api_error(err), (409, "Conflict".into()));

        // Delete with a stale uid, then the right one.
        let stale = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some("stale".into()),
                resource_version: None,
            }),
            ..Default::default()
        };
        assert_eq!(api_error(pods.delete(&name, &stale).await.unwrap_err()).0, 409);
        let right = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        let deleted = pods.delete(&name, &right).await.unwrap();
        assert!(deleted.left().is_some());

        // Patches and scale.
        let restart = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}}}});
        let dep = deployments
            .patch("web", &PatchParams::default(), &Patch::Strategic(&restart))
            .await
            .unwrap();
        assert_eq!(dep.metadata.generation, Some(2));
        let dep = deployments
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"labels": {"x": "y"}}})),
            )
            .await
            .unwrap();
        assert_eq!(dep.metadata.labels.unwrap()["x"], "y");
        let apply = deployments
            .patch("web", &PatchParams::apply("medic"), &Patch::Apply(&json!({})))
            .await
            .unwrap_err();
        assert_eq!(api_error(apply).0, 415);
        let scale = deployments.get_scale("web").await.unwrap();
        assert_eq!(scale.spec.unwrap().replicas, Some(2));
        let scale = deployments
            .patch_scale(
                "web",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"replicas": 3}})),
            )
            .await
            .unwrap();
        assert_eq!(scale.spec.unwrap().replicas, Some(3));
        let mut scale = deployments.get_scale("web").await.unwrap();
        scale.spec.as_mut().unwrap().replicas = Some(1);
        scale.metadata.resource_version = Some("1".into());
        assert_eq!(
            api_error(
                deployments
                    .replace_scale("web", &PostParams::default(), &scale)
                    .await
                    .unwrap_err()
            )
            .0,
            409
        );
        kube.wait_ready_pods("default", "web", 3, SECS).await;
        let dep = deployments.get("web").await.unwrap();
        assert_eq!(dep.status.unwrap().ready_replicas, Some(3));
        assert_eq!(
            deployments
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .len(),
            1
        );

        let hpas: Api<HorizontalPodAutoscaler> = Api::default_namespaced(client.clone());
        let hpa = hpas
            .patch(
                "web-hpa",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"minReplicas": 4}})),
            )
            .await
            .unwrap();
        assert_eq!(hpa.spec.unwrap().min_replicas, Some(4));
        assert_eq!(hpas.list(&ListParams::default()).await.unwrap().items.len(), 1);
        kube.wait_ready_pods("default", "web", 4, SECS).await;
        let pdbs: Api<PodDisruptionBudget> = Api::default_namespaced(client.clone());
        let pdb = &pdbs.list(&ListParams::default()).await.unwrap().items[0];
        assert_eq!(pdb.status.as_ref().unwrap().disruptions_allowed, 2);

        // Eviction that succeeds through kube-rs (no preconditions: the PDB now allows it).
        let victim = kube.wait_ready_pods("default", "web", 4, SECS).await[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let status = pods.evict(&victim, &EvictParams::default()).await.unwrap();
        assert_eq!(status.code, 201);
        kube.wait_ready_pods("default", "web", 4, SECS).await;
        let v = client.apiserver_version().await.unwrap();
        assert_eq!(v.major, "1");
    }
}
