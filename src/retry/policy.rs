//! Delay levels and retry policy: RocketMQ's model.
//!
//! A delay is one of a fixed table of levels (RocketMQ's default: `1s 5s 10s 30s 1m 2m 3m 4m
//! 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h`), 1-based. Each level is one FIFO log (all its messages
//! wait the same time, so the log is in due order), which is why a delay given as a duration is
//! **rounded up to the next level**, never scheduled exactly: a message is never delivered
//! early, and at most one level's gap late.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{ErrorKind, Result};

/// RocketMQ's default delay levels.
pub const DEFAULT_DELAY_LEVELS: &str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";
/// Default number of times a group retries a message before it goes to the dead-letter queue
/// (RocketMQ's `maxReconsumeTimes`).
pub const DEFAULT_MAX_RECONSUME_TIMES: u32 = 16;
/// Most levels a table may have (each is one partition of the delay topic).
pub const MAX_DELAY_LEVELS: usize = 64;
/// Longest delay a level may have: 30 days.
pub const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 3_600);
/// The default retry's first level: RocketMQ retries at level 3 + the reconsume count (10 s,
/// 30 s, 1 m, … with the default table).
pub const FIRST_RETRY_LEVEL: u8 = 3;

/// A delay level: 1 is the table's first (shortest) delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DelayLevel(u8);

impl DelayLevel {
    /// Level `level` (1-based, as in RocketMQ). Checked against a table when used.
    pub const fn new(level: u8) -> Self {
        DelayLevel(level)
    }

    /// The 1-based level number.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// The table of delay levels. `Default` is RocketMQ's ([`DEFAULT_DELAY_LEVELS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayLevels {
    delays: Vec<Duration>,
}

impl Default for DelayLevels {
    fn default() -> Self {
        DelayLevels::parse(DEFAULT_DELAY_LEVELS).unwrap_or_else(|_| DelayLevels {
            delays: vec![Duration::from_secs(1)],
        })
    }
}

impl DelayLevels {
    /// RocketMQ's default table.
    pub fn rocketmq_default() -> Self {
        DelayLevels::default()
    }

    /// Parses a table written as durations separated by spaces, e.g. `"1s 5s 10s 30s 1m"`
    /// (units: `ms`, `s`, `m`, `h`, `d`, as humantime reads them).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidDelay`] for an empty table, an unreadable duration, a zero
    /// duration, durations not strictly increasing, more than [`MAX_DELAY_LEVELS`] levels, or a
    /// level longer than [`MAX_DELAY`].
    pub fn parse(table: &str) -> Result<Self> {
        let delays = table
            .split_whitespace()
            .map(|word| {
                humantime::parse_duration(word)
                    .map_err(|e| invalid(format!("cannot read {word:?}: {e}")))
            })
            .collect::<Result<Vec<Duration>>>()?;
        DelayLevels::from_durations(delays)
    }

    /// A table from durations (shortest first).
    ///
    /// # Errors
    ///
    /// As [`DelayLevels::parse`].
    pub fn from_durations(delays: Vec<Duration>) -> Result<Self> {
        if delays.is_empty() || delays.len() > MAX_DELAY_LEVELS {
            return Err(invalid(format!(
                "a table has 1 to {MAX_DELAY_LEVELS} levels"
            )));
        }
        if delays.iter().any(|d| d.is_zero() || *d > MAX_DELAY) {
            return Err(invalid(
                "every level lies between 1 ms and 30 days".to_owned(),
            ));
        }
        if delays.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid("levels must be strictly increasing".to_owned()));
        }
        Ok(DelayLevels { delays })
    }

    /// Number of levels.
    pub fn len(&self) -> usize {
        self.delays.len()
    }

    /// Whether the table is empty (never: a table has at least one level).
    pub fn is_empty(&self) -> bool {
        self.delays.is_empty()
    }

    /// The highest level.
    pub fn max_level(&self) -> DelayLevel {
        DelayLevel(u8::try_from(self.delays.len()).unwrap_or(u8::MAX))
    }

    /// The delay of `level`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidDelay`] for a level outside the table.
    pub fn get(&self, level: DelayLevel) -> Result<Duration> {
        usize::from(level.0)
            .checked_sub(1)
            .and_then(|i| self.delays.get(i).copied())
            .ok_or_else(|| {
                invalid(format!(
                    "level {} is outside the table of {} levels",
                    level.0,
                    self.len()
                ))
            })
    }

    /// The shortest level at least `delay` long.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidDelay`] if `delay` is longer than the longest level.
    pub fn level_for(&self, delay: Duration) -> Result<DelayLevel> {
        let i = self
            .delays
            .iter()
            .position(|d| *d >= delay)
            .ok_or_else(|| {
                invalid(format!(
                    "a delay of {delay:?} is longer than the longest level ({:?})",
                    self.delays.last()
                ))
            })?;
        Ok(DelayLevel(u8::try_from(i + 1).unwrap_or(u8::MAX)))
    }
}

impl FromStr for DelayLevels {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self> {
        DelayLevels::parse(s)
    }
}

impl fmt::Display for DelayLevels {
    /// The table in the form [`DelayLevels::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self
            .delays
            .iter()
            .map(|d| humantime::format_duration(*d).to_string())
            .collect();
        write!(f, "{}", words.join(" "))
    }
}

/// How long a delayed record waits before it is delivered ([`crate::Record::delay`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delay {
    /// The delay of this level of the Wharf's table.
    Level(DelayLevel),
    /// At least this long: rounded up to the shortest level that long (never early; late by
    /// at most the gap to that level).
    AtLeast(Duration),
}

impl Delay {
    /// The level this delay waits in `levels`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidDelay`] for a level outside the table or a delay longer than it.
    pub(crate) fn level(self, levels: &DelayLevels) -> Result<DelayLevel> {
        match self {
            Delay::Level(level) => levels.get(level).map(|_| level),
            Delay::AtLeast(delay) => levels.level_for(delay),
        }
    }
}

/// When a negatively acknowledged delivery comes back ([`crate::Delivery::nack`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retry {
    /// RocketMQ's schedule: level 3 + the number of earlier retries (10 s, 30 s, 1 m, … with
    /// the default table), capped at the highest level.
    #[default]
    Default,
    /// This delay level.
    Level(DelayLevel),
    /// After at least this long (rounded up to a level).
    After(Duration),
}

impl Retry {
    /// The level this retry waits, for a message retried `earlier` times before.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidDelay`] for a level outside the table or a delay longer than it.
    pub(crate) fn level(self, levels: &DelayLevels, earlier: u32) -> Result<DelayLevel> {
        match self {
            Retry::Default => {
                let level = u32::from(FIRST_RETRY_LEVEL).saturating_add(earlier);
                let max = u32::from(levels.max_level().get());
                Ok(DelayLevel(u8::try_from(level.min(max)).unwrap_or(u8::MAX)))
            }
            Retry::Level(level) => Delay::Level(level).level(levels),
            Retry::After(delay) => Delay::AtLeast(delay).level(levels),
        }
    }
}

fn invalid(reason: String) -> crate::Error {
    ErrorKind::InvalidDelay { reason }.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_is_rocketmqs() {
        let levels = DelayLevels::default();
        assert_eq!(levels.len(), 18);
        assert_eq!(
            levels.get(DelayLevel::new(1)).unwrap(),
            Duration::from_secs(1)
        );
        assert_eq!(
            levels.get(DelayLevel::new(3)).unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(
            levels.get(DelayLevel::new(18)).unwrap(),
            Duration::from_secs(7_200)
        );
        assert_eq!(
            levels.to_string().parse::<DelayLevels>().unwrap(),
            levels,
            "round trip"
        );
    }

    #[test]
    fn durations_round_up_to_a_level_and_bad_input_is_refused() {
        let levels = DelayLevels::default();
        assert_eq!(
            levels.level_for(Duration::from_millis(1)).unwrap(),
            DelayLevel::new(1)
        );
        assert_eq!(
            levels.level_for(Duration::from_secs(5)).unwrap(),
            DelayLevel::new(2)
        );
        assert_eq!(
            levels.level_for(Duration::from_secs(6)).unwrap(),
            DelayLevel::new(3)
        );
        for bad in [
            levels.level_for(Duration::from_secs(7_201)).map(|_| ()),
            levels.get(DelayLevel::new(0)).map(|_| ()),
            levels.get(DelayLevel::new(19)).map(|_| ()),
        ] {
            assert!(matches!(
                bad.unwrap_err().kind(),
                ErrorKind::InvalidDelay { .. }
            ));
        }
        for table in ["", "1s 1s", "5s 1s", "0s", "1s x", "31d"] {
            assert!(
                matches!(
                    DelayLevels::parse(table).unwrap_err().kind(),
                    ErrorKind::InvalidDelay { .. }
                ),
                "{table:?}"
            );
        }
    }

    #[test]
    fn the_default_retry_follows_rocketmqs_schedule() {
        let levels = DelayLevels::default();
        let schedule: Vec<u8> = (0..18)
            .map(|n| Retry::Default.level(&levels, n).unwrap().get())
            .collect();
        assert_eq!(
            schedule,
            [
                3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 18, 18
            ]
        );
        assert_eq!(
            Retry::After(Duration::from_secs(25))
                .level(&levels, 0)
                .unwrap(),
            DelayLevel::new(4)
        );
    }
}
