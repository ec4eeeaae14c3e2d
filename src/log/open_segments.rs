//! [`OpenSegments`]: a cap on the sealed segments a Wharf keeps open.
//!
//! A sealed segment is opened (its log mapped, its index read) on first read and stays open
//! for the next. With thousands of sealed segments that would be thousands of mappings, so
//! every open is recorded here, and past the cap the segment opened longest ago is closed
//! again: its list entry forgets the view, and the mapping goes when the last reader still
//! holding the view lets go. A closed segment is opened again by the next read of it. The
//! active segments are not counted: there is one per partition.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::segment::Segment;

/// The sealed segments open across a Wharf, oldest first.
#[derive(Debug)]
pub(crate) struct OpenSegments {
    cap: usize,
    open: Mutex<VecDeque<Weak<Segment>>>,
}

impl OpenSegments {
    pub(crate) fn new(cap: usize) -> Self {
        OpenSegments {
            cap: cap.max(1),
            open: Mutex::new(VecDeque::new()),
        }
    }

    /// Records that `segment` was just opened; closes the oldest ones past the cap.
    pub(crate) fn opened(&self, segment: &Arc<Segment>) {
        let evicted: Vec<Arc<Segment>> = {
            let mut open = self.open.lock();
            open.push_back(Arc::downgrade(segment));
            let mut evicted = Vec::new();
            while open.len() > self.cap {
                if let Some(oldest) = open.pop_front().and_then(|w| w.upgrade()) {
                    evicted.push(oldest);
                }
            }
            evicted
        };
        // Outside the lock: closing drops mappings.
        for segment in evicted {
            segment.unload();
        }
    }
}
