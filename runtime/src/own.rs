//! Own-write tracking, for every writer that watches the objects it writes.
//!
//! A writer that plans from a watched index would undo its own work if it believed a
//! lagging watch: after a write, the watch may still deliver older versions of the object,
//! then the echo of the write itself. The writer puts its write's response into its index
//! at once and records the versions involved here ([`Versions::wrote`]); a watch event is
//! then told apart ([`Versions::classify`]): the echo of our latest write (already held),
//! a version one of our writes replaced (older than what we hold: ignored), or someone
//! else's change (taken). resourceVersions are compared for equality only, never ordered,
//! as the API conventions require.

use std::collections::HashSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

use crate::watch::{strip, ObjKey};

/// What a watch event's resourceVersion is to the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// One of our writes that a later write of ours replaced: older than what we hold.
    Superseded,
    /// Our latest write, whose response we already hold.
    Ours,
    /// Someone else's write (or one we never recorded).
    Other,
}

/// resourceVersions of our own writes that the watch has not delivered yet, and those of
/// them a later write of ours already replaced. A watch event carrying a superseded
/// version is older than what we hold and is ignored. Both sets only hold versions in
/// flight (they empty as the watch catches up, and on every re-list).
#[derive(Debug, Default)]
pub struct Versions {
    ours: HashSet<String>,
    superseded: HashSet<String>,
}

impl Versions {
    /// A watch event with `rv` arrived: is it older than what we hold?
    pub fn stale(&mut self, rv: Option<&str>) -> bool {
        self.classify(rv) == Seen::Superseded
    }

    /// A watch event with `rv` arrived: what is it to us?
    pub fn classify(&mut self, rv: Option<&str>) -> Seen {
        let Some(rv) = rv else { return Seen::Other };
        if self.superseded.remove(rv) {
            self.ours.remove(rv);
            Seen::Superseded
        } else if self.ours.remove(rv) {
            Seen::Ours
        } else {
            Seen::Other
        }
    }

    /// We replaced the version `replaced` with `new`.
    pub fn wrote(&mut self, replaced: Option<&str>, new: Option<&str>) {
        if let Some(old) = replaced {
            if self.ours.remove(old) {
                self.superseded.insert(old.to_string());
            }
        }
        if let Some(new) = new {
            self.ours.insert(new.to_string());
        }
    }

    pub fn clear(&mut self) {
        self.ours.clear();
        self.superseded.clear();
    }

    pub fn in_flight(&self) -> usize {
        self.ours.len() + self.superseded.len()
    }
}

/// The bookkeeping of a watch on one object this speaker writes: which events are the echo
/// or a lagging copy of our own writes.
#[derive(Debug, Default)]
pub struct OwnObjectWatch {
    versions: Versions,
}

impl OwnObjectWatch {
    /// A version of the object arrived: `Some` when it is someone else's (managedFields
    /// stripped), `None` for our own write's echo or an older version.
    pub fn apply<K: Resource>(&mut self, mut o: K) -> Option<K> {
        match self.versions.classify(o.meta().resource_version.as_deref()) {
            Seen::Superseded | Seen::Ours => None,
            Seen::Other => {
                strip(&mut o);
                Some(o)
            }
        }
    }

    /// A re-list begins: versions still in flight will never be delivered, and what the
    /// list returns is compared as someone else's.
    pub fn listing(&mut self) {
        self.versions.clear();
    }

    /// A re-list ended: whether `held` (the object as observed) is gone, that is, absent
    /// from the list.
    pub fn gone(held: Option<&ObjectMeta>, listed: &HashSet<ObjKey>) -> bool {
        held.is_some_and(|m| {
            let key = (
                m.namespace.clone().unwrap_or_default(),
                m.name.clone().unwrap_or_default(),
            );
            !listed.contains(&key)
        })
    }

    /// We replaced the version `replaced` with `new`.
    pub fn wrote(&mut self, replaced: Option<&str>, new: Option<&str>) {
        self.versions.wrote(replaced, new);
    }
}

/// One object a writer writes and watches, as it is now: the watch's versions, and our own
/// writes' responses as soon as we have them.
#[derive(Debug)]
pub struct OwnObject<K> {
    obj: Option<K>,
    watch: OwnObjectWatch,
    listed: bool,
}

impl<K> Default for OwnObject<K> {
    fn default() -> Self {
        OwnObject {
            obj: None,
            watch: OwnObjectWatch::default(),
            listed: false,
        }
    }
}

impl<K: Resource> OwnObject<K> {
    /// The object, `None` while it does not exist (or is not known yet: see
    /// [`OwnObject::listed`]).
    pub fn get(&self) -> Option<&K> {
        self.obj.as_ref()
    }

    /// The watch has listed once: [`OwnObject::get`] tells whether the object exists.
    pub fn listed(&self) -> bool {
        self.listed
    }

    /// Our write succeeded: `o` is the server's response.
    pub fn wrote(&mut self, mut o: K) {
        let replaced = (self.obj.as_ref()).and_then(|h| h.meta().resource_version.clone());
        self.watch
            .wrote(replaced.as_deref(), o.meta().resource_version.as_deref());
        strip(&mut o);
        self.obj = Some(o);
    }

    /// A fresh read (a write found the object missing or already there).
    pub fn read(&mut self, current: Option<K>) {
        self.obj = current.map(|mut o| {
            strip(&mut o);
            o
        });
    }

    /// A watch event: whether it changed what we hold (not our own write's echo, nor an
    /// older version).
    pub fn observe(&mut self, o: K) -> bool {
        match self.watch.apply(o) {
            Some(o) => {
                self.obj = Some(o);
                true
            }
            None => false,
        }
    }

    /// A deletion event: whether it removed what we hold. A lagging delete of an object we
    /// already replaced by a new one (another uid) says nothing about the current one.
    pub fn forget(&mut self, deleted: &K) -> bool {
        let current = (self.obj.as_ref()).and_then(|c| c.meta().uid.clone());
        if current.is_none() || current.as_deref() == deleted.meta().uid.as_deref() {
            self.obj = None;
            return true;
        }
        false
    }

    /// A re-list ended: whether the object turned out gone.
    pub fn relisted(&mut self, listed: &HashSet<ObjKey>) -> bool {
        if OwnObjectWatch::gone(self.obj.as_ref().map(|o| o.meta()), listed) {
            self.obj = None;
            return true;
        }
        false
    }
}

impl<K: Resource> crate::watch::Index<K> for OwnObject<K> {
    fn apply(&mut self, o: K) {
        self.observe(o);
    }
    fn delete(&mut self, o: K) {
        self.forget(&o);
    }
    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        self.relisted(listed);
    }
    fn listing(&mut self) {
        self.watch.listing();
    }
}

impl<K> crate::watch::WatchedState for OwnObject<K> {
    fn watch_listed(&mut self, _: &'static str) {
        self.listed = true;
    }
}
