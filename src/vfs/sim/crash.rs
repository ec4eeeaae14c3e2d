//! Building a post-crash disk: the fate of every unsynced write, size change and directory
//! operation, as a [`Damage`] decides.

use std::collections::BTreeMap;
use std::io;

use super::disk::{DirNode, FileNode, Ino, Inode, ROOT, State, to_usize};
use super::image::{Buffer, Event, Image, read_image};
use super::{Damage, SECTOR_BYTES, SimRng};

/// The fates a [`Damage`] gives, as weights.
#[derive(Debug, Clone, Copy)]
pub(super) struct Odds {
    pub(super) apply: u64,
    pub(super) drop: u64,
    pub(super) zero: u64,
    pub(super) garbage: u64,
    pub(super) keep_resize: u64,
    pub(super) keep_dir_op: u64,
}

/// What a crash does to a sector (or page) written since the last sync. Only the bytes the
/// write changed are affected (see [`changed_runs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// The new bytes reached the disk.
    Apply,
    /// The old bytes stayed.
    Drop,
    /// Zeros reached the disk (a size that persisted without its data).
    Zero,
    /// Garbage reached the disk (a torn write).
    Garbage,
}

impl Odds {
    pub(super) fn of(damage: Damage, rng: &mut SimRng) -> Odds {
        match damage {
            Damage::Kill => Odds {
                apply: 1,
                drop: 0,
                zero: 0,
                garbage: 0,
                keep_resize: 100,
                keep_dir_op: 100,
            },
            Damage::LoseUnsynced => Odds {
                apply: 0,
                drop: 1,
                zero: 0,
                garbage: 0,
                keep_resize: 0,
                keep_dir_op: 0,
            },
            Damage::Random(_) => {
                let mut odds = Odds {
                    apply: rng.below(5),
                    drop: rng.below(5),
                    zero: rng.below(3),
                    garbage: rng.below(3),
                    keep_resize: rng.below(101),
                    keep_dir_op: rng.below(101),
                };
                if odds.apply + odds.drop + odds.zero + odds.garbage == 0 {
                    odds.drop = 1;
                }
                odds
            }
        }
    }

    pub(super) fn fate(&self, rng: &mut SimRng) -> Fate {
        let total = self.apply + self.drop + self.zero + self.garbage;
        let mut pick = rng.below(total);
        for (weight, fate) in [
            (self.apply, Fate::Apply),
            (self.drop, Fate::Drop),
            (self.zero, Fate::Zero),
        ] {
            if pick < weight {
                return fate;
            }
            pick -= weight;
        }
        Fate::Garbage
    }
}

pub(super) fn apply_fate(image: &mut Image, pos: u64, data: &[u8], fate: Fate, rng: &mut SimRng) {
    match fate {
        Fate::Apply => image.write(pos, data),
        Fate::Drop => {}
        Fate::Zero => image.write(pos, &vec![0; data.len()]),
        Fate::Garbage => {
            let mut junk = vec![0; data.len()];
            rng.fill(&mut junk);
            image.write(pos, &junk);
        }
    }
}

/// The bytes of `new_image` in `[start, end)` that differ from `old_image`: per sector, the run
/// from its first to its last changed byte. A page written back rewrites its unchanged bytes
/// with the values they had, and a power loss damages only what a write changed (disks are
/// assumed "powersafe": SQLite's `POWERSAFE_OVERWRITE`), so unchanged durable bytes that share
/// a page or sector with new ones are never damaged.
pub(super) fn changed_runs(
    new_image: &Image,
    old_image: &Image,
    start: u64,
    end: u64,
) -> Vec<(u64, Vec<u8>)> {
    let mut runs = Vec::new();
    let (mut new, mut old) = (Vec::new(), Vec::new());
    let mut sector = start;
    while sector < end {
        let stop = ((sector / SECTOR_BYTES + 1) * SECTOR_BYTES).min(end);
        let len = to_usize(stop - sector);
        new.resize(len, 0);
        old.resize(len, 0);
        read_image(new_image, sector, &mut new);
        read_image(old_image, sector, &mut old);
        let first = new.iter().zip(&old).position(|(a, b)| a != b);
        let last = new.iter().zip(&old).rposition(|(a, b)| a != b);
        if let (Some(first), Some(last)) = (first, last) {
            runs.push((sector + first as u64, new[first..=last].to_vec()));
        }
        sector = stop;
    }
    runs
}

/// What a crash leaves of one file.
pub(super) fn crashed_file(f: &FileNode, damage: Damage, odds: &Odds, rng: &mut SimRng) -> Image {
    if damage == Damage::Kill {
        // The page cache outlives the process, data a failed sync lost to the disk included.
        let mut image = f.volatile();
        image.trim();
        return image;
    }
    let mut image = f.durable.clone();
    for event in &f.events {
        match event {
            Event::Write { pos, data } => {
                let mut at = *pos;
                let end = pos + data.len() as u64;
                while at < end {
                    let stop = ((at / SECTOR_BYTES + 1) * SECTOR_BYTES).min(end);
                    let piece = &data[to_usize(at - pos)..to_usize(stop - pos)];
                    apply_fate(&mut image, at, piece, odds.fate(rng), rng);
                    at = stop;
                }
            }
            Event::Resize(len) => {
                if rng.chance(odds.keep_resize) {
                    image.resize(*len);
                }
            }
        }
    }
    if f.maybe_mapped_dirt {
        let volatile = f.volatile();
        let explained = f.explained();
        for (start, end) in FileNode::dirty_pages(&volatile, &explained) {
            let fate = odds.fate(rng);
            for (at, data) in changed_runs(&volatile, &explained, start, end.min(image.len)) {
                apply_fate(&mut image, at, &data, fate, rng);
            }
        }
    }
    image.trim();
    image
}

/// A file of a post-crash disk holding `image`, durable as it is.
pub(super) fn survivor(image: &Image) -> io::Result<FileNode> {
    let mut node = FileNode::new()?;
    node.buf = Buffer::new(image.len)?;
    node.buf.map.lock()[..image.bytes.len()].copy_from_slice(&image.bytes);
    node.len = image.len;
    node.durable = image.clone();
    node.reserved = image.len;
    Ok(node)
}

/// The sectors of one file whose fates a test chooses ([`super::SimVfs::crash_torn`]).
#[derive(Debug)]
pub(super) struct Torn<'a> {
    pub(super) ino: Ino,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) fates: &'a [Fate],
}

/// What a torn crash leaves of the file `torn` names: what was written, except in the chosen
/// sectors, whose changed bytes get their fates.
fn torn_file(f: &FileNode, torn: &Torn<'_>, rng: &mut SimRng) -> Image {
    let volatile = f.volatile();
    let mut image = volatile.clone();
    let first_sector = torn.start / SECTOR_BYTES;
    let mut sector = first_sector * SECTOR_BYTES;
    while sector < torn.end {
        let stop = (sector + SECTOR_BYTES).min(torn.end);
        let i = to_usize(sector / SECTOR_BYTES - first_sector);
        let fate = torn.fates.get(i).copied().unwrap_or(Fate::Apply);
        for (at, data) in changed_runs(&volatile, &f.durable, sector.max(torn.start), stop) {
            let mut old = vec![0; data.len()];
            read_image(&f.durable, at, &mut old);
            match fate {
                Fate::Drop => image.write(at, &old),
                fate => apply_fate(&mut image, at, &data, fate, rng),
            }
        }
        sector = stop;
    }
    image.trim();
    image
}

/// The post-crash state of `st` (see the module docs of [`super`]): directory operations not
/// synced are kept or dropped, each reachable file gets what `damage` (or `torn`) leaves of it,
/// and everything left is durable.
pub(super) fn rebuild(st: &State, damage: Damage, torn: Option<&Torn<'_>>) -> State {
    let mut rng = SimRng::new(match damage {
        Damage::Random(seed) => seed,
        Damage::Kill | Damage::LoseUnsynced => 0,
    });
    let odds = Odds::of(damage, &mut rng);
    let mut durable = st.durable_entries();
    for op in &st.pending {
        if rng.chance(odds.keep_dir_op) {
            op.apply(&mut durable);
        }
    }
    let mut out = State::new();
    out.capacity = st.capacity;
    // Each inode is rebuilt once, even if it were reachable twice.
    let mut rebuilt: BTreeMap<Ino, Ino> = BTreeMap::new();
    rebuilt.insert(ROOT, ROOT);
    let mut queue = vec![ROOT];
    while let Some(old) = queue.pop() {
        let entries = durable.get(&old).cloned().unwrap_or_default();
        let mut dir = DirNode::default();
        for (name, child) in entries {
            if let Some(&id) = rebuilt.get(&child) {
                if matches!(out.inodes.get(&id), Some(Inode::File(_))) {
                    dir.entries.insert(name, id);
                }
                continue;
            }
            let node = match st.inodes.get(&child) {
                Some(Inode::Dir(_)) => Inode::Dir(DirNode::default()),
                Some(Inode::File(f)) => {
                    let image = match torn {
                        Some(t) if t.ino == child => torn_file(f, t, &mut rng),
                        _ => crashed_file(f, damage, &odds, &mut rng),
                    };
                    match survivor(&image) {
                        Ok(node) => Inode::File(node),
                        Err(_) => continue,
                    }
                }
                None => continue,
            };
            let is_dir = matches!(node, Inode::Dir(_));
            let id = out.alloc_ino(node);
            if let Some(Inode::File(f)) = out.inodes.get(&id) {
                out.used += f.reserved;
            }
            rebuilt.insert(child, id);
            dir.entries.insert(name, id);
            if is_dir {
                queue.push(child);
            }
        }
        dir.durable = dir.entries.clone();
        let id = rebuilt.get(&old).copied().unwrap_or(ROOT);
        out.inodes.insert(id, Inode::Dir(dir));
    }
    out
}
