//! Faults under the workloads, then a crash (RELIABILITY.md section 4, scenarios 6 and 7):
//! - **a full disk**: the disk's capacity is set so that space runs out at a different point
//!   of the workload each run; appends fail with an error, nothing unwritten is acknowledged,
//!   and no mapped write ever lands in unreserved space (zero SIGBUS events);
//! - **a failing fsync** (Linux semantics, see [`crate::vfs::sim`]): the `j`-th sync of the
//!   workload fails, for every `j`; the data it should have made durable is lost to the disk
//!   but stays readable, so a sync retried and reported as success would show up as a lost
//!   acknowledgement after the crash.
//!
//! Each run ends with the disk frozen; its crash images (a kill, a power loss, random damage)
//! are checked as in the sweep ([`super::check_image`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::model::{Kind, Model, Violation};
use super::summary::Figures;
use super::workloads::{Ctx, WORKLOADS, Workload};
use super::{DAMAGE_KINDS, case_seed, check_image, damage_of, finish, no_panic, settings};
use crate::vfs::sim::SimVfs;

/// Capacities tried per workload in the full-disk tier.
const CAPACITY_STEPS: u64 = 40;

/// Runs `workload` on a fresh disk prepared by `fault`, freezes it at the end, and checks one
/// crash image per kind of damage.
fn run_and_check(
    workload: &Workload,
    case: &str,
    fault: impl FnOnce(&SimVfs),
    figures: &mut Figures,
) -> Result<(), Violation> {
    let sim = SimVfs::new();
    fault(&sim);
    let mut ctx = Ctx::new(sim.clone());
    no_panic("the workload", || (workload.run)(&mut ctx))?;
    sim.freeze();
    let wharf = ctx.wharf.take();
    no_panic("dropping the workload's Wharf", || drop(wharf))?;
    let model: Model = ctx.model;
    let stats = sim.stats();
    if stats.sigbus_events + stats.detached_maps > 0 {
        return Err(Violation::new(Kind::SigBus, format!("{stats:?}")));
    }
    figures.add("fault_runs", 1);
    let base = settings().base_seed;
    for variant in 0..DAMAGE_KINDS {
        let seed = case_seed(base, case, 0, variant);
        let damage = damage_of(variant, seed);
        let img = sim.crash(damage);
        still_full(&img, &model)?;
        img.set_capacity(None);
        check_image(&img, &model, damage, seed, figures)
            .map_err(|v| Violation::new(v.kind, format!("{damage:?}: {}", v.detail)))?;
    }
    Ok(())
}

/// A crash image of a full disk is still full: opening it may fail, but only with an I/O
/// error (no space to recover into), never with a panic or a verdict of corruption. The disk
/// is left as it was.
fn still_full(img: &SimVfs, model: &Model) -> Result<(), Violation> {
    let copy = img.crash(crate::vfs::sim::Damage::Kill);
    let opened = no_panic("recovery on a full disk", || {
        super::workloads::builder(&copy, &super::later_clock()).open()
    })?;
    match opened {
        Ok(wharf) => {
            copy.freeze();
            no_panic("dropping the Wharf", || drop(wharf))?;
            Ok(())
        }
        Err(e) if matches!(e.kind(), crate::ErrorKind::Io { .. }) => Ok(()),
        Err(e) => Err(Violation::new(
            Kind::OpenFailed,
            format!(
                "on a full disk ({} topics in the model): {e}",
                model.topics.len()
            ),
        )),
    }
}

/// The bytes `workload` reserves on a disk with no limit.
fn space_used(workload: &Workload) -> u64 {
    let sim = SimVfs::new();
    let mut ctx = Ctx::new(sim.clone());
    (workload.run)(&mut ctx);
    let used = sim.used_bytes();
    sim.freeze();
    drop(ctx);
    used
}

/// The syncs `workload` makes when none fails.
fn syncs_made(workload: &Workload) -> u64 {
    let sim = SimVfs::new();
    let count = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&count);
    sim.fail_next_sync(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        false
    });
    let mut ctx = Ctx::new(sim.clone());
    (workload.run)(&mut ctx);
    sim.freeze();
    drop(ctx);
    count.load(Ordering::SeqCst)
}

#[test]
fn a_full_disk_fails_appends_cleanly_at_every_point_and_recovers() {
    let started = Instant::now();
    let mut figures = Figures::default();
    for workload in &WORKLOADS[..2] {
        let used = space_used(workload);
        for step in 1..=CAPACITY_STEPS {
            let capacity = used * step / (CAPACITY_STEPS + 1);
            let case = format!("{}-full-{step}", workload.name);
            run_and_check(
                workload,
                &case,
                |sim| sim.set_capacity(Some(capacity)),
                &mut figures,
            )
            .unwrap_or_else(|v| {
                panic!(
                    "{}: disk of {capacity} bytes (of {used} used): {v}",
                    workload.name
                )
            });
        }
    }
    finish("full_disk", figures, started);
}

#[test]
fn a_failed_fsync_is_never_reported_as_success_at_any_sync() {
    let started = Instant::now();
    let mut figures = Figures::default();
    for workload in &WORKLOADS[..2] {
        let syncs = syncs_made(workload);
        assert!(syncs > 20, "{}: {syncs} syncs", workload.name);
        for j in 0..syncs {
            let case = format!("{}-eio-{j}", workload.name);
            let fail_j = |sim: &SimVfs| {
                let seen = AtomicU64::new(0);
                sim.fail_next_sync(move |_| seen.fetch_add(1, Ordering::SeqCst) == j);
            };
            run_and_check(workload, &case, fail_j, &mut figures)
                .unwrap_or_else(|v| panic!("{}: sync {j} of {syncs} failed: {v}", workload.name));
        }
        figures.add("failed_syncs", syncs);
    }
    finish("failed_fsync", figures, started);
}
