//! The write side above the log: what an acknowledgement means ([`ack`]) and the background
//! thread that syncs data sent without `Fsync` and completes asynchronous sends
//! ([`flusher`]).

pub(crate) mod ack;
pub(crate) mod flusher;
