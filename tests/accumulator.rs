//! The producer's accumulator: records sent without waiting (`send_oneway`, `NoWait`) are
//! batched per partition and appended when the batch fills, after `linger`, on `flush`,
//! `Wharf::sync`, `close` and when the producer is dropped.

use std::time::Duration;

use wharf::{AckMode, ReadOptions, Record, TopicConfig, Wharf};

fn read_payloads(wharf: &Wharf, partition: u32) -> Vec<Vec<u8>> {
    let reader = wharf.reader("t", partition).expect("reader");
    let mut out = Vec::new();
    let mut next = 0;
    loop {
        if next >= reader.end_offset() {
            return out;
        }
        let batch = reader.read(next, ReadOptions::default()).expect("read");
        for message in &batch {
            out.push(message.payload().to_vec());
        }
        next = batch.next_offset();
    }
}

#[test]
fn oneway_records_reach_the_log_on_flush_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = Wharf::builder(dir.path()).open().expect("open");
    wharf
        .create_topic("t", TopicConfig::default())
        .expect("topic");
    let producer = wharf.producer().linger(Duration::from_secs(3_600)).build();
    for i in 0..100u32 {
        producer
            .send_oneway(Record::new("t", i.to_le_bytes().to_vec()))
            .expect("send");
    }
    assert_eq!(
        read_payloads(&wharf, 0).len(),
        0,
        "nothing appended before the flush"
    );
    producer.flush().expect("flush");
    let got = read_payloads(&wharf, 0);
    let want: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_le_bytes().to_vec()).collect();
    assert_eq!(got, want);
    // A Write send after oneway ones comes after them.
    producer
        .send_oneway(Record::new("t", b"oneway".to_vec()))
        .expect("send");
    let receipt = producer
        .send_with(Record::new("t", b"write".to_vec()), AckMode::Write)
        .expect("send");
    assert_eq!(receipt.offset(), 101);
    assert_eq!(read_payloads(&wharf, 0)[100], b"oneway");
}

#[test]
fn a_lingering_batch_is_appended_without_a_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wharf = Wharf::open(dir.path()).expect("open");
    wharf
        .create_topic("t", TopicConfig::default())
        .expect("topic");
    let producer = wharf.producer().linger(Duration::from_millis(5)).build();
    producer
        .send_oneway(Record::new("t", b"x".to_vec()))
        .expect("send");
    let reader = wharf.reader("t", 0).expect("reader");
    // A hang guard, not a timing claim: the linger thread appends it.
    assert!(
        reader.wait_for(0, Duration::from_secs(30)),
        "the batch was never appended"
    );
}
