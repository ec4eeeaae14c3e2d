//! The log layer: segmented, indexed, checksummed partition logs, their durability (group
//! sync, checkpoints) and their recovery. Files here know bytes, offsets and positions, not
//! producers or consumers.

mod active;
mod allocation;
mod append_plan;
mod checkpoint;
mod flush_queue;
mod index;
mod mmap;
mod notify;
mod open_segments;
mod partition;
mod prefault;
mod recovery;
mod segment;
mod space;

pub(crate) use allocation::{FIRST_LOG_ALLOCATION_BYTES, SegmentSizes};
pub(crate) use flush_queue::FlushQueue;
pub(crate) use notify::Signal;
pub(crate) use open_segments::OpenSegments;
#[cfg(test)]
pub(crate) use partition::MAX_UNFINALIZED_SEGMENTS;
pub(crate) use partition::{PartitionEnv, PartitionLog, Removed, RollHook};
pub(crate) use prefault::Prefaulter;
pub(crate) use segment::ReadLimits;
pub(crate) use space::DiskSpace;
