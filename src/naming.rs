//! Names the reconcile loop and the policy agree on.

use crate::crd::VERSION_NOT_SET;

/// Longest object name Kubernetes accepts (a DNS subdomain).
pub const MAX_NAME: usize = 253;

/// The name the seed gives the PromiseRevision of `promise` at `version`: `<promise>-<version>`
/// when that is a valid object name, otherwise `<promise>-<first 5 hex of md5(version)>` as
/// Kratix does. An empty version counts as `not-set`.
pub fn seed_revision_name(promise: &str, version: &str) -> String {
    let version = version_or_not_set(version);
    let plain = format!("{promise}-{version}");
    if is_dns_subdomain(&plain) {
        plain
    } else {
        fitted(promise, &short_hash(version))
    }
}

/// `<front>-<suffix>`, the front cut (and stripped of trailing characters other than letters
/// and digits) so that the name fits in [`MAX_NAME`].
fn fitted(front: &str, suffix: &str) -> String {
    let keep = MAX_NAME.saturating_sub(suffix.len() + 1);
    let front = match front.chars().count() > keep {
        true => trimmed(first_chars(front, keep)),
        false => front,
    };
    format!("{front}-{suffix}")
}

/// The first `n` characters of `text`.
fn first_chars(text: &str, n: usize) -> &str {
    text.char_indices()
        .nth(n)
        .map_or(text, |(at, _)| &text[..at])
}

/// `text` without its trailing characters other than letters and digits.
fn trimmed(text: &str) -> &str {
    text.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
}

fn version_or_not_set(version: &str) -> &str {
    if version.is_empty() {
        VERSION_NOT_SET
    } else {
        version
    }
}

/// A PromiseRevision as naming sees it: its name and whose version it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionId {
    pub name: String,
    pub promise: String,
    pub version: String,
}

/// The PromiseRevision name for `promise` at `version`, given the revisions that exist: the name
/// of the revision that already records that version, else the seed's name when no other
/// revision holds it, else `<promise>-<10 hex of md5("<promise>/<version>")>` (two Promises can
/// claim one seed name: `redis`@`ha-v1` and `redis-ha`@`v1`). The webhook, the loop and the
/// docs all use this one function.
pub fn revision_name(promise: &str, version: &str, existing: &[RevisionId]) -> String {
    let version = version_or_not_set(version);
    let mine = |r: &&RevisionId| r.promise == promise && version_or_not_set(&r.version) == version;
    if let Some(found) = existing.iter().find(mine) {
        return found.name.clone();
    }
    let seed = seed_revision_name(promise, version);
    if !existing.iter().any(|r| r.name == seed) {
        return seed;
    }
    fitted(promise, &md5_hex(&format!("{promise}/{version}"), 10))
}

/// Promise names that could own a revision called `name`: every prefix of it that ends before
/// a `-`. The webhook looks these up to know who holds a seed name.
pub fn possible_owners(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('-').map(move |(i, _)| &name[..i])
}

/// The first five hex digits of the MD5 of `text`.
pub fn short_hash(text: &str) -> String {
    md5_hex(text, 5)
}

/// The first `digits` hex digits of the MD5 of `text` (at most 32).
fn md5_hex(text: &str, digits: usize) -> String {
    let mut digest = format!("{:x}", md5::compute(text.as_bytes()));
    digest.truncate(digits);
    digest
}

/// Kratix's deterministic object name for `text`: cut to its first 56 characters when longer
/// than 57, stripped of trailing characters other than letters and digits, then `-` and the
/// first 5 hex digits of the MD5 of what is left. At most 62 characters.
pub fn kratix_name(text: &str) -> String {
    let front = kratix_front(text);
    format!("{front}-{}", short_hash(front))
}

/// The part of [`kratix_name`] before its hash.
fn kratix_front(text: &str) -> &str {
    const KEPT: usize = 63 - 1 - 5;
    match text.chars().count() > KEPT {
        true => trimmed(first_chars(text, KEPT - 1)),
        false => trimmed(text),
    }
}

/// The name the loop gives the binding of `request` of `promise`, as Kratix names it:
/// [`kratix_name`] of `<request>-<promise>` (the seed's `example-redis-e7f90`).
pub fn binding_name(request: &str, promise: &str) -> String {
    kratix_name(&format!("{request}-{promise}"))
}

/// The name a binding gets when [`binding_name`] is held by another request's binding (two
/// request names alike in their first 56 characters): the same front, then 10 hex digits of
/// the MD5 of `<namespace>/<request>/<promise>`.
pub fn distinct_binding_name(request: &str, promise: &str, namespace: &str) -> String {
    let front = kratix_front(&format!("{request}-{promise}")).to_owned();
    let digest = md5_hex(&format!("{namespace}/{request}/{promise}"), 10);
    format!("{front}-{digest}")
}

/// Whether `name` is a valid DNS subdomain (RFC 1123): lower-case alphanumerics, `-` and `.`,
/// starting and ending alphanumeric, at most 253 characters.
pub fn is_dns_subdomain(name: &str) -> bool {
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.chars().all(valid_char)
        && alnum(name.chars().next())
        && alnum(name.chars().last())
        && name.split('.').all(|label| {
            !label.is_empty() && alnum(label.chars().next()) && alnum(label.chars().last())
        })
}

/// Longest label value Kubernetes accepts.
pub const MAX_LABEL_VALUE: usize = 63;

/// `name` as a label value: itself when it is one, else the characters a label value may hold
/// (at most the first 57 of them) and the first 5 hex of its MD5, so objects with long or odd
/// names can still be labelled and selected. Stable: the same name always gives the same value.
pub fn label_value(name: &str) -> String {
    if is_label_value(name) {
        return name.to_string();
    }
    let hash = short_hash(name);
    let keep = MAX_LABEL_VALUE - hash.len() - 1;
    let allowed: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(keep)
        .collect();
    let prefix = allowed.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if prefix.is_empty() {
        hash
    } else {
        format!("{prefix}-{hash}")
    }
}

/// Whether `value` is a valid label value: empty, or at most 63 of `[A-Za-z0-9_.-]` starting
/// and ending alphanumeric.
pub fn is_label_value(value: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    value.is_empty()
        || (value.len() <= MAX_LABEL_VALUE
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && alnum(value.chars().next())
            && alnum(value.chars().last()))
}

/// The Promise version carried by its labels: `kratix.io/promise-version`, else `not-set`.
pub fn promise_version(labels: Option<&std::collections::BTreeMap<String, String>>) -> String {
    labels
        .and_then(|l| l.get(crate::crd::LABEL_PROMISE_VERSION))
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| VERSION_NOT_SET.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_versions_follow_the_seed() {
        assert_eq!(seed_revision_name("redis", "v0.1.0"), "redis-v0.1.0");
        assert_eq!(seed_revision_name("redis", ""), "redis-not-set");
        assert_eq!(seed_revision_name("redis", "not-set"), "redis-not-set");
        assert_eq!(revision_name("redis", "v0.1.0", &[]), "redis-v0.1.0");
    }

    fn id(name: &str, promise: &str, version: &str) -> RevisionId {
        RevisionId {
            name: name.into(),
            promise: promise.into(),
            version: version.into(),
        }
    }

    #[test]
    fn two_promises_claiming_one_seed_name_both_get_a_revision() {
        let taken = [id("redis-ha-v1", "redis", "ha-v1")];
        let second = revision_name("redis-ha", "v1", &taken);
        assert_ne!(second, "redis-ha-v1");
        assert!(
            second.starts_with("redis-ha-") && is_dns_subdomain(&second),
            "{second}"
        );
        assert_eq!(revision_name("redis", "ha-v1", &taken), "redis-ha-v1");
        let both = [taken[0].clone(), id(&second, "redis-ha", "v1")];
        assert_eq!(revision_name("redis-ha", "v1", &both), second, "stable");
        let owner_gone = [id(&second, "redis-ha", "v1")];
        assert_eq!(
            revision_name("redis-ha", "v1", &owner_gone),
            second,
            "the existing revision keeps its name when the seed name frees up"
        );
        assert_eq!(
            revision_name("redis", "", &[id("redis-not-set", "redis", "")]),
            "redis-not-set"
        );
    }

    #[test]
    fn owners_are_the_dash_prefixes() {
        let owners: Vec<&str> = possible_owners("redis-ha-v1").collect();
        assert_eq!(owners, ["redis", "redis-ha"]);
    }

    #[test]
    fn versions_that_are_not_names_are_hashed() {
        for version in ["V1.0.0", "1.0.0+build.5", "v1_0", "v1.", "v1..2", "v 1"] {
            let name = seed_revision_name("redis", version);
            assert_eq!(name, format!("redis-{}", short_hash(version)), "{version}");
            assert!(is_dns_subdomain(&name), "{name}");
        }
        assert_ne!(
            seed_revision_name("redis", "V1"),
            seed_revision_name("redis", "V2")
        );
    }

    #[test]
    fn the_253_character_limit_is_respected() {
        let fits = "a".repeat(MAX_NAME - "redis-".len());
        assert_eq!(seed_revision_name("redis", &fits).len(), MAX_NAME);
        let too_long = "a".repeat(MAX_NAME);
        assert_eq!(
            seed_revision_name("redis", &too_long),
            format!("redis-{}", short_hash(&too_long))
        );
        let long_promise = "p".repeat(250);
        let name = seed_revision_name(&long_promise, "V1");
        assert_eq!(name, format!("{}-{}", "p".repeat(247), short_hash("V1")));
        assert!(is_dns_subdomain(&name), "{name}");
        let taken = [RevisionId {
            name,
            promise: "other".into(),
            version: "V1".into(),
        }];
        let distinct = revision_name(&long_promise, "V1", &taken);
        assert!(
            is_dns_subdomain(&distinct) && distinct != taken[0].name,
            "{distinct}"
        );
    }

    #[test]
    fn binding_names_are_kratix_names() {
        assert_eq!(binding_name("example", "redis"), "example-redis-e7f90");
        let long = binding_name(&"r".repeat(250), "redis");
        assert_eq!(
            long,
            format!("{0}-{1}", "r".repeat(56), short_hash(&"r".repeat(56)))
        );
        assert!(is_dns_subdomain(&long), "{long}");
        let fits = "a".repeat(51);
        assert_eq!(
            binding_name(&fits, "redis"),
            format!("{fits}-redis-{}", short_hash(&format!("{fits}-redis")))
        );
        let cut_at_a_dash = format!("{}-{}", "a".repeat(55), "b".repeat(10));
        assert!(binding_name(&cut_at_a_dash, "redis").starts_with(&format!("{}-", "a".repeat(55))));
        let other = distinct_binding_name(&"r".repeat(250), "redis", "team");
        assert_ne!(other, long);
        assert!(
            other.starts_with(&"r".repeat(56)) && is_dns_subdomain(&other),
            "{other}"
        );
    }

    #[test]
    fn long_names_fit_in_a_label_value() {
        assert_eq!(label_value("example"), "example");
        let fits = "a".repeat(MAX_LABEL_VALUE);
        assert_eq!(label_value(&fits), fits);
        let long = format!("{}.{}", "a".repeat(56), "b".repeat(100));
        let value = label_value(&long);
        assert_eq!(value, format!("{}-{}", "a".repeat(56), short_hash(&long)));
        assert!(value.len() <= MAX_LABEL_VALUE);
        assert_ne!(label_value(&"c".repeat(70)), label_value(&"c".repeat(71)));
    }

    #[test]
    fn every_label_value_is_valid() {
        for name in [
            " ",
            "Dev Env",
            "-x-",
            "ü",
            "a/b",
            &"x".repeat(300),
            "",
            "ok",
        ] {
            let value = label_value(name);
            assert!(is_label_value(&value), "{name:?} -> {value:?}");
            assert_eq!(value, label_value(name), "stable");
        }
        assert_eq!(
            label_value("Dev Env"),
            format!("DevEnv-{}", short_hash("Dev Env"))
        );
        assert_eq!(label_value(" "), short_hash(" "));
    }

    #[test]
    fn the_not_set_version_is_used_when_unlabelled() {
        let mut labels = std::collections::BTreeMap::new();
        assert_eq!(promise_version(None), "not-set");
        assert_eq!(promise_version(Some(&labels)), "not-set");
        labels.insert(crate::crd::LABEL_PROMISE_VERSION.to_string(), String::new());
        assert_eq!(promise_version(Some(&labels)), "not-set");
        labels.insert(crate::crd::LABEL_PROMISE_VERSION.to_string(), "v1".into());
        assert_eq!(promise_version(Some(&labels)), "v1");
    }

    #[test]
    fn md5_prefix_matches_kratix() {
        // md5("v0.1.0") = 77ba1816...; Kratix takes the first five hex digits.
        assert_eq!(short_hash("v0.1.0"), "77ba1");
    }
}
