//! The crash-consistency tier on the simulated disk ([`crate::vfs::sim`]), RELIABILITY.md
//! sections 3–5.
//!
//! **Regressions** ([`regressions`]): each defect the tier found, as the smallest case that
//! reproduced it.

mod regressions;
