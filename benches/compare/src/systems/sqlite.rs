//! SQLite as a queue (rusqlite, bundled SQLite): WAL mode, one table
//! `queue (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)`, one autocommitted `INSERT` per
//! message.
//!
//! - `sqlite-normal` (W1, W4, W5): `synchronous=NORMAL`. In WAL mode a commit then writes the
//!   WAL without syncing it (it survives a process crash, not a power loss); the final sync is
//!   `PRAGMA wal_checkpoint(FULL)`, which syncs the WAL and the database.
//! - `sqlite-full` (W2, W3): `synchronous=FULL`: every commit syncs the WAL. In W3 the threads
//!   share one connection behind a mutex (SQLite has one writer at a time anyway, and
//!   separate connections would wait in the busy handler's sleeps instead).
//! - W4 pops and acks: in one transaction per batch, `SELECT id, payload ... ORDER BY id
//!   LIMIT 1000`, then `DELETE ... WHERE id <= last`; committed with `synchronous=NORMAL`, so
//!   not synced.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::Connection;

use super::{Guarantee, Queue, READ_BATCH, Sends, SharedQueue, Tally, Variant};
use crate::workloads::Workload;

/// The report's footnote on SQLite.
pub const NOTE: &str = "SQLite (rusqlite 0.41, bundled): WAL, one autocommitted INSERT per \
    message. `sqlite-normal` (synchronous=NORMAL) does not sync a commit (final sync: \
    `wal_checkpoint(FULL)`); `sqlite-full` syncs the WAL on every commit. W3: one connection \
    behind a mutex. W4: SELECT 1,000 rows ordered by id + DELETE them, one transaction per \
    batch, not synced.";

pub fn variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "sqlite-normal",
            guarantee: Guarantee::Written,
            sends: Sends::OneByOne,
            reads: Some("SELECT 1000 + DELETE, one transaction"),
            workloads: &[Workload::W1, Workload::W4, Workload::W5],
            open: |dir, _| Box::new(SqliteQueue::open(dir, Synchronous::Normal)),
            open_shared: None,
        },
        Variant {
            name: "sqlite-full",
            guarantee: Guarantee::Synced,
            sends: Sends::OneByOne,
            reads: None,
            workloads: &[Workload::W2, Workload::W3],
            open: |dir, _| Box::new(SqliteQueue::open(dir, Synchronous::Full)),
            open_shared: Some(|dir, _| {
                Box::new(SharedSqlite(Mutex::new(connect(dir, Synchronous::Full))))
            }),
        },
    ]
}

/// SQLite's `synchronous` setting.
#[derive(Clone, Copy)]
enum Synchronous {
    Normal,
    Full,
}

const INSERT: &str = "INSERT INTO queue (payload) VALUES (?1)";

/// Opens (or creates) the queue database in `dir`.
fn connect(dir: &Path, synchronous: Synchronous) -> Connection {
    let conn = Connection::open(dir.join("queue.db")).expect("open the SQLite database");
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .expect("switch SQLite to WAL");
    assert_eq!(mode, "wal", "SQLite refused WAL mode");
    let synchronous = match synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .expect("set SQLite's synchronous");
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)",
    )
    .expect("create the queue table");
    conn
}

/// Appends one row in its own (autocommitted) transaction.
fn insert(conn: &Connection, payload: &[u8]) {
    conn.prepare_cached(INSERT)
        .expect("prepare the insert")
        .execute([payload])
        .expect("SQLite insert");
}

struct SqliteQueue {
    conn: Connection,
}

impl SqliteQueue {
    fn open(dir: &Path, synchronous: Synchronous) -> SqliteQueue {
        SqliteQueue {
            conn: connect(dir, synchronous),
        }
    }

    /// Pops up to one batch in one transaction; returns how many rows it popped.
    fn pop_batch(&mut self, tally: &mut Tally) -> usize {
        let tx = self.conn.transaction().expect("begin the pop transaction");
        let mut popped = 0;
        let mut last_id: i64 = -1;
        {
            let mut select = tx
                .prepare_cached("SELECT id, payload FROM queue ORDER BY id LIMIT ?1")
                .expect("prepare the select");
            let limit = i64::try_from(READ_BATCH).expect("a LIMIT SQLite takes");
            let mut rows = select.query([limit]).expect("SQLite select");
            while let Some(row) = rows.next().expect("SQLite row") {
                last_id = row.get(0).expect("row id");
                let payload = row.get_ref(1).expect("row payload");
                tally.add(payload.as_blob().expect("a blob payload").len());
                popped += 1;
            }
        }
        tx.prepare_cached("DELETE FROM queue WHERE id <= ?1")
            .expect("prepare the delete")
            .execute([last_id])
            .expect("SQLite delete");
        tx.commit().expect("commit the pop");
        popped
    }
}

impl Queue for SqliteQueue {
    fn append(&mut self, payload: &[u8]) {
        insert(&self.conn, payload);
    }

    fn sync(&mut self) {
        self.conn
            .query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))
            .expect("SQLite checkpoint");
    }

    fn read_all(&mut self, _expected: u64) -> Tally {
        let mut tally = Tally::default();
        while self.pop_batch(&mut tally) > 0 {}
        tally
    }
}

/// One `synchronous=FULL` connection shared by producer threads.
struct SharedSqlite(Mutex<Connection>);

impl SharedQueue for SharedSqlite {
    fn append(&self, payload: &[u8]) {
        let conn = self.0.lock().expect("SQLite mutex");
        insert(&conn, payload);
    }
}
