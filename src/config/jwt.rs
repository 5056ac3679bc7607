//! Settings of signed identity (`server.auth.jwt`): the issuers whose JSON Web Tokens medic
//! accepts, where their keys are, and which role a token's groups or subject give. One issuer
//! is written as a map, several as a list of maps.

use std::{collections::BTreeMap, fmt, marker::PhantomData, path::PathBuf};

use serde::{
    de::{value::MapAccessDeserializer, MapAccess, SeqAccess, Visitor},
    Deserialize, Deserializer,
};

use crate::domain::{HumanDuration, Role};

/// One issuer of tokens, and what its tokens are worth in medic.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// `iss` must equal this; required (an Option so that check-config names it when missing).
    pub issuer: Option<String>,
    /// `aud` must contain one of these: a token minted for another service is not for medic.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The issuer's JSON Web Key Set over HTTPS (e.g. Kubernetes' `/openid/v1/jwks`).
    pub jwks_url: Option<String>,
    /// The key set in a file instead, read again when it changes.
    pub jwks_file: Option<PathBuf>,
    /// The claim naming the person, recorded as who acted.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim listing the person's groups (a list of strings, or one string).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Group to role; a token gets the highest role of its groups and its subject.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    /// `sub` to role, for tools such as a Kubernetes ServiceAccount
    /// (`system:serviceaccount:<namespace>:<name>`).
    #[serde(default)]
    pub subjects: BTreeMap<String, Role>,
    /// The role of a token none of `roles` or `subjects` names; none by default (403).
    pub default_role: Option<Role>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway: HumanDuration,
}

fn default_user_claim() -> String {
    "sub".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_leeway() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(60))
}

/// Either one item written as itself, or a list of them; both read as a list.
#[derive(Debug)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany::Many(Vec::new())
    }
}

impl<T> OneOrMany<T> {
    /// Each item with its key path under `base`: `base` for a single map, `base[i]` in a list.
    pub fn with_paths<'a>(&'a self, base: &'a str) -> Vec<(String, &'a T)> {
        match self {
            OneOrMany::One(item) => vec![(base.to_owned(), item)],
            OneOrMany::Many(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("{base}[{i}]"), item))
                .collect(),
        }
    }

    /// Whether there is no item at all.
    pub fn is_empty(&self) -> bool {
        matches!(self, OneOrMany::Many(items) if items.is_empty())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A visitor rather than `#[serde(untagged)]`: a mistake inside the map keeps its own
        // message and key path instead of "did not match any variant".
        struct OneOrManyVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map, or a list of maps")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(OneOrMany::One)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }

        deserializer.deserialize_any(OneOrManyVisitor(PhantomData))
    }
}
