//! [`Delivery`]: a record handed to a consumer, to be acknowledged.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use super::cursor::Cursor;
use crate::error::Result;
use crate::format::message::Message;

/// A record delivered to a consumer. Read it through [`Message`] (it dereferences to one);
/// settle it with [`Delivery::ack`] or with a commit that covers it.
///
/// Dropped undecided, it is **not** acknowledged: it stays pending and is delivered again
/// after the consumer's `ack_wait`, or after a restart if no commit covered it.
#[must_use = "an undecided delivery is delivered again after ack_wait"]
pub struct Delivery {
    message: Message,
    attempt: u32,
    cursor: Arc<Cursor>,
    epoch: u64,
}

impl Delivery {
    pub(crate) fn new(message: Message, attempt: u32, cursor: Arc<Cursor>, epoch: u64) -> Self {
        Delivery {
            message,
            attempt,
            cursor,
            epoch,
        }
    }

    /// The record.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Which delivery of this record this is to this group: 1 the first time, 2 after one
    /// redelivery, … (RocketMQ's reconsume times + 1, NATS's `delivered`). Counted in memory:
    /// a restart starts again at 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Acknowledges the record: it is done and is never delivered to this group again. Acks
    /// may come in any order and from any thread; the group's committed offset (with
    /// `CommitPolicy::Acked`, or `commit_acked`) stops at the lowest offset not yet acked.
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Revoked`] if the partition was taken from this consumer (rebalance,
    /// seek or close) since the delivery: the record will be delivered to its new owner.
    pub fn ack(self) -> Result<()> {
        self.cursor.ack(self.message.offset(), self.epoch)
    }

    /// The record, without settling it.
    pub fn into_message(self) -> Message {
        self.message
    }
}

impl Deref for Delivery {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.message
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("topic", &self.message.topic())
            .field("partition", &self.message.partition())
            .field("offset", &self.message.offset())
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}
