//! A consumer group as a Wharf holds it: its members in this process and its committed
//! offsets on disk.

use std::sync::Arc;

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
}
