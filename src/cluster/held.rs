//! What the view keeps of a binding's finalizers and status conditions for the reconcile loop:
//! enough to tell whether a recomputed condition differs from what the binding holds, to carry
//! a condition's transition time over, and to address each condition and our finalizer by
//! position in a JSON patch. Messages are not kept, only a digest of each whole condition.

use crate::crd::Condition;
use k8s_openapi::jiff::Timestamp;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroU32;

/// The words conditions are made of that the loop asks about; anything else is [`Word::OTHER`].
const WORDS: [&str; 9] = [
    "Synced",
    "ResourcesReady",
    "OutputsResolved",
    "Ready",
    "Finalizing",
    "True",
    "False",
    "Unknown",
    "RetainHold",
];

/// One of [`WORDS`], or none of them, in a byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Word(u8);

impl Word {
    pub const OTHER: Word = Word(u8::MAX);

    pub fn of(text: &str) -> Word {
        WORDS
            .iter()
            .position(|w| *w == text)
            .map_or(Word::OTHER, |i| Word(i as u8))
    }

    /// Whether this is `text`; never for a word outside [`WORDS`].
    pub fn is(self, text: &str) -> bool {
        self != Word::OTHER && WORDS[self.0 as usize] == text
    }
}

/// One condition as the view keeps it, in 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    pub type_: Word,
    pub status: Word,
    pub reason: Word,
    /// `lastTransitionTime` in whole seconds since 1970, when it reads as a time after that
    /// (and before 2106).
    pub since: Option<NonZeroU32>,
    /// Of the whole condition, with the time read as above: equal digests, same condition.
    pub digest: u64,
}

impl Held {
    pub fn of(c: &Condition) -> Held {
        let since = c.last_transition_time.as_deref().and_then(seconds);
        let mut hasher = DefaultHasher::new();
        (&c.type_, &c.status, &c.reason, &c.message).hash(&mut hasher);
        (c.observed_generation, since).hash(&mut hasher);
        Held {
            type_: Word::of(&c.type_),
            status: Word::of(&c.status),
            reason: Word::of(&c.reason),
            since,
            digest: hasher.finish(),
        }
    }
}

/// Seconds since the epoch of an RFC 3339 time.
fn seconds(time: &str) -> Option<NonZeroU32> {
    let seconds = time.parse::<Timestamp>().ok()?.as_second();
    NonZeroU32::new(u32::try_from(seconds).ok()?)
}

/// A time as Kubernetes writes `lastTransitionTime`.
pub fn time_of(seconds: NonZeroU32) -> Option<String> {
    let time = Timestamp::from_second(i64::from(seconds.get())).ok()?;
    Some(time.to_string())
}

/// Where our finalizer sits in a binding's list, and how long the list is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Finalizers {
    pub ours_at: Option<u32>,
    pub count: u32,
}

impl Finalizers {
    pub fn of(list: &[String], ours: &str) -> Finalizers {
        Finalizers {
            ours_at: list.iter().position(|f| f == ours).map(|i| i as u32),
            count: list.len() as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(status: &str, message: &str, at: &str) -> Condition {
        Condition {
            type_: "Synced".into(),
            status: status.into(),
            reason: "RetainHold".into(),
            message: message.into(),
            last_transition_time: Some(at.into()),
            observed_generation: Some(2),
        }
    }

    #[test]
    fn a_held_condition_tells_every_difference_but_the_spelling_of_its_time() {
        let held = Held::of(&condition("True", "ok", "2026-12-07T11:30:53Z"));
        assert!(held.type_.is("Synced") && held.status.is("True") && held.reason.is("RetainHold"));
        assert_eq!(
            time_of(held.since.unwrap()).as_deref(),
            Some("2026-12-07T11:30:53Z")
        );
        let same_time = condition("True", "ok", "2026-12-07T11:30:53.000Z");
        assert_eq!(Held::of(&same_time), held);
        for other in [
            condition("False", "ok", "2026-12-07T11:30:53Z"),
            condition("True", "not ok", "2026-12-07T11:30:53Z"),
            condition("True", "ok", "2026-12-07T11:30:54Z"),
        ] {
            assert_ne!(Held::of(&other).digest, held.digest, "{other:?}");
        }
        assert_eq!(std::mem::size_of::<Held>(), 16);
        let mut custom = condition("Maybe", "ok", "yesterday");
        custom.type_ = "Custom".into();
        let custom = Held::of(&custom);
        assert_eq!((custom.type_, custom.status), (Word::OTHER, Word::OTHER));
        assert!(!custom.type_.is("Custom") && custom.since.is_none());
    }

    #[test]
    fn finalizers_say_where_ours_is() {
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let f = Finalizers::of(&list(&["a", "ours", "b"]), "ours");
        assert_eq!((f.ours_at, f.count), (Some(1), 3));
        assert_eq!(Finalizers::of(&[], "ours"), Finalizers::default());
    }
}
