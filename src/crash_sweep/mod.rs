//! The crash-consistency tier on the simulated disk ([`crate::vfs::sim`]), RELIABILITY.md
//! sections 3–5: a crash-point sweep of scripted workloads, and exhaustive torn writes.
//!
//! **Crash-point sweep** (SQLite's TH3 loop, nested as SQLite's compound failures are). A
//! workload ([`workloads`]) runs once to count its I/O operations `N`. Then, for every `k` in
//! `0..=N`, it runs again on a fresh disk that freezes at operation `k`; the workload's
//! [`model::Model`] records what the code promised until then. Each frozen disk gives `M`
//! damage variants ([`damage_of`]: a process kill, a power loss losing everything unsynced, and
//! seeded random damage), and each variant's crash image is checked:
//! 1. a Wharf opens on it (recovery must succeed and not panic) and holds what the model
//!    allows ([`model::verify`]: I1–I3, I5, I7, I8, and no SIGBUS);
//! 2. that Wharf dies, a random power loss hits what its recovery wrote, and a second
//!    recovery must give the same state (I4, idempotence);
//! 3. a third recovery of the original image is itself crashed at a random operation `j` of
//!    its own, then recovered again: the same state again (I4, an interrupted recovery).
//!
//! Everything is deterministic: the workloads use fixed sizes and run all I/O in one thread,
//! and each variant's damage comes from a seed derived from the base seed, the workload, `k`
//! and the variant. A failure prints how to replay exactly that case:
//! `SIM_SEED=<base> SIM_CASE=<workload>:<k>:<variant> cargo test --lib crash_sweep::<workload>`.
//! `WHARF_SOAK=1` runs 8 times as many variants per crash point; `SIM_SEED` alone explores
//! other damage.
//!
//! **Faults, then a crash** ([`faults`]): the workloads on a disk that fills up at every point,
//! and with each of their syncs failing in turn.
//!
//! **Regressions** ([`regressions`]): each defect the tier found, as the smallest case that
//! reproduced it.
//!
//! **Torn writes** ([`torn`]): every subset of the 8 sectors of a last batch, with the rest
//! dropped, zeroed or garbled, at 4 positions.
//!
//! Each test reports its figures ([`summary`]) on stdout (`--nocapture` shows them) and in
//! `target/reliability-summary.json`.

mod faults;
mod model;
mod regressions;
mod summary;
mod torn;
mod workloads;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use model::{Kind, Model, Recovered, Violation};
use summary::Figures;
use workloads::{Ctx, Workload};

use crate::ManualClock;
use crate::clock::Timestamp;
use crate::vfs::sim::{Damage, SimRng, SimVfs};

/// The data directory on every simulated disk.
pub(super) const DIR: &str = "/wharf";

/// Base seed when `SIM_SEED` is not set.
const DEFAULT_SEED: u64 = 0x00c0_ffee_d15c;

/// Soak runs (`WHARF_SOAK=1`) check this many times the variants per crash point.
const SOAK_FACTOR: u64 = 8;

/// Kinds of damage a variant number stands for: a kill, a power loss, random damage (twice,
/// so that random damage, which varies most, gets half the turns).
const DAMAGE_KINDS: u64 = 4;

/// How the tier runs (from the environment).
#[derive(Debug, Clone)]
struct Settings {
    base_seed: u64,
    soak: bool,
    /// `SIM_CASE=<workload>:<k>:<variant>`: run only that case.
    only: Option<(String, u64, u64)>,
}

fn settings() -> Settings {
    let base_seed = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| {
            s.strip_prefix("0x")
                .map_or_else(|| s.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
        })
        .unwrap_or(DEFAULT_SEED);
    let soak = std::env::var("WHARF_SOAK").is_ok_and(|v| v == "1");
    let only = std::env::var("SIM_CASE").ok().and_then(|case| {
        let mut parts = case.split(':');
        let name = parts.next()?.to_owned();
        let k = parts.next()?.parse().ok()?;
        let v = parts.next()?.parse().ok()?;
        Some((name, k, v))
    });
    Settings {
        base_seed,
        soak,
        only,
    }
}

/// The variant numbers checked at crash point `k`: `0..n` for `n` of at least
/// [`DAMAGE_KINDS`], otherwise `n` numbers in turn, so that every kind of damage is still
/// checked at every fourth crash point.
fn variants_of(workload: &Workload, k: u64, soak: bool) -> Vec<u64> {
    let n = if soak {
        workload.variants * SOAK_FACTOR
    } else {
        workload.variants
    };
    if n >= DAMAGE_KINDS {
        (0..n).collect()
    } else {
        (0..n).map(|i| (k + i) % DAMAGE_KINDS).collect()
    }
}

/// A seed for one case, from the base seed and the case's coordinates.
fn case_seed(base: u64, name: &str, k: u64, variant: u64) -> u64 {
    let mut h = base;
    for b in name.bytes() {
        h = SimRng::new(h ^ u64::from(b)).next_u64();
    }
    SimRng::new(h ^ (k << 20) ^ variant).next_u64()
}

/// Variant 0 is a process kill, 1 a power loss that loses everything unsynced, the others
/// seeded random damage.
fn damage_of(variant: u64, seed: u64) -> Damage {
    match variant {
        0 => Damage::Kill,
        1 => Damage::LoseUnsynced,
        _ => Damage::Random(seed),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Runs `f`, turning a panic into a violation.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, Violation> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|panic| Violation::new(Kind::Panic, format!("{what}: {}", panic_message(&*panic))))
}

/// A clock for recoveries: a day after the workload (recovery must not care).
fn later_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_millis(
        workloads::T0 + 86_400_000,
    )))
}

/// Opens a Wharf on `img`, checks it against `model`, and lets it die without closing (the
/// disk is frozen first, so nothing is written after the checks). Returns the recovered state
/// and the operations the open took.
fn recover(
    img: &SimVfs,
    model: &Model,
    damage: Damage,
    figures: &mut Figures,
) -> Result<(Recovered, u64), Violation> {
    let start = img.ops();
    let wharf = no_panic("recovery", || {
        workloads::builder(img, &later_clock()).open()
    })?
    .map_err(|e| Violation::new(Kind::OpenFailed, e.to_string()))?;
    let open_ops = img.ops() - start;
    let verified = no_panic("checking the recovered Wharf", || {
        model::verify(&wharf, img, model, damage)
    })?;
    img.freeze();
    no_panic("dropping the recovered Wharf", || drop(wharf))?;
    let (recovered, checks) = verified?;
    figures.add("acked_fsync_messages_checked", checks.fsync_acks);
    figures.add("acked_write_messages_checked", checks.write_acks);
    Ok((recovered, open_ops))
}

/// The three recoveries of one crash image (see the module docs).
fn check_image(
    img: &SimVfs,
    model: &Model,
    damage: Damage,
    seed: u64,
    figures: &mut Figures,
) -> Result<(), Violation> {
    let pristine = img.crash(Damage::Kill);
    let (first, open_ops) = recover(img, model, damage, figures)?;
    figures.add("simulated_crash_images", 1);

    let again = img.crash(Damage::Random(seed ^ 0x1d3e));
    let (second, _) = recover(&again, model, damage, figures)?;
    figures.add("simulated_crash_images", 1);
    figures.add("idempotence_reopens", 1);
    if second != first {
        return Err(Violation::new(
            Kind::NotIdempotent,
            format!(
                "a second recovery found another state: {}",
                diff(&first, &second)
            ),
        ));
    }

    if open_ops > 0 {
        let j = SimRng::new(seed ^ 0x0e57).below(open_ops);
        pristine.crash_at(Some(pristine.ops() + j));
        let interrupted = no_panic("interrupted recovery", || {
            workloads::builder(&pristine, &later_clock()).open()
        })?;
        pristine.freeze();
        no_panic("dropping an interrupted recovery", || drop(interrupted))?;
        let after = pristine.crash(Damage::Random(seed ^ 0x5ec0));
        let (third, _) = recover(&after, model, damage, figures).map_err(|v| {
            Violation::new(
                v.kind,
                format!("after a crash at op {j} of recovery: {}", v.detail),
            )
        })?;
        figures.add("simulated_crash_images", 1);
        figures.add("recovery_crash_images", 1);
        if third != first {
            return Err(Violation::new(
                Kind::NotIdempotent,
                format!(
                    "a recovery crashed at its op {j} and recovered gave another state: {}",
                    diff(&first, &third)
                ),
            ));
        }
    }
    Ok(())
}

/// The first difference between two recovered states, briefly.
fn diff(a: &Recovered, b: &Recovered) -> String {
    for (key, log) in &a.logs {
        match b.logs.get(key) {
            None => return format!("{key:?} is missing"),
            Some(other) if other.len() != log.len() => {
                return format!("{key:?} has {} records, not {}", other.len(), log.len());
            }
            Some(other) if other != log => return format!("{key:?} differs"),
            _ => {}
        }
    }
    if a.committed != b.committed {
        return format!("committed offsets {:?} vs {:?}", a.committed, b.committed);
    }
    format!("{} vs {} logs", a.logs.len(), b.logs.len())
}

/// Runs `workload` on `sim` (frozen at its crash point, if any) and lets the Wharf die.
fn run_workload(workload: &Workload, sim: &SimVfs) -> Result<Model, Violation> {
    let mut ctx = Ctx::new(sim.clone());
    no_panic("the workload", || (workload.run)(&mut ctx))?;
    sim.freeze();
    let wharf = ctx.wharf.take();
    no_panic("dropping the workload's Wharf", || drop(wharf))?;
    Ok(ctx.model)
}

/// The operations `workload` performs when nothing fails.
fn count_ops(workload: &Workload) -> u64 {
    let sim = SimVfs::new();
    let mut ctx = Ctx::new(sim.clone());
    (workload.run)(&mut ctx);
    let ops = sim.ops();
    sim.freeze();
    drop(ctx);
    ops
}

/// Sweeps the crash points `k` of `workload` with `k % shards == shard`.
fn sweep(workload: &Workload, shard: u64, shards: u64) {
    let settings = settings();
    let started = Instant::now();
    let total = count_ops(workload);
    let mut figures = Figures::default();
    let per_point = variants_of(workload, 0, settings.soak).len() as u64;
    println!(
        "crash sweep {}: {} operations, crash points {shard} mod {shards}, {per_point} \
         variants each, base seed {:#x}",
        workload.name, total, settings.base_seed
    );
    for k in (0..=total).filter(|k| k % shards == shard) {
        if settings
            .only
            .as_ref()
            .is_some_and(|(name, ok, _)| name != workload.name || *ok != k)
        {
            continue;
        }
        let sim = SimVfs::new();
        sim.crash_at(Some(k));
        let mut variant_at = None;
        let outcome = run_workload(workload, &sim).and_then(|model| {
            let stats = sim.stats();
            if stats.sigbus_events + stats.detached_maps > 0 {
                return Err(Violation::new(
                    Kind::SigBus,
                    format!("during the workload: {stats:?}"),
                ));
            }
            figures.add("distinct_crash_points", 1);
            for variant in variants_of(workload, k, settings.soak) {
                if settings
                    .only
                    .as_ref()
                    .is_some_and(|(_, _, v)| *v != variant)
                {
                    continue;
                }
                variant_at = Some(variant);
                let seed = case_seed(settings.base_seed, workload.name, k, variant);
                let damage = damage_of(variant, seed);
                let img = sim.crash(damage);
                check_image(&img, &model, damage, seed, &mut figures)
                    .map_err(|v| Violation::new(v.kind, format!("{damage:?}: {}", v.detail)))?;
            }
            Ok(())
        });
        if let Err(v) = outcome {
            let variant = variant_at.map_or_else(|| "0".to_owned(), |v| v.to_string());
            panic!(
                "crash sweep {}: crash at op {k} of {total}, variant {variant}: {v}\n  replay: \
                 SIM_SEED={:#x} SIM_CASE={}:{k}:{variant} cargo test --lib crash_sweep::{}",
                workload.name, settings.base_seed, workload.name, workload.name
            );
        }
    }
    figures.set("damage_variants", per_point);
    figures.set("base_seed", settings.base_seed);
    finish(
        &format!("crash_sweep_{}_{shard}", workload.name),
        figures,
        started,
    );
}

/// Reports a tier that passed: its counts, the zero counts it enforced (any violation fails
/// the tier at once, with its replay), and its running time.
fn finish(tier: &str, mut figures: Figures, started: Instant) {
    for zero in [
        "lost_fsync_acks",
        "lost_write_acks_under_kill",
        "corrupt_payloads_returned",
        "recovery_panics",
        "offsets_past_end",
        "sigbus_events",
    ] {
        figures.set(zero, 0);
    }
    figures.set(
        "runtime_ms",
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    );
    if settings().only.is_some() {
        // A replay of one case: its figures are not the tier's.
        println!("reliability[{tier}]: replay of SIM_CASE, figures not recorded");
        return;
    }
    summary::report(tier, &figures);
}

#[test]
fn produce_recovers_from_a_crash_at_every_even_operation() {
    sweep(&workloads::WORKLOADS[0], 0, 2);
}

#[test]
fn produce_recovers_from_a_crash_at_every_odd_operation() {
    sweep(&workloads::WORKLOADS[0], 1, 2);
}

#[test]
fn commit_recovers_from_a_crash_at_every_operation() {
    sweep(&workloads::WORKLOADS[1], 0, 1);
}

#[test]
fn retry_recovers_from_a_crash_at_every_operation() {
    sweep(&workloads::WORKLOADS[2], 0, 1);
}

#[test]
fn workloads_are_deterministic_and_do_what_they_say() {
    for workload in &workloads::WORKLOADS {
        let ops = count_ops(workload);
        assert_eq!(
            ops,
            count_ops(workload),
            "{}: same operations each run",
            workload.name
        );
        let sim = SimVfs::new();
        let model = run_workload(workload, &sim).expect("runs");
        let acked: usize = model
            .topics
            .values()
            .flat_map(|t| &t.parts)
            .flat_map(|p| &p.attempts)
            .filter(|a| a.offset.is_some())
            .count();
        assert!(
            acked >= 5,
            "{}: {acked} records acknowledged",
            workload.name
        );
        if let Some(retry) = &model.retry {
            let fates: Vec<(Option<u32>, bool)> = retry
                .fates
                .values()
                .map(|f| (f.dead_lettered, f.acked))
                .collect();
            let dead = Some(workloads::MAX_RECONSUME_TIMES);
            assert_eq!(
                fates,
                [
                    (dead, false),
                    (Some(0), false),
                    (None, true),
                    (dead, false),
                    (None, true)
                ],
                "retried to the dead-letter topic, dead-lettered, processed"
            );
        }
        let img = sim.crash(Damage::LoseUnsynced);
        let mut figures = Figures::default();
        check_image(&img, &model, Damage::LoseUnsynced, 1, &mut figures)
            .unwrap_or_else(|v| panic!("{}: {v}", workload.name));
    }
}
