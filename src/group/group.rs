//! A consumer group as a Wharf holds it: its members in this process and its committed
//! offsets on disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::membership::Membership;
use super::offsets::OffsetStore;

/// One consumer group.
#[derive(Debug)]
pub(crate) struct Group {
    pub name: Arc<str>,
    pub membership: Membership,
    pub offsets: OffsetStore,
    /// Set when the offsets file was damaged at open and an older state was used.
    pub damage: Option<String>,
    /// Live consumers of the group, with or without membership (assigned ones too).
    pub consumers: AtomicUsize,
}

impl Group {
    /// Whether any consumer of the group is alive (its offsets may change any moment).
    pub(crate) fn is_in_use(&self) -> bool {
        self.consumers.load(Ordering::Acquire) > 0 || self.membership.is_active()
    }
}
