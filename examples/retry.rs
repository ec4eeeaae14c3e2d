//! Retries, delays and dead letters, RocketMQ style.
//!
//! A push consumer's listener fails some payments: a failed one is retried after a delay level
//! (a short table here, so the example runs in a second), comes back from the group's retry
//! topic with its reconsume count, and goes to the dead-letter queue after
//! `max_reconsume_times` retries. An operator then lists the dead letters and resends them.
//! A producer also sends a delayed reminder.
//!
//! ```text
//! cargo run --example retry
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wharf::{ConsumeStatus, DelayLevels, Record, TopicConfig, Wharf};

fn main() -> wharf::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let wharf = Wharf::builder(dir.path())
        // RocketMQ's default is "1s 5s 10s 30s 1m ... 2h"; the default retry starts at level 3.
        .delay_levels(DelayLevels::parse("50ms 100ms 150ms 200ms")?)
        .open()?;
    wharf.create_topic("payments", TopicConfig::default())?;
    wharf.create_topic("reminders", TopicConfig::default())?;
    let producer = wharf.producer().build();
    for i in 0..10 {
        producer.send(Record::new("payments", format!("payment-{i}")))?;
    }
    // Delivered once level 2 (100 ms here) has passed: it waits in the delay topic meanwhile.
    let receipt = producer.send(Record::new("reminders", "call the customer").delay(2))?;
    println!(
        "reminder waiting in {} partition {}",
        receipt.topic(),
        receipt.partition()
    );

    let settled = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&settled);
    let consumer = wharf
        .push_consumer("billing")
        .subscribe(["payments"])
        .max_reconsume_times(2)
        .threads(2)
        .listener(move |delivery, context| {
            let payload = String::from_utf8_lossy(delivery.payload()).into_owned();
            let attempt = delivery.reconsume_count();
            // payment-3 always fails; payment-5 fails once and then succeeds.
            let fails = payload == "payment-3" || (payload == "payment-5" && attempt == 0);
            if fails {
                println!("{payload}: failed (reconsume count {attempt}), retry later");
                context.set_reason("card declined");
                if payload == "payment-3" && attempt == 2 {
                    seen.fetch_add(1, Ordering::SeqCst); // this failure dead-letters it
                }
                return ConsumeStatus::ReconsumeLater;
            }
            println!("{payload}: processed (reconsume count {attempt})");
            seen.fetch_add(1, Ordering::SeqCst);
            ConsumeStatus::Success
        })
        .start()?;

    let deadline = Instant::now() + Duration::from_secs(10);
    while settled.load(Ordering::SeqCst) < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    consumer.shutdown()?;

    let admin = wharf.admin();
    for letter in admin.dead_letters("billing", 0, 100)? {
        println!(
            "dead letter {}: {:?} from {:?}, retried {} times, reason {:?}",
            letter.offset,
            String::from_utf8_lossy(letter.message.payload()),
            letter.origin.map(|o| o.to_string()),
            letter.reconsume_count,
            letter.reason,
        );
    }
    let resent = admin.resend_dead_letters("billing")?;
    println!(
        "resent {resent} dead letter(s) to their topic; purged {}",
        admin.purge_dead_letters("billing")?
    );

    let mut reminders = wharf.consumer("crm").subscribe(["reminders"]).build()?;
    if let Some(reminder) = reminders.poll(Duration::from_secs(5))? {
        println!(
            "reminder delivered: {:?}",
            String::from_utf8_lossy(reminder.payload())
        );
        reminders.commit()?;
    }
    drop(reminders);
    wharf.close()
}
