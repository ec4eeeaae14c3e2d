//! Exhaustive torn writes of a last batch (RELIABILITY.md section 4, scenario 3): a batch
//! spanning exactly 8 sectors is appended (acknowledged `Write`, not synced) after batches
//! acknowledged `Fsync`; then, for each of the 2^8 subsets of its sectors that reached the
//! disk, with the other sectors dropped, zeroed or garbled, and at 4 positions in a segment
//! (3,072 crash images), recovery must:
//! - never return the torn batch (only the complete one, when all 8 sectors arrived);
//! - keep every earlier batch intact;
//! - continue the log at the truncation point: the next append gets the next offset, and the
//!   log reads back as the earlier batches plus that append.
//!
//! The rest of the disk (the index entry of the torn batch, a segment a roll created, the
//! checkpoint) survives as a process kill or a power loss leaves it, alternately.

use std::path::PathBuf;
use std::sync::Arc;

use super::summary::Figures;
use super::workloads::{T0, builder};
use super::{Kind, Violation, finish, no_panic};
use crate::clock::Timestamp;
use crate::format::batch;
use crate::vfs::sim::{Damage, Fate, SECTOR_BYTES, SimRng, SimVfs};
use crate::{AckMode, Clock, ManualClock, ReadOptions, Record, TopicConfig};

/// Segment size of the topic: room for the batches before the torn one and for it.
const SEGMENT_BYTES: u64 = 16 << 10;
/// Sectors the torn batch spans.
const SECTORS: u32 = 8;

/// Where the torn batch starts, and whether a sync (checkpoint) precedes it.
#[derive(Debug, Clone, Copy)]
struct Position {
    /// The torn batch is the first of a new segment (the previous one is full): a roll
    /// creates the segment, unsynced, together with the batch.
    after_roll: bool,
    /// Byte position in its segment.
    start: u64,
    checkpointed: bool,
}

const POSITIONS: [Position; 4] = [
    Position {
        after_roll: true,
        start: crate::format::file_header::SEGMENT_HEADER_LEN as u64,
        checkpointed: false,
    },
    Position {
        after_roll: false,
        start: 512,
        checkpointed: true,
    },
    Position {
        after_roll: false,
        start: 1_000,
        checkpointed: false,
    },
    Position {
        after_roll: false,
        start: 6_100,
        checkpointed: true,
    },
];

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_millis(T0)))
}

fn config() -> TopicConfig {
    TopicConfig::default()
        .segment_bytes(SEGMENT_BYTES)
        .index_interval_bytes(0)
        .max_message_bytes(8 << 10)
}

/// A record (payload bytes never zero, key `k`) whose batch, appended alone at `now`, is
/// exactly `length` bytes long.
fn record_of_batch_length(seq: u64, length: u64, now: i64, rng: &mut SimRng) -> Record {
    let mut bytes = format!("{seq:04}:").into_bytes();
    while (bytes.len() as u64) < length {
        bytes.push(1 + u8::try_from(rng.below(255)).unwrap_or(0));
    }
    for key_len in 0..4 {
        for payload_len in (length.saturating_sub(80)..length).rev() {
            let payload = bytes[..usize::try_from(payload_len).unwrap_or(0)].to_vec();
            let mut record = Record::new("t", payload).partition(0);
            if key_len > 0 {
                record = record.key(vec![b'k'; key_len]);
            }
            let (_, plan) = batch::plan_prefix(&[record.view()], now, usize::MAX);
            if plan.length as u64 == length {
                return record;
            }
        }
    }
    panic!("no record makes a batch of {length} bytes");
}

/// The disk frozen right after the torn batch's append, the earlier payloads, the torn
/// payload, the log file and the torn batch's byte range in it.
struct Prepared {
    sim: SimVfs,
    earlier: Vec<Vec<u8>>,
    torn: Vec<u8>,
    log: PathBuf,
    range: (u64, u64),
}

fn prepare(position: Position) -> Prepared {
    let sim = SimVfs::new();
    let clock = clock();
    let now = clock.now().as_millis();
    let wharf = builder(&sim, &clock).open().expect("open");
    wharf.create_topic("t", config()).expect("topic");
    let fsync = wharf.producer().ack(AckMode::Fsync).build();
    let mut rng = SimRng::new(position.start);
    let mut earlier = Vec::new();
    let header = crate::format::file_header::SEGMENT_HEADER_LEN as u64;
    let mut end = header;
    let send = |record: Record, earlier: &mut Vec<Vec<u8>>| {
        earlier.push(record.payload.to_vec());
        fsync.send(record).expect("durable");
    };
    // Filler batches of 400 bytes, then one that ends exactly where the torn batch starts.
    let target = if position.after_roll {
        SEGMENT_BYTES - 300
    } else {
        position.start
    };
    while target - end > 900 {
        send(
            record_of_batch_length(earlier.len() as u64, 400, now, &mut rng),
            &mut earlier,
        );
        end += 400;
    }
    send(
        record_of_batch_length(earlier.len() as u64, target - end, now, &mut rng),
        &mut earlier,
    );
    if position.checkpointed {
        wharf.sync().expect("checkpoint");
    }
    let start = position.start;
    let length = u64::from(SECTORS) * SECTOR_BYTES - start % SECTOR_BYTES - 7;
    let torn = record_of_batch_length(earlier.len() as u64, length, now, &mut rng);
    let receipt = wharf
        .producer()
        .ack(AckMode::Write)
        .build()
        .send(torn.clone())
        .expect("written");
    assert_eq!(receipt.offset(), earlier.len() as u64);
    sim.freeze();
    drop(wharf);
    let base = if position.after_roll {
        receipt.offset()
    } else {
        0
    };
    Prepared {
        sim,
        earlier,
        torn: torn.payload.to_vec(),
        log: PathBuf::from(format!("{}/topics/t/0/{base:020}.log", super::DIR)),
        range: (start, start + length),
    }
}

/// Recovers one torn image and checks it.
fn check(prepared: &Prepared, img: &SimVfs, complete: bool) -> Result<(), Violation> {
    let wharf = no_panic("recovery", || builder(img, &clock()).open())?
        .map_err(|e| Violation::new(Kind::OpenFailed, e.to_string()))?;
    let read = |wharf: &crate::Wharf| -> Result<Vec<Vec<u8>>, Violation> {
        let reader = wharf
            .reader("t", 0)
            .map_err(|e| Violation::new(Kind::TopicMismatch, e.to_string()))?;
        let mut out = Vec::new();
        while (out.len() as u64) < reader.end_offset() {
            let batch = reader
                .read(out.len() as u64, ReadOptions::default())
                .map_err(|e| Violation::new(Kind::CorruptError, e.to_string()))?;
            if batch.is_empty() {
                return Err(Violation::new(Kind::NotPrefix, "a gap below the end"));
            }
            out.extend(batch.iter().map(|m| m.payload().to_vec()));
        }
        Ok(out)
    };
    let mut expected = prepared.earlier.clone();
    if complete {
        expected.push(prepared.torn.clone());
    }
    let found = read(&wharf)?;
    if found != expected {
        let torn_returned = found.contains(&prepared.torn);
        return Err(Violation::new(
            if torn_returned || found.len() > expected.len() {
                Kind::CorruptPayload
            } else {
                Kind::LostFsyncAck
            },
            format!(
                "{} records recovered, {} expected (torn batch returned: {torn_returned})",
                found.len(),
                expected.len()
            ),
        ));
    }
    let next = wharf
        .producer()
        .ack(AckMode::Fsync)
        .build()
        .send(Record::new("t", "next").partition(0))
        .map_err(|e| Violation::new(Kind::NotPrefix, format!("the next append failed: {e}")))?;
    if next.offset() != expected.len() as u64 {
        return Err(Violation::new(
            Kind::NotPrefix,
            format!(
                "the next append got offset {}, not {}",
                next.offset(),
                expected.len()
            ),
        ));
    }
    expected.push(b"next".to_vec());
    if read(&wharf)? != expected {
        return Err(Violation::new(
            Kind::NotPrefix,
            "the log after the next append",
        ));
    }
    img.freeze();
    no_panic("dropping the Wharf", || drop(wharf))?;
    Ok(())
}

#[test]
fn a_torn_last_batch_is_never_returned_and_the_log_continues_where_it_is_cut() {
    let mut figures = Figures::default();
    let started = std::time::Instant::now();
    for (p, &position) in POSITIONS.iter().enumerate() {
        let prepared = prepare(position);
        for fill in [Fate::Drop, Fate::Zero, Fate::Garbage] {
            for mask in 0..(1u32 << SECTORS) {
                let fates: Vec<Fate> = (0..SECTORS)
                    .map(|i| {
                        if mask & (1 << i) != 0 {
                            Fate::Apply
                        } else {
                            fill
                        }
                    })
                    .collect();
                let rest = if mask % 2 == 0 {
                    Damage::Kill
                } else {
                    Damage::LoseUnsynced
                };
                let img = prepared
                    .sim
                    .crash_torn(&prepared.log, prepared.range, &fates, rest)
                    .expect("the log exists");
                // The segment a roll created survives a power loss only if its directory
                // entry was synced, which the unsynced append did not do.
                let complete = mask == (1 << SECTORS) - 1 && img.read_file(&prepared.log).is_ok();
                if let Err(v) = check(&prepared, &img, complete) {
                    panic!(
                        "torn batch at position {p} ({position:?}), sectors that arrived \
                         {mask:#010b}, others {fill:?}, rest of the disk {rest:?}: {v}"
                    );
                }
                figures.add("torn_write_cases", 1);
                figures.add("simulated_crash_images", 1);
                figures.add(
                    "acked_fsync_messages_checked",
                    prepared.earlier.len() as u64,
                );
            }
        }
        figures.add("torn_batch_positions", 1);
    }
    assert_eq!(figures.get("torn_write_cases"), 3_072);
    finish("torn_writes", figures, started);
}
