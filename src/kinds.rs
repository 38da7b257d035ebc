//! Every kind bindguard knows, in one table. A kind's identity (group, version, kind, plural,
//! scope) is read from its Rust type, the one its CRD is generated from; the table adds which
//! webhook judges which of its operations. Dispatch, file loading, the live view's announcements,
//! the loop, metrics and the webhook configurations read kinds from here.

use crate::crd::*;
use std::any::TypeId;
use std::sync::LazyLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Environment,
    Project,
    Resource,
    ResourceType,
    ClusterResourceType,
    ResourceRelease,
    ResourceReleaseBinding,
    Promise,
    PromiseRevision,
    ResourceBinding,
}

/// Which operations of a kind each webhook is called for.
#[derive(Debug, Default)]
pub struct Judged {
    /// The fail-closed `/validate` webhook: rules that may refuse.
    pub refuse: &'static [&'static str],
    /// The fail-open `/warn` webhook: rules that only warn.
    pub warn: &'static [&'static str],
    /// The `/mutate` webhook.
    pub mutate: &'static [&'static str],
    /// Writes to the status subresource are refused like writes to the object.
    pub status: bool,
}

#[derive(Debug)]
pub struct Known {
    pub kind: Kind,
    pub group: String,
    pub version: String,
    pub name: String,
    pub plural: String,
    pub namespaced: bool,
    pub judged: Judged,
}

const CREATE_UPDATE: &[&str] = &["CREATE", "UPDATE"];

/// The table, in the order the webhook configurations list kinds.
static KNOWN: LazyLock<Vec<Known>> = LazyLock::new(|| {
    let watched = Judged::default;
    vec![
        known::<Environment>(Kind::Environment, watched()),
        known::<Project>(Kind::Project, watched()),
        known::<Resource>(Kind::Resource, watched()),
        known::<ResourceType>(Kind::ResourceType, watched()),
        known::<ClusterResourceType>(Kind::ClusterResourceType, watched()),
        known::<ResourceRelease>(Kind::ResourceRelease, watched()),
        known::<ResourceReleaseBinding>(
            Kind::ResourceReleaseBinding,
            Judged {
                refuse: CREATE_UPDATE,
                warn: &["DELETE"],
                mutate: CREATE_UPDATE,
                status: true,
            },
        ),
        known::<Promise>(
            Kind::Promise,
            Judged {
                warn: CREATE_UPDATE,
                ..watched()
            },
        ),
        known::<PromiseRevision>(
            Kind::PromiseRevision,
            Judged {
                refuse: &["CREATE", "UPDATE", "DELETE"],
                mutate: CREATE_UPDATE,
                ..watched()
            },
        ),
        known::<ResourceBinding>(
            Kind::ResourceBinding,
            Judged {
                refuse: CREATE_UPDATE,
                mutate: CREATE_UPDATE,
                ..watched()
            },
        ),
    ]
});

fn known<K>(kind: Kind, judged: Judged) -> Known
where
    K: kube::Resource<DynamicType = ()>,
    K::Scope: 'static,
{
    Known {
        kind,
        group: K::group(&()).into_owned(),
        version: K::version(&()).into_owned(),
        name: K::kind(&()).into_owned(),
        plural: K::plural(&()).into_owned(),
        namespaced: TypeId::of::<K::Scope>() == TypeId::of::<kube::core::NamespaceResourceScope>(),
        judged,
    }
}

/// Every kind bindguard knows.
pub fn all() -> &'static [Known] {
    &KNOWN
}

impl Kind {
    /// The kind `kind` of API group `group`, if bindguard knows it.
    pub fn of(group: &str, kind: &str) -> Option<Kind> {
        all()
            .iter()
            .find(|k| k.group == group && k.name == kind)
            .map(|k| k.kind)
    }

    pub fn known(self) -> &'static Known {
        // The table holds every variant: a test below walks them all.
        &all()[all()
            .iter()
            .position(|k| k.kind == self)
            .unwrap_or_default()]
    }

    pub fn name(self) -> &'static str {
        &self.known().name
    }

    /// Whether the loop acts on this kind's deletions (a deleted Resource takes its bindings):
    /// the live view then also finds the deletions a relist reveals, and keeps the recent ones
    /// for a leadership term that starts later.
    pub fn deletion_cascades(self) -> bool {
        self == Kind::Resource
    }

    /// Which loops read this kind's changes.
    pub fn family(self) -> Family {
        match self {
            Kind::Environment
            | Kind::Project
            | Kind::Resource
            | Kind::ResourceType
            | Kind::ClusterResourceType
            | Kind::ResourceRelease
            | Kind::ResourceReleaseBinding => Family::OpenChoreo,
            Kind::Promise | Kind::PromiseRevision | Kind::ResourceBinding => Family::Kratix,
        }
    }
}

/// The kinds one set of loops reads: the live view announces each family's changes on a channel
/// of its own, so a burst in one (100,000 bindings created) never makes the other's loops miss
/// changes and look at every object again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    OpenChoreo,
    Kratix,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_each_kind_once_as_its_type_says() {
        let kinds: Vec<Kind> = all().iter().map(|k| k.kind).collect();
        for (i, kind) in kinds.iter().enumerate() {
            assert!(!kinds[..i].contains(kind), "{kind:?} twice");
            assert_eq!(kind.known().kind, *kind);
            assert_eq!(
                format!("{kind:?}"),
                kind.name(),
                "variant named as its kind"
            );
        }
        assert_eq!(kinds.len(), 10);
        let binding = Kind::ResourceReleaseBinding.known();
        assert_eq!(
            (binding.group.as_str(), binding.plural.as_str()),
            ("openchoreo.dev", "resourcereleasebindings")
        );
        assert!(binding.namespaced && !Kind::Promise.known().namespaced);
        assert_eq!(
            Kind::of("platform.kratix.io", "Promise"),
            Some(Kind::Promise)
        );
        assert_eq!(Kind::of("openchoreo.dev", "Promise"), None);
    }
}
