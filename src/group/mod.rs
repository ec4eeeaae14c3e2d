//! Consumer groups: how partitions are spread over a group's members ([`assignment`]), who
//! holds which partition ([`membership`]), and where a group's committed offsets are kept
//! ([`offsets`]).

pub(crate) mod assignment;
#[expect(clippy::module_inception, reason = "the type the module is about")]
pub(crate) mod group;
pub(crate) mod membership;
pub(crate) mod offsets;
