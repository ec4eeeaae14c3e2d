//! Tests of the simulated disk on its own (through the `Vfs` traits).

use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;

use super::*;
use crate::vfs::sim::disk::ENOSPC;
use crate::vfs::{OpenMode, Vfs};

/// [`SECTOR_BYTES`] as a length.
const SECTOR: usize = 512;
const _: () = assert!(SECTOR as u64 == SECTOR_BYTES);

fn p(path: &str) -> PathBuf {
    PathBuf::from(path)
}

fn disk_with_dir() -> SimVfs {
    let sim = SimVfs::new();
    sim.create_dir_all(&p("/d")).unwrap();
    sim.sync_dir(&p("/")).unwrap();
    sim
}

fn contents(sim: &SimVfs, path: &str) -> Option<Vec<u8>> {
    sim.read_file(&p(path)).ok()
}

#[test]
fn unsynced_writes_survive_a_kill_but_not_a_power_loss() {
    let sim = disk_with_dir();
    let f = sim.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
    sim.sync_dir(&p("/d")).unwrap();
    f.write_all_at(b"durable", 0).unwrap();
    f.sync_data().unwrap();
    f.write_all_at(b"-volatile", 7).unwrap();
    assert_eq!(
        contents(&sim.crash(Damage::Kill), "/d/f").unwrap(),
        b"durable-volatile"
    );
    assert_eq!(
        contents(&sim.crash(Damage::LoseUnsynced), "/d/f").unwrap(),
        b"durable"
    );
}

#[test]
fn a_create_or_remove_is_durable_only_after_its_directory_is_synced() {
    let sim = disk_with_dir();
    let f = sim.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
    f.write_all_at(b"x", 0).unwrap();
    f.sync_all().unwrap();
    assert_eq!(contents(&sim.crash(Damage::LoseUnsynced), "/d/f"), None);
    assert_eq!(contents(&sim.crash(Damage::Kill), "/d/f").unwrap(), b"x");
    let sim = sim.crash(Damage::Kill);
    sim.sync_dir(&p("/d")).unwrap();
    sim.remove_file(&p("/d/f")).unwrap();
    assert_eq!(
        contents(&sim.crash(Damage::LoseUnsynced), "/d/f").unwrap(),
        b"x"
    );
    sim.sync_dir(&p("/d")).unwrap();
    assert_eq!(contents(&sim.crash(Damage::LoseUnsynced), "/d/f"), None);
}

#[test]
fn a_new_directory_needs_its_parent_synced() {
    let sim = SimVfs::new();
    sim.create_dir_all(&p("/a/b")).unwrap();
    let f = sim.open(&p("/a/b/f"), OpenMode::CreateNew).unwrap();
    f.sync_all().unwrap();
    sim.sync_dir(&p("/a/b")).unwrap();
    sim.sync_dir(&p("/a")).unwrap();
    assert!(sim.crash(Damage::LoseUnsynced).list_all().is_empty());
    sim.sync_dir(&p("/")).unwrap();
    assert_eq!(
        sim.crash(Damage::LoseUnsynced).list_all(),
        ["/a/", "/a/b/", "/a/b/f"]
    );
}

/// The RocketMQ bug class (scenario 12): a replacement by tmp, sync, rename, directory
/// sync leaves the old contents or the new ones, never a mix or nothing, whatever the
/// crash point and damage.
#[test]
fn an_atomic_replacement_leaves_old_or_new_at_every_crash_point() {
    let base = disk_with_dir();
    crate::vfs::write_atomic(&base, &p("/d/conf"), b"old contents").unwrap();
    let base = base.crash(Damage::LoseUnsynced);
    let start = base.ops();
    let probe = base.crash(Damage::Kill);
    let probe_start = probe.ops();
    crate::vfs::write_atomic(&probe, &p("/d/conf"), b"new contents!").unwrap();
    let total = probe.ops() - probe_start;
    assert!(total >= 5, "create, write, sync, rename, sync dir");
    for k in 0..=total {
        for seed in 0..20 {
            let sim = base.crash(Damage::Kill);
            sim.crash_at(Some(start + k));
            let _ = crate::vfs::write_atomic(&sim, &p("/d/conf"), b"new contents!");
            let after = sim.crash(Damage::Random(seed));
            let found = contents(&after, "/d/conf");
            assert!(
                found.as_deref() == Some(b"old contents")
                    || found.as_deref() == Some(b"new contents!"),
                "crash at op {k}, seed {seed}: {found:?}"
            );
        }
    }
}

#[test]
fn a_rename_is_never_half_applied() {
    for seed in 0..200 {
        let sim = disk_with_dir();
        sim.create_dir_all(&p("/e")).unwrap();
        sim.sync_dir(&p("/")).unwrap();
        let f = sim.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"data", 0).unwrap();
        f.sync_all().unwrap();
        sim.sync_dir(&p("/d")).unwrap();
        sim.rename(&p("/d/f"), &p("/e/g")).unwrap();
        let after = sim.crash(Damage::Random(seed));
        let old = contents(&after, "/d/f");
        let new = contents(&after, "/e/g");
        assert!(
            old.is_some() != new.is_some(),
            "seed {seed}: {:?}",
            after.list_all()
        );
    }
}

#[test]
fn syncing_one_directory_of_a_rename_makes_the_whole_rename_durable() {
    let sim = disk_with_dir();
    sim.create_dir_all(&p("/e")).unwrap();
    sim.sync_dir(&p("/")).unwrap();
    let f = sim.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
    f.sync_all().unwrap();
    sim.rename(&p("/d/f"), &p("/e/g")).unwrap();
    sim.sync_dir(&p("/e")).unwrap();
    assert_eq!(
        sim.crash(Damage::LoseUnsynced).list_all(),
        ["/d/", "/e/", "/e/g"],
        "the create of /d/f it depends on came along"
    );
}

#[test]
fn a_failed_sync_loses_the_data_reports_once_and_the_next_sync_succeeds() {
    let sim = disk_with_dir();
    let f = sim.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
    sim.sync_dir(&p("/d")).unwrap();
    f.write_all_at(b"aaaa", 0).unwrap();
    f.sync_data().unwrap();
    f.write_all_at(b"bb", 0).unwrap();
    sim.fail_next_sync(|path| path.ends_with("f"));
    assert_eq!(f.sync_data().unwrap_err().raw_os_error(), None);
    assert_eq!(sim.stats().failed_syncs, 1);
    f.sync_data().expect("the next sync reports success");
    let mut buf = [0u8; 4];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"bbaa", "still visible in the page cache");
    assert_eq!(
        contents(&sim.crash(Damage::LoseUnsynced), "/d/f").unwrap(),
        b"aaaa",
        "but never written to the disk"
    );
    // A later write to the same page is written with the page... through the events only:
    // the bytes lost stay lost where nothing rewrote them.
    f.write_all_at(b"c", 3).unwrap();
    f.sync_data().unwrap();
    assert_eq!(
        contents(&sim.crash(Damage::LoseUnsynced), "/d/f").unwrap(),
        b"aaac"
    );
}

#[test]
fn space_runs_out_at_the_capacity_and_comes_back_when_files_go() {
    let sim = disk_with_dir();
    sim.set_capacity(Some(10_000));
    let a = sim.open(&p("/d/a"), OpenMode::CreateNew).unwrap();
    a.allocate(8_000).unwrap();
    let b = sim.open(&p("/d/b"), OpenMode::CreateNew).unwrap();
    let e = b.allocate(4_000).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ENOSPC));
    assert_eq!(b.len().unwrap(), 0, "a failed allocation changes nothing");
    assert_eq!(
        b.write_all_at(&[1; 3_000], 0).unwrap_err().raw_os_error(),
        Some(ENOSPC)
    );
    assert_eq!(b.set_len(2_001).unwrap_err().raw_os_error(), Some(ENOSPC));
    b.allocate(2_000).unwrap();
    assert_eq!(sim.used_bytes(), 10_000);
    a.set_len(1_000).unwrap();
    b.allocate(5_000).unwrap();
    sim.remove_file(&p("/d/b")).unwrap();
    assert_eq!(sim.used_bytes(), 1_000);
    assert_eq!(sim.stats().no_space_errors, 3);
}

#[test]
fn operations_from_the_crash_point_on_fail_and_change_nothing() {
    let sim = disk_with_dir();
    let f = sim.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
    let at = sim.ops();
    sim.crash_at(Some(at + 1));
    f.write_all_at(b"one", 0).unwrap();
    assert!(f.write_all_at(b"two", 3).is_err());
    assert!(sim.is_frozen());
    assert!(f.sync_data().is_err());
    assert!(f.read_at(&mut [0; 3], 0).is_err(), "reads fail too");
    assert!(sim.open(&p("/d/g"), OpenMode::CreateNew).is_err());
    assert_eq!(sim.ops(), at + 1);
    let after = sim.crash(Damage::Kill);
    assert_eq!(contents(&after, "/d/f").unwrap(), b"one");
    assert!(!after.is_frozen());
}

#[test]
fn a_torn_write_is_cut_into_sectors_each_old_new_zero_or_garbage() {
    let old = vec![0xAA; 8 * SECTOR];
    let new = vec![0x55; 8 * SECTOR];
    let mut fates = BTreeSet::new();
    for seed in 0..100 {
        let sim = disk_with_dir();
        let f = sim.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
        sim.sync_dir(&p("/d")).unwrap();
        f.write_all_at(&old, 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(&new, 0).unwrap();
        let after = contents(&sim.crash(Damage::Random(seed)), "/d/f").unwrap();
        assert_eq!(after.len(), old.len());
        for sector in after.chunks(SECTOR) {
            let fate = if sector.iter().all(|&b| b == 0xAA) {
                "old"
            } else if sector.iter().all(|&b| b == 0x55) {
                "new"
            } else if sector.iter().all(|&b| b == 0) {
                "zero"
            } else {
                "garbage"
            };
            fates.insert(fate);
        }
    }
    assert_eq!(fates.len(), 4, "every fate occurs: {fates:?}");
}

#[test]
fn a_grown_size_may_persist_without_its_data() {
    let mut outcomes = BTreeSet::new();
    for seed in 0..100 {
        let sim = disk_with_dir();
        let f = sim.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
        sim.sync_dir(&p("/d")).unwrap();
        f.allocate(4_096).unwrap();
        f.write_all_at(b"tail", 100).unwrap();
        let after = contents(&sim.crash(Damage::Random(seed)), "/d/f").unwrap();
        assert!(after.is_empty() || after.len() == 104 || after.len() == 4_096);
        let data = after.get(100..104).unwrap_or_default();
        outcomes.insert((after.len(), data == b"tail"));
    }
    assert!(outcomes.contains(&(4_096, false)), "{outcomes:?}");
    assert!(outcomes.contains(&(4_096, true)), "{outcomes:?}");
    assert!(outcomes.contains(&(0, false)), "{outcomes:?}");
}

#[test]
fn crashes_are_deterministic_per_seed() {
    let sim = disk_with_dir();
    for i in 0..20u8 {
        let f = sim
            .open(&p(&format!("/d/f{i}")), OpenMode::CreateNew)
            .unwrap();
        f.write_all_at(&vec![i; 3_000], u64::from(i) * 100).unwrap();
        if i % 3 == 0 {
            f.sync_data().unwrap();
            sim.sync_dir(&p("/d")).unwrap();
        }
    }
    let image = |sim: &SimVfs| {
        sim.list_all()
            .into_iter()
            .map(|path| {
                let data = contents(sim, &path);
                (path, data)
            })
            .collect::<Vec<_>>()
    };
    for seed in 0..10 {
        assert_eq!(
            image(&sim.crash(Damage::Random(seed))),
            image(&sim.crash(Damage::Random(seed)))
        );
    }
}

#[test]
fn a_removed_tree_comes_back_in_parts_unless_synced() {
    let sim = disk_with_dir();
    for name in ["a", "b"] {
        let f = sim
            .open(&p(&format!("/d/{name}")), OpenMode::CreateNew)
            .unwrap();
        f.sync_all().unwrap();
    }
    sim.sync_dir(&p("/d")).unwrap();
    sim.remove_dir_all(&p("/d")).unwrap();
    assert!(sim.list_all().is_empty());
    assert_eq!(
        sim.crash(Damage::LoseUnsynced).list_all(),
        ["/d/", "/d/a", "/d/b"]
    );
    let mut seen = BTreeSet::new();
    for seed in 0..100 {
        seen.insert(sim.crash(Damage::Random(seed)).list_all());
    }
    assert!(seen.len() > 2, "partial removals occur: {seen:?}");
    sim.sync_dir(&p("/")).unwrap();
    assert!(sim.crash(Damage::LoseUnsynced).list_all().is_empty());
}

#[test]
fn locks_conflict_until_released() {
    let sim = disk_with_dir();
    let guard = sim.lock(&p("/d/lock")).unwrap();
    let e = sim.lock(&p("/d/lock")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    drop(guard);
    sim.lock(&p("/d/lock")).unwrap();
}

/// Writes `data` at `pos` of the file at `path` the way a mapped `memcpy` does: into the
/// memory a mapping of the file points at, without telling the simulator.
fn mapped_write(sim: &SimVfs, path: &str, pos: usize, data: &[u8]) {
    let mut st = sim.state.lock();
    let ino = st.resolve(&p(path)).unwrap();
    let f = st.file(ino).unwrap();
    f.buf.map.lock()[pos..pos + data.len()].copy_from_slice(data);
}

/// A synced file of `len` bytes at `/d/f`, mapped writable (the mapping is returned).
fn mapped_file(sim: &SimVfs, len: u64, map_len: usize) -> Box<dyn crate::vfs::RawMap> {
    let f = sim.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
    sim.sync_dir(&p("/d")).unwrap();
    f.allocate(len).unwrap();
    f.sync_all().unwrap();
    f.map(map_len, true).unwrap()
}

#[test]
fn mapped_writes_reach_the_disk_at_a_sync_or_a_kill_and_are_read_back() {
    let sim = disk_with_dir();
    let map = mapped_file(&sim, 8_192, 8_192);
    mapped_write(&sim, "/d/f", 100, b"mapped");
    let f = sim.open(&p("/d/f"), OpenMode::Read).unwrap();
    let mut buf = [0u8; 6];
    f.read_exact_at(&mut buf, 100).unwrap();
    assert_eq!(&buf, b"mapped", "a read sees the mapped write");
    let lost = contents(&sim.crash(Damage::LoseUnsynced), "/d/f").unwrap();
    assert_eq!(&lost[100..106], [0; 6], "not synced: lost in a power loss");
    let kept = contents(&sim.crash(Damage::Kill), "/d/f").unwrap();
    assert_eq!(
        &kept[100..106],
        b"mapped",
        "in the page cache: kept after a kill"
    );
    f.sync_data().unwrap();
    let synced = contents(&sim.crash(Damage::LoseUnsynced), "/d/f").unwrap();
    assert_eq!(
        &synced[100..106],
        b"mapped",
        "synced through any handle of the file"
    );
    drop(map);
}

#[test]
fn mapped_writes_after_the_freeze_never_reach_a_crash_image() {
    let sim = disk_with_dir();
    let _map = mapped_file(&sim, 4_096, 4_096);
    mapped_write(&sim, "/d/f", 0, b"before");
    sim.freeze();
    mapped_write(&sim, "/d/f", 10, b"after");
    let kept = contents(&sim.crash(Damage::Kill), "/d/f").unwrap();
    assert_eq!(&kept[..6], b"before");
    assert_eq!(&kept[10..15], [0; 5], "the process was dead by then");
}

#[test]
fn a_mapped_write_past_the_end_of_the_file_is_a_sigbus_event() {
    let sim = disk_with_dir();
    let _map = mapped_file(&sim, 4_096, 16_384);
    mapped_write(&sim, "/d/f", 4_000, b"inside");
    assert_eq!(sim.stats().sigbus_events, 0);
    mapped_write(&sim, "/d/f", 5_000, b"past the end");
    assert_eq!(sim.stats().sigbus_events, 1);
    assert_eq!(sim.stats().sigbus_events, 1, "counted once");
}

#[test]
fn growing_a_file_past_a_live_mapping_is_counted() {
    let sim = disk_with_dir();
    let map = mapped_file(&sim, 4_096, 16_384);
    let f = sim.open(&p("/d/f"), OpenMode::ReadWrite).unwrap();
    f.allocate(8_192).unwrap();
    assert_eq!(sim.stats().detached_maps, 0, "within the mapped length");
    f.allocate(1 << 20).unwrap();
    assert_eq!(sim.stats().detached_maps, 1);
    drop(map);
    f.allocate(4 << 20).unwrap();
    assert_eq!(sim.stats().detached_maps, 1, "no mapping left to detach");
}

/// A page written back after a torn write: only the bytes the write changed may be damaged,
/// never durable bytes that share its sector.
#[test]
fn damage_to_a_mapped_page_spares_the_durable_bytes_it_shares() {
    let mut damaged = 0;
    for seed in 0..64 {
        let sim = disk_with_dir();
        let _map = mapped_file(&sim, 4_096, 4_096);
        mapped_write(&sim, "/d/f", 0, &[0xAA; 300]);
        sim.open(&p("/d/f"), OpenMode::Read)
            .unwrap()
            .sync_data()
            .unwrap();
        mapped_write(&sim, "/d/f", 300, &[0x55; 300]);
        let after = contents(&sim.crash(Damage::Random(seed)), "/d/f").unwrap();
        assert_eq!(&after[..300], [0xAA; 300], "seed {seed}");
        damaged += usize::from(after[300..600] != [0x55; 300] && after[300..600] != [0; 300]);
    }
    assert!(damaged > 0, "the new bytes were garbled sometimes");
}

#[test]
fn a_failed_sync_of_mapped_data_loses_it_once_and_a_later_write_to_the_page_restores_the_page() {
    let sim = disk_with_dir();
    let _map = mapped_file(&sim, 4_096, 4_096);
    let f = sim.open(&p("/d/f"), OpenMode::Read).unwrap();
    mapped_write(&sim, "/d/f", 0, b"first");
    sim.fail_next_sync(|_| true);
    assert!(f.sync_data().is_err());
    f.sync_data().expect("the next sync succeeds");
    let lost = contents(&sim.crash(Damage::LoseUnsynced), "/d/f").unwrap();
    assert_eq!(&lost[..5], [0; 5], "marked clean, never written");
    mapped_write(&sim, "/d/f", 10, b"second");
    f.sync_data().unwrap();
    let after = contents(&sim.crash(Damage::LoseUnsynced), "/d/f").unwrap();
    assert_eq!(
        (&after[..5], &after[10..16]),
        (&b"first"[..], &b"second"[..]),
        "the page is dirty again and written whole"
    );
}

#[test]
fn a_torn_crash_gives_each_chosen_sector_its_fate() {
    let sim = disk_with_dir();
    let _map = mapped_file(&sim, 8_192, 8_192);
    mapped_write(&sim, "/d/f", 100, &[0x55; 2_000]);
    let fates = [
        Fate::Apply,
        Fate::Drop,
        Fate::Zero,
        Fate::Garbage,
        Fate::Apply,
    ];
    let torn = sim
        .crash_torn(&p("/d/f"), (100, 2_100), &fates, Damage::LoseUnsynced)
        .unwrap();
    let after = contents(&torn, "/d/f").unwrap();
    assert_eq!(
        &after[100..512],
        [0x55; 412],
        "sector 0: applied from the write's start"
    );
    assert_eq!(
        &after[512..1_024],
        [0; 512],
        "sector 1: dropped (old zeros)"
    );
    assert_eq!(&after[1_024..1_536], [0; 512], "sector 2: zeroed");
    assert!(
        after[1_536..2_048].iter().any(|&b| b != 0x55 && b != 0),
        "sector 3: garbage"
    );
    assert_eq!(&after[2_048..2_100], [0x55; 52], "sector 4: applied");
}
