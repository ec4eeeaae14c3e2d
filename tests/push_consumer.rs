//! The push consumer (RocketMQ's listener model) through the public API. Delays run on a
//! [`ManualClock`]: no test sleeps through a delay level. Waits for the worker threads have
//! generous hang guards that fail with a message; no assertion is about elapsed real time.
//!
//! What each test proves:
//! - `success_consumes_every_message_once_and_commits_to_the_end`: a listener returning
//!   `Success` sees every message of every partition exactly once, on the push worker
//!   threads; after `shutdown` the group's committed offsets are the log ends (a new consumer
//!   of the group gets nothing) and no error was reported.
//! - `reconsume_later_retries_after_the_chosen_level_without_blocking_later_messages`:
//!   messages for which the listener returns `ReconsumeLater` with `set_delay_level(1)` are
//!   not redelivered before 1 s on the Wharf clock and come back at 1 s from `%RETRY%<group>`
//!   with reconsume count 1 and their origin; the messages after them were processed without
//!   waiting for the clock.
//! - `listener_panics_are_retried_and_the_workers_survive`: both workers of a 2-thread
//!   consumer panic (a `&str` and a `String` panic); both then process further messages
//!   concurrently (same thread ids, names `wharf-push-*`), every other message is processed,
//!   and the panicked messages come back after the default retry delay with the reason
//!   "the listener panicked: <message>".
//! - `shutdown_waits_for_the_listener_in_flight_and_acks_it`: `shutdown` called on another
//!   thread does not return while a listener call is in progress; when it returns the call has
//!   returned, its message is acknowledged and committed (the next consumer of the group does
//!   not get it), and the messages queued but not started are left to that next consumer.
//! - `max_reconsume_times_zero_sends_reconsume_later_straight_to_the_dead_letter_queue`: with
//!   `max_reconsume_times(0)` a `ReconsumeLater` (or a panic) writes the message to
//!   `%DLQ%<group>` at once, with the listener's reason, and never to the retry topic.
//! - `progress_is_committed_while_running_so_a_crash_redelivers_nothing_finished`: without a
//!   shutdown, the group's committed offsets reach the processed end (every
//!   `PUSH_COMMIT_INTERVAL`), so after a crash nothing finished is delivered again.

#![allow(
    clippy::too_many_lines,
    reason = "a test that tells one story reads best in one piece"
)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use wharf::{
    Clock, ConsumeContext, ConsumeStatus, Delivery, ErrorKind, ManualClock, MessageId, Record,
    Retry, Timestamp, TopicConfig, Wharf,
};

/// The Wharf clock's start, in ms since the epoch.
const T0: i64 = 1_700_000_000_000;
/// Hang guard for anything that should happen "soon".
const GUARD: Duration = Duration::from_secs(10);
/// How long "nothing more happens" is watched for.
const QUIET: Duration = Duration::from_millis(200);

/// A Wharf on a manual clock at [`T0`] in a fresh directory, with topic `t` of `partitions`
/// partitions.
fn setup(partitions: u32) -> (tempfile::TempDir, Arc<ManualClock>, Wharf) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let wharf = Wharf::builder(dir.path())
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .open()
        .unwrap();
    wharf
        .create_topic("t", TopicConfig::default().partitions(partitions))
        .unwrap();
    (dir, clock, wharf)
}

/// Sends each payload to `t`, partition `partition`.
fn send(wharf: &Wharf, partition: u32, payloads: &[&str]) {
    let producer = wharf.producer().build();
    for p in payloads {
        producer
            .send(Record::new("t", (*p).to_owned()).partition(partition))
            .unwrap();
    }
}

/// Waits until `cond` holds; fails after the hang guard.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !cond() {
        assert!(Instant::now() < deadline, "hang guard: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn id(topic: &str, partition: u32, offset: u64) -> MessageId {
    MessageId {
        topic: topic.to_owned(),
        partition,
        offset,
    }
}

/// What the listener saw in one call.
#[derive(Debug, Clone)]
struct Call {
    topic: String,
    partition: u32,
    offset: u64,
    payload: String,
    reconsume_count: u32,
    origin: Option<MessageId>,
    reason: Option<String>,
    thread: ThreadId,
    thread_name: String,
}

impl Call {
    fn of(d: &Delivery) -> Call {
        let me = std::thread::current();
        Call {
            topic: d.topic().to_owned(),
            partition: d.partition(),
            offset: d.offset(),
            payload: text(d.payload()),
            reconsume_count: d.reconsume_count(),
            origin: d.origin(),
            reason: d.header("wharf.reason").map(text),
            thread: me.id(),
            thread_name: me.name().unwrap_or_default().to_owned(),
        }
    }
}

/// The listener's calls, shared with the test.
type Calls = Arc<Mutex<Vec<Call>>>;

fn calls_len(calls: &Calls) -> usize {
    calls.lock().unwrap().len()
}

/// Counts errors reported to `on_error`, keeping their text.
fn error_hook(errors: &Arc<Mutex<Vec<String>>>) -> impl Fn(&wharf::Error) + Send + Sync + 'static {
    let errors = Arc::clone(errors);
    move |e: &wharf::Error| errors.lock().unwrap().push(e.to_string())
}

/// The group's committed offset per (topic, partition), from the admin view.
fn committed(wharf: &Wharf, group: &str) -> BTreeMap<(String, u32), Option<u64>> {
    wharf
        .admin()
        .describe_group(group)
        .unwrap()
        .partitions
        .into_iter()
        .map(|p| {
            (
                (p.lag.partition.topic.clone(), p.lag.partition.partition),
                p.lag.committed,
            )
        })
        .collect()
}

/// `n` parties meet: each call returns once `n` have arrived, or `false` after the guard.
#[derive(Default)]
struct Rendezvous {
    arrived: Mutex<usize>,
    all_here: Condvar,
}

impl Rendezvous {
    fn meet(&self, n: usize) -> bool {
        let deadline = Instant::now() + GUARD;
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.all_here.notify_all();
        while *arrived < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            arrived = self.all_here.wait_timeout(arrived, left).unwrap().0;
        }
        true
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Success
// ---------------------------------------------------------------------------------------------

#[test]
fn success_consumes_every_message_once_and_commits_to_the_end() {
    let (_dir, _clock, wharf) = setup(3);
    for p in 0..3 {
        let payloads: Vec<String> = (0..100).map(|i| format!("{p}/{i}")).collect();
        let refs: Vec<&str> = payloads.iter().map(String::as_str).collect();
        send(&wharf, p, &refs);
    }
    let calls: Calls = Arc::default();
    let errors = Arc::default();
    let seen = Arc::clone(&calls);
    let consumer = wharf
        .push_consumer("g")
        .subscribe(["t"])
        .threads(3)
        .on_error(error_hook(&errors))
        .listener(move |d: &Delivery, _ctx: &mut ConsumeContext| {
            seen.lock().unwrap().push(Call::of(d));
            ConsumeStatus::Success
        })
        .start()
        .unwrap();
    assert_eq!(consumer.group(), "g");
    wait_until("300 messages consumed", || calls_len(&calls) >= 300);
    std::thread::sleep(QUIET);
    consumer.shutdown().unwrap();

    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 300, "no message twice");
    let keys: BTreeSet<(u32, u64)> = calls.iter().map(|c| (c.partition, c.offset)).collect();
    let all: BTreeSet<(u32, u64)> = (0..3).flat_map(|p| (0..100).map(move |o| (p, o))).collect();
    assert_eq!(keys, all, "every message exactly once");
    for c in &calls {
        assert_eq!(c.topic, "t");
        assert_eq!(c.payload, format!("{}/{}", c.partition, c.offset));
        assert!(c.thread_name.starts_with("wharf-push-"), "{c:?}");
        assert_ne!(c.thread, std::thread::current().id());
    }
    let threads: HashSet<ThreadId> = calls.iter().map(|c| c.thread).collect();
    assert!(threads.len() <= 3, "3 worker threads: {threads:?}");

    let committed = committed(&wharf, "g");
    for p in 0..3 {
        assert_eq!(
            committed.get(&("t".to_owned(), p)),
            Some(&Some(100)),
            "partition {p} is committed to its end: {committed:?}"
        );
    }
    assert!(errors.lock().unwrap().is_empty(), "{:?}", errors.lock());
    let mut next = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    if let Some(d) = next.poll(QUIET).unwrap() {
        panic!("everything was consumed and committed, yet {d:?} came");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. ReconsumeLater
// ---------------------------------------------------------------------------------------------

#[test]
fn reconsume_later_retries_after_the_chosen_level_without_blocking_later_messages() {
    let (_dir, clock, wharf) = setup(1);
    let payloads: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = payloads.iter().map(String::as_str).collect();
    send(&wharf, 0, &refs);
    let failing: BTreeSet<&str> = ["m2", "m5"].into();
    let calls: Calls = Arc::default();
    let errors = Arc::default();
    let seen = Arc::clone(&calls);
    let fail = failing
        .iter()
        .map(|s| (*s).to_owned())
        .collect::<BTreeSet<String>>();
    let consumer = wharf
        .push_consumer("g")
        .subscribe(["t"])
        .threads(2)
        .on_error(error_hook(&errors))
        .listener(move |d: &Delivery, ctx: &mut ConsumeContext| {
            let call = Call::of(d);
            let again = fail.contains(&call.payload) && call.reconsume_count == 0;
            seen.lock().unwrap().push(call);
            if again {
                ctx.set_delay_level(1);
                ConsumeStatus::ReconsumeLater
            } else {
                ConsumeStatus::Success
            }
        })
        .start()
        .unwrap();

    // Every first delivery, those after m2 and m5 included, with the clock standing still.
    wait_until("the 10 first deliveries", || calls_len(&calls) >= 10);
    wait_until("the 2 retries are written at level 1", || {
        wharf.admin().delay_status().waiting.first() == Some(&2)
    });
    let first: Vec<String> = calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.payload.clone())
        .collect();
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(
        sorted, payloads,
        "each message once, later ones not blocked"
    );

    clock.advance(Duration::from_millis(999));
    std::thread::sleep(QUIET);
    assert_eq!(calls_len(&calls), 10, "nothing is retried before 1 s");
    clock.advance(Duration::from_millis(1));
    wait_until("the 2 retries", || calls_len(&calls) >= 12);
    std::thread::sleep(QUIET);
    consumer.shutdown().unwrap();

    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 12, "{calls:?}");
    let mut retries: Vec<&Call> = calls.iter().filter(|c| c.topic != "t").collect();
    retries.sort_by_key(|c| c.payload.clone());
    assert_eq!(retries.len(), 2, "{calls:?}");
    for (retry, (name, offset)) in retries.iter().zip([("m2", 2), ("m5", 5)]) {
        assert_eq!(retry.topic, "%RETRY%g");
        assert_eq!(retry.payload, name);
        assert_eq!(retry.reconsume_count, 1);
        assert_eq!(retry.origin, Some(id("t", 0, offset)));
    }
    let committed = committed(&wharf, "g");
    assert_eq!(committed.get(&("t".to_owned(), 0)), Some(&Some(10)));
    assert_eq!(committed.get(&("%RETRY%g".to_owned(), 0)), Some(&Some(2)));
    assert!(errors.lock().unwrap().is_empty(), "{:?}", errors.lock());
}

// ---------------------------------------------------------------------------------------------
// 3. Listener panics
// ---------------------------------------------------------------------------------------------

#[test]
fn listener_panics_are_retried_and_the_workers_survive() {
    let (_dir, clock, wharf) = setup(1);
    let mut payloads = vec!["panic-0", "panic-1", "probe-0", "probe-1"];
    let normal: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
    payloads.extend(normal.iter().map(String::as_str));
    send(&wharf, 0, &payloads);

    let calls: Calls = Arc::default();
    let errors = Arc::default();
    let panics_met = Arc::new(AtomicBool::new(true));
    let probes_met = Arc::new(AtomicBool::new(true));
    let consumer = {
        let (seen, panics_met, probes_met) = (
            Arc::clone(&calls),
            Arc::clone(&panics_met),
            Arc::clone(&probes_met),
        );
        let (panics, probes) = (Rendezvous::default(), Rendezvous::default());
        wharf
            .push_consumer("g")
            .subscribe(["t"])
            .threads(2)
            .on_error(error_hook(&errors))
            .listener(move |d: &Delivery, _ctx: &mut ConsumeContext| {
                let call = Call::of(d);
                let (payload, first) = (call.payload.clone(), call.reconsume_count == 0);
                seen.lock().unwrap().push(call);
                if first && payload.starts_with("panic-") {
                    // Both workers are in here at once: each one panics.
                    if !panics.meet(2) {
                        panics_met.store(false, Ordering::SeqCst);
                    }
                    if payload == "panic-0" {
                        // A `&str` payload; the other one panics with a `String`.
                        std::panic::panic_any("boom");
                    }
                    panic!("boom {payload}");
                }
                if payload.starts_with("probe-") && !probes.meet(2) {
                    probes_met.store(false, Ordering::SeqCst);
                }
                ConsumeStatus::Success
            })
            .start()
            .unwrap()
    };
    wait_until("every message once", || calls_len(&calls) >= payloads.len());
    wait_until("the 2 retries are written at level 3", || {
        wharf.admin().delay_status().waiting.get(2) == Some(&2)
    });
    assert!(
        panics_met.load(Ordering::SeqCst),
        "both workers took a panic message"
    );
    assert!(
        probes_met.load(Ordering::SeqCst),
        "after panicking, both workers were alive to take a probe at the same time"
    );
    {
        let calls = calls.lock().unwrap();
        let thread_of =
            |name: &str| -> ThreadId { calls.iter().find(|c| c.payload == name).unwrap().thread };
        let panicked: HashSet<ThreadId> = [thread_of("panic-0"), thread_of("panic-1")].into();
        let probed: HashSet<ThreadId> = [thread_of("probe-0"), thread_of("probe-1")].into();
        assert_eq!(panicked.len(), 2, "each worker panicked once");
        assert_eq!(
            probed, panicked,
            "the workers that panicked took the probes"
        );
        let all: HashSet<ThreadId> = calls.iter().map(|c| c.thread).collect();
        assert_eq!(all, panicked, "no other thread ran the listener");
        let names: BTreeSet<&str> = calls.iter().map(|c| c.thread_name.as_str()).collect();
        assert_eq!(names, ["wharf-push-0", "wharf-push-1"].into());
        let mut firsts: Vec<&str> = calls.iter().map(|c| c.payload.as_str()).collect();
        firsts.sort_unstable();
        let mut expected = payloads.clone();
        expected.sort_unstable();
        assert_eq!(firsts, expected, "every other message was processed, once");
    }

    // The default retry: level 3, 10 s.
    clock.advance(Duration::from_millis(9_999));
    std::thread::sleep(QUIET);
    assert_eq!(calls_len(&calls), payloads.len(), "not retried before 10 s");
    clock.advance(Duration::from_millis(1));
    wait_until("the 2 retries", || calls_len(&calls) >= payloads.len() + 2);
    std::thread::sleep(QUIET);
    consumer.shutdown().unwrap();
    let calls = calls.lock().unwrap().clone();
    let retries: BTreeMap<String, Call> = calls[payloads.len()..]
        .iter()
        .map(|c| (c.payload.clone(), c.clone()))
        .collect();
    assert_eq!(retries.len(), 2, "{calls:?}");
    for (name, offset, message) in [("panic-0", 0, "boom"), ("panic-1", 1, "boom panic-1")] {
        let retry = &retries[name];
        assert_eq!(retry.topic, "%RETRY%g");
        assert_eq!(retry.reconsume_count, 1);
        assert_eq!(retry.origin, Some(id("t", 0, offset)));
        assert_eq!(
            retry.reason.as_deref(),
            Some(format!("the listener panicked: {message}").as_str())
        );
    }
    assert!(errors.lock().unwrap().is_empty(), "{:?}", errors.lock());
    let committed = committed(&wharf, "g");
    let end = u64::try_from(payloads.len()).unwrap();
    assert_eq!(committed.get(&("t".to_owned(), 0)), Some(&Some(end)));
}

// ---------------------------------------------------------------------------------------------
// 4. Shutdown
// ---------------------------------------------------------------------------------------------

#[test]
fn shutdown_waits_for_the_listener_in_flight_and_acks_it() {
    let (_dir, _clock, wharf) = setup(1);
    send(&wharf, 0, &["block", "q1", "q2", "q3", "q4"]);
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let returned = Arc::new(AtomicBool::new(false));
    let others = Arc::new(AtomicUsize::new(0));
    let errors = Arc::default();
    let consumer = {
        let (returned, others) = (Arc::clone(&returned), Arc::clone(&others));
        wharf
            .push_consumer("g")
            .subscribe(["t"])
            .threads(1)
            .on_error(error_hook(&errors))
            .listener(move |d: &Delivery, _ctx: &mut ConsumeContext| {
                if d.payload() == b"block" {
                    started_tx.send(()).unwrap();
                    let released = release_rx.lock().unwrap().recv_timeout(GUARD * 2);
                    assert!(released.is_ok(), "the test never released the listener");
                    returned.store(true, Ordering::SeqCst);
                } else {
                    others.fetch_add(1, Ordering::SeqCst);
                }
                ConsumeStatus::Success
            })
            .start()
            .unwrap()
    };
    started_rx
        .recv_timeout(GUARD)
        .expect("hang guard: the listener was not called");
    let shutdown = {
        let returned = Arc::clone(&returned);
        std::thread::spawn(move || {
            let result = consumer.shutdown();
            (result, returned.load(Ordering::SeqCst))
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !shutdown.is_finished(),
        "shutdown returned while a listener call was in progress"
    );
    release_tx.send(()).unwrap();
    let (result, listener_had_returned) = shutdown.join().unwrap();
    result.unwrap();
    assert!(
        listener_had_returned,
        "shutdown returned before the listener did"
    );
    assert_eq!(
        others.load(Ordering::SeqCst),
        0,
        "no delivery is started once shutdown began"
    );
    assert!(errors.lock().unwrap().is_empty(), "{:?}", errors.lock());
    assert_eq!(
        committed(&wharf, "g").get(&("t".to_owned(), 0)),
        Some(&Some(1)),
        "the message in flight was acked and committed"
    );

    // The next consumer of the group gets the queued messages, not the one in flight.
    let mut next = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + GUARD;
    while got.len() < 4 {
        assert!(Instant::now() < deadline, "hang guard: got only {got:?}");
        if let Some(d) = next.poll(Duration::from_millis(50)).unwrap() {
            got.push((d.offset(), text(d.payload())));
            d.ack().unwrap();
        }
    }
    assert_eq!(
        got,
        [(1, "q1"), (2, "q2"), (3, "q3"), (4, "q4")]
            .map(|(o, p)| (o, p.to_owned()))
            .to_vec()
    );
    if let Some(d) = next.poll(QUIET).unwrap() {
        panic!("the message in flight was acked, yet {d:?} came again");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. max_reconsume_times(0)
// ---------------------------------------------------------------------------------------------

#[test]
fn max_reconsume_times_zero_sends_reconsume_later_straight_to_the_dead_letter_queue() {
    let (_dir, _clock, wharf) = setup(1);
    send(&wharf, 0, &["ok-0", "bad-1", "ok-2", "panic-3", "ok-4"]);
    let calls: Calls = Arc::default();
    let errors = Arc::default();
    let seen = Arc::clone(&calls);
    let consumer = wharf
        .push_consumer("g")
        .subscribe(["t"])
        .threads(2)
        .max_reconsume_times(0)
        .on_error(error_hook(&errors))
        .listener(move |d: &Delivery, ctx: &mut ConsumeContext| {
            let call = Call::of(d);
            let payload = call.payload.clone();
            seen.lock().unwrap().push(call);
            match payload.as_str() {
                "bad-1" => {
                    ctx.set_reason("nope");
                    ctx.set_retry(Retry::After(Duration::from_secs(1)));
                    ConsumeStatus::ReconsumeLater
                }
                "panic-3" => panic!("kaput"),
                _ => ConsumeStatus::Success,
            }
        })
        .start()
        .unwrap();
    wait_until("5 calls and 2 dead letters", || {
        calls_len(&calls) >= 5
            && wharf
                .admin()
                .dead_letters("g", 0, 10)
                .is_ok_and(|l| l.len() >= 2)
    });
    std::thread::sleep(QUIET);
    consumer.shutdown().unwrap();

    assert_eq!(calls_len(&calls), 5, "no message is delivered again");
    let letters = wharf.admin().dead_letters("g", 0, 10).unwrap();
    let summary: BTreeMap<String, (Option<MessageId>, u32, Option<String>)> = letters
        .iter()
        .map(|l| {
            (
                text(l.message.payload()),
                (l.origin.clone(), l.reconsume_count, l.reason.clone()),
            )
        })
        .collect();
    let expected: BTreeMap<String, (Option<MessageId>, u32, Option<String>)> = [
        ("bad-1", 1, "nope (failed 1 times)"),
        (
            "panic-3",
            3,
            "the listener panicked: kaput (failed 1 times)",
        ),
    ]
    .into_iter()
    .map(|(name, offset, reason)| {
        (
            name.to_owned(),
            (Some(id("t", 0, offset)), 0, Some(reason.to_owned())),
        )
    })
    .collect();
    assert_eq!(summary, expected);
    assert!(
        wharf.admin().delay_status().waiting.iter().all(|&w| w == 0),
        "nothing waits for a retry"
    );
    let retry_topic = wharf.reader("%RETRY%g", 0).map(|r| r.end_offset());
    assert!(
        matches!(&retry_topic, Err(e) if matches!(e.kind(), ErrorKind::TopicNotFound { .. })),
        "nothing was retried, so the group has no retry topic: {retry_topic:?}"
    );
    assert_eq!(
        committed(&wharf, "g").get(&("t".to_owned(), 0)),
        Some(&Some(5))
    );
    assert!(errors.lock().unwrap().is_empty(), "{:?}", errors.lock());
}

// ---------------------------------------------------------------------------------------------
// 6. Commits while running
// ---------------------------------------------------------------------------------------------

#[test]
fn progress_is_committed_while_running_so_a_crash_redelivers_nothing_finished() {
    let (dir, clock, wharf) = setup(2);
    for p in 0..2 {
        send(&wharf, p, &["a", "b", "c"]);
    }
    let calls: Calls = Arc::default();
    let seen = Arc::clone(&calls);
    let consumer = wharf
        .push_consumer("g")
        .subscribe(["t"])
        .listener(move |d: &Delivery, _ctx: &mut ConsumeContext| {
            seen.lock().unwrap().push(Call::of(d));
            ConsumeStatus::Success
        })
        .start()
        .unwrap();
    // Every PUSH_COMMIT_INTERVAL (1 s) while running, without a shutdown.
    wait_until("the group's progress is committed while running", || {
        let committed = committed(&wharf, "g");
        (0..2).all(|p| committed.get(&("t".to_owned(), p)) == Some(&Some(3)))
    });
    assert_eq!(calls_len(&calls), 6);
    wharf.simulate_crash();
    drop(consumer);

    let wharf = Wharf::builder(dir.path())
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .open()
        .unwrap();
    let mut next = wharf.consumer("g").subscribe(["t"]).build().unwrap();
    if let Some(d) = next.poll(QUIET).unwrap() {
        panic!("{d:?} was processed and committed before the crash, yet came again");
    }
}
