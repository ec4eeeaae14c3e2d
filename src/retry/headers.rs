//! What a delayed, retried or dead-lettered message carries in its headers. Values are ASCII
//! decimal or UTF-8 text, so tools can print them; names start with `wharf.`, a prefix the
//! re-publishing steps strip before adding their own (user headers pass through unchanged).
//!
//! | header | set when | value |
//! |---|---|---|
//! | `wharf.delay.target` | a delayed message waits | topic to deliver to when due |
//! | `wharf.delay.target-partition` | the sender named a partition | partition |
//! | `wharf.delay.due` | a delayed message waits | due time, ms since the epoch |
//! | `wharf.origin.topic`, `.partition`, `.offset` | first retry or dead-lettering | where the message was first consumed |
//! | `wharf.origin.timestamp` | first retry or dead-lettering | its timestamp there, ms since the epoch |
//! | `wharf.reconsume-count` | each retry or dead-lettering | failures so far |
//! | `wharf.first-failure` | first retry or dead-lettering | ms since the epoch |
//! | `wharf.reason` | a reason was given | text |

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::format::record::Header;

pub(crate) const PREFIX: &str = "wharf.";
pub(crate) const DELAY_PREFIX: &str = "wharf.delay.";
pub(crate) const DELAY_TARGET: &str = "wharf.delay.target";
pub(crate) const DELAY_TARGET_PARTITION: &str = "wharf.delay.target-partition";
pub(crate) const DELAY_DUE: &str = "wharf.delay.due";
const ORIGIN_TOPIC: &str = "wharf.origin.topic";
const ORIGIN_PARTITION: &str = "wharf.origin.partition";
const ORIGIN_OFFSET: &str = "wharf.origin.offset";
const ORIGIN_TIMESTAMP: &str = "wharf.origin.timestamp";
const RECONSUME_COUNT: &str = "wharf.reconsume-count";
const FIRST_FAILURE: &str = "wharf.first-failure";
const REASON: &str = "wharf.reason";

/// Where a record is, or was first consumed: `topic/partition/offset` as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The offset.
    pub offset: u64,
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

impl FromStr for MessageId {
    type Err = Error;

    /// Reads `topic/partition/offset` (the topic may not contain `/`).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid_config(format!("{s:?} is not topic/partition/offset"));
        let mut parts = s.rsplitn(3, '/');
        let offset = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let partition = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let topic = parts.next().filter(|t| !t.is_empty()).ok_or_else(bad)?;
        Ok(MessageId {
            topic: topic.to_owned(),
            partition,
            offset,
        })
    }
}

/// The retry history a message carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RetryInfo {
    pub origin: Option<MessageId>,
    pub origin_timestamp: Option<Timestamp>,
    pub reconsume_count: u32,
    pub first_failure: Option<Timestamp>,
    pub reason: Option<String>,
}

impl RetryInfo {
    /// Reads the retry headers among `headers` (missing or unreadable ones count as absent).
    pub(crate) fn from_headers<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut info = RetryInfo::default();
        let (mut topic, mut partition, mut offset) = (None, None, None);
        for (name, value) in headers {
            let text = std::str::from_utf8(value).ok();
            let number = || text.and_then(|t| t.parse::<u64>().ok());
            let small = || number().and_then(|n| u32::try_from(n).ok());
            let time = || {
                text.and_then(|t| t.parse().ok())
                    .map(Timestamp::from_millis)
            };
            match name {
                ORIGIN_TOPIC => topic = text.map(str::to_owned),
                ORIGIN_PARTITION => partition = small(),
                ORIGIN_OFFSET => offset = number(),
                ORIGIN_TIMESTAMP => info.origin_timestamp = time(),
                RECONSUME_COUNT => info.reconsume_count = small().unwrap_or(0),
                FIRST_FAILURE => info.first_failure = time(),
                REASON => info.reason = text.map(str::to_owned),
                _ => {}
            }
        }
        if let (Some(topic), Some(partition), Some(offset)) = (topic, partition, offset) {
            info.origin = Some(MessageId {
                topic,
                partition,
                offset,
            });
        }
        info
    }

    /// The headers recording this history.
    pub(crate) fn headers(&self) -> Vec<Header> {
        let mut out = Vec::with_capacity(6);
        if let Some(origin) = &self.origin {
            out.push(header(ORIGIN_TOPIC, origin.topic.clone()));
            out.push(header(ORIGIN_PARTITION, origin.partition.to_string()));
            out.push(header(ORIGIN_OFFSET, origin.offset.to_string()));
        }
        if let Some(timestamp) = self.origin_timestamp {
            out.push(header(ORIGIN_TIMESTAMP, timestamp.as_millis().to_string()));
        }
        out.push(header(RECONSUME_COUNT, self.reconsume_count.to_string()));
        if let Some(first) = self.first_failure {
            out.push(header(FIRST_FAILURE, first.as_millis().to_string()));
        }
        if let Some(reason) = &self.reason {
            out.push(header(REASON, reason.clone()));
        }
        out
    }
}

/// A header with a text value.
pub(crate) fn header(name: &str, value: String) -> Header {
    Header {
        key: name.to_owned(),
        value: Bytes::from(value),
    }
}

/// The headers of a message that are not wharf's own.
pub(crate) fn user_headers<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<Header> {
    headers
        .filter(|(name, _)| !name.starts_with(PREFIX))
        .map(|(name, value)| Header {
            key: name.to_owned(),
            value: Bytes::copy_from_slice(value),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_info_round_trips_through_headers() {
        let info = RetryInfo {
            origin: Some(MessageId {
                topic: "orders".into(),
                partition: 2,
                offset: 41,
            }),
            origin_timestamp: Some(Timestamp::from_millis(1_699_999_999_000)),
            reconsume_count: 3,
            first_failure: Some(Timestamp::from_millis(1_700_000_000_000)),
            reason: Some("timeout".into()),
        };
        let headers = info.headers();
        let back = RetryInfo::from_headers(headers.iter().map(|h| (h.key.as_str(), &h.value[..])));
        assert_eq!(back, info);
        assert!(user_headers(headers.iter().map(|h| (h.key.as_str(), &h.value[..]))).is_empty());
    }

    #[test]
    fn message_ids_print_and_parse() {
        let id: MessageId = "orders/2/41".parse().unwrap();
        assert_eq!(
            id,
            MessageId {
                topic: "orders".into(),
                partition: 2,
                offset: 41
            }
        );
        assert_eq!(id.to_string(), "orders/2/41");
        assert!("orders/2".parse::<MessageId>().is_err());
        assert!("/2/3".parse::<MessageId>().is_err());
    }
}
