//! Object metadata: names, uids, timestamps and resource versions.

use std::{
    collections::hash_map::RandomState,
    hash::BuildHasher,
    sync::atomic::{AtomicU64, Ordering},
};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::Store;

pub(super) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn now() -> String {
    timestamp(Utc::now())
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn random_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// The alphabet Kubernetes spells generated names in.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Five characters from the alphabet Kubernetes uses for generated names.
pub(super) fn random_suffix() -> String {
    let mut bits = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char;
            bits /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// A pod template's `pod-template-hash`, as the Deployment controller derives it: the decimal
/// digits of the template's FNV-1a hash, spelled in the alphabet of generated names.
pub(super) fn template_hash(template: &Value) -> String {
    let hash = template.to_string().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash.to_string()
        .bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

/// Sets a new resource version on `obj`.
pub(super) fn touch(obj: &mut Value, revision: &mut u64) {
    *revision += 1;
    obj["metadata"]["resourceVersion"] = json!(revision.to_string());
}

/// Replaces `obj.status` (bumping the resource version) if it differs.
pub(super) fn set_status(obj: &mut Value, status: Value, revision: &mut u64) {
    if obj["status"] != status {
        obj["status"] = status;
        touch(obj, revision);
    }
}

impl Store {
    fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    /// Metadata for a new object: a fresh uid, resource version and creation time.
    pub(super) fn metadata(&mut self, namespace: &str, name: &str, labels: Value) -> Value {
        json!({
            "name": name, "namespace": namespace, "uid": random_uid(),
            "resourceVersion": self.next_revision(), "creationTimestamp": now(), "labels": labels,
            "annotations": {},
        })
    }
}
