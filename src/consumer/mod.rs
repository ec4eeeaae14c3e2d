//! Consuming: [`Consumer`] (poll, commit, seek, pause, lag), [`Delivery`] (a record to
//! acknowledge, retry or dead-letter), [`PushConsumer`] (a listener run by worker threads),
//! and how they are configured ([`options`]). See [`consumer`] for the poll
//! loop and [`cursor`] for how acknowledgements become committed offsets.

mod builder;
#[expect(clippy::module_inception, reason = "the type the module is about")]
mod consumer;
mod cursor;
mod delivery;
mod options;
mod push;

pub use builder::ConsumerBuilder;
pub(crate) use consumer::lag_of;
pub use consumer::{Consumer, PartitionLag};
pub use delivery::Delivery;
pub use options::{
    CommitPolicy, DEFAULT_ACK_WAIT, DEFAULT_MAX_IN_FLIGHT, DEFAULT_REBALANCE_TIMEOUT, OutOfRange,
    RebalanceHook, SeekTo, StartFrom,
};
pub use push::{
    ConsumeContext, ConsumeStatus, DEFAULT_PUSH_THREADS, PUSH_COMMIT_INTERVAL, PushConsumer,
    PushConsumerBuilder,
};
