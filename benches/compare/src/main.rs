//! `wharf-compare`: runs the same workloads through wharf and its embedded peers (SQLite,
//! yaque, queue-file, commitlog, kafko, redb, a plain file) and prints one markdown table per
//! workload, wharf's ratio against each peer, and the team's targets.
//!
//! ```text
//! cargo run --release --manifest-path benches/compare/Cargo.toml -- --out results.md
//! ```
//!
//! `options` parses the command line, `workloads` times one run, `payloads` makes the bytes
//! every system is handed (the same borrowed `&[u8]` for all), `systems` holds one module per
//! system, `disk` measures what a run left on disk, `report` and `targets` turn the samples
//! into the report, `machine` describes where it ran.

mod disk;
mod machine;
mod options;
mod payloads;
mod report;
mod systems;
mod targets;
mod workloads;

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

use crate::options::Options;
use crate::payloads::Payloads;
use crate::report::Results;
use crate::systems::Variant;
use crate::workloads::{Scenario, Workload};

fn main() {
    let options = match options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let variants = systems::all();
    if options.list {
        list(&variants);
        return;
    }
    let selected = match select(&variants, &options) {
        Ok(selected) => selected,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let root = options.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&root).expect("create the data directory");

    let header = header(&options, &root);
    let started = Instant::now();
    let results = run(&options, &selected, &root);
    let minutes = started.elapsed().as_secs_f64() / 60.0;

    let finished = format!(
        "- took {minutes:.1} min; load average (1, 5, 15 min) at the end: {}\n",
        machine::load_average()
    );
    let notes: Vec<String> = workloads::METHOD_NOTES
        .iter()
        .chain(&systems::notes())
        .map(|note| {
            format!(
                "- {}",
                note.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })
        .collect();
    let report = [
        header,
        finished,
        results.tables(),
        targets::section(&results),
        format!("## Notes\n\n{}\n", notes.join("\n")),
    ]
    .join("\n");
    print!("{report}");
    if let Some(out) = &options.out {
        std::fs::write(out, &report).expect("write the --out file");
        eprintln!("report written to {}", out.display());
    }
}

/// Prints every variant, what its append promises, how it sends and where it runs.
fn list(variants: &[Variant]) {
    for variant in variants {
        let workloads: Vec<&str> = variant.workloads.iter().map(|w| w.name()).collect();
        println!(
            "{:<24} {:<9} {:<9} {}",
            variant.name,
            format!("{:?}", variant.guarantee),
            format!("{:?}", variant.sends),
            workloads.join(",")
        );
    }
}

/// The variants `--systems` selects (all without it), wharf's always included.
fn select<'v>(variants: &'v [Variant], options: &Options) -> Result<Vec<&'v Variant>, String> {
    let Some(filters) = &options.systems else {
        return Ok(variants.iter().collect());
    };
    for filter in filters {
        if !variants.iter().any(|v| v.is_selected_by(filter)) {
            let names: Vec<&str> = variants.iter().map(|v| v.name).collect();
            return Err(format!(
                "no system {filter:?}; the systems are: {}",
                names.join(", ")
            ));
        }
    }
    Ok(variants
        .iter()
        .filter(|v| v.is_wharf() || filters.iter().any(|f| v.is_selected_by(f)))
        .collect())
}

/// The report's first lines: the machine, the filesystem, the command.
fn header(options: &Options, root: &Path) -> String {
    let command: Vec<String> = std::env::args().map(|arg| shell_quote(&arg)).collect();
    let repeats = match options.repeats {
        1 => "1 run per system".to_owned(),
        n => format!("{n} repeats per system, interleaved"),
    };
    let quick = if options.quick {
        ", --quick (counts ÷ 10: a smoke test, not results)"
    } else {
        ""
    };
    [
        "# wharf compared with embedded queues and logs\n".to_owned(),
        format!(
            "- machine: {} CPUs (nproc), {}, {} RAM, Linux {}",
            machine::cpus(),
            machine::cpu_model(),
            machine::memory(),
            machine::kernel()
        ),
        format!(
            "- data directory: {} on {}",
            root.display(),
            machine::filesystem(root)
        ),
        format!("- command: `{}`{}", command.join(" "), launcher()),
        format!(
            "- {repeats}{quick}; started {}, load average (1, 5, 15 min) at the start: {}",
            machine::now(),
            machine::load_average()
        ),
    ]
    .join("\n")
}

/// How the binary was started, when cargo started it (`cargo run` sets `CARGO`).
fn launcher() -> String {
    match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(dir) if std::env::var_os("CARGO").is_some() => format!(
            " (by `cargo run`, manifest {}/Cargo.toml)",
            Path::new(&dir).display()
        ),
        _ => String::new(),
    }
}

/// Quotes an argument for the command line shown in the report, when it needs it.
fn shell_quote(arg: &str) -> String {
    let plain = arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+".contains(c));
    if plain && !arg.is_empty() {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// One scenario of the run: the variants that take part and the payloads they all append.
struct Planned<'v> {
    scenario: Scenario,
    runners: Vec<&'v Variant>,
    payloads: Payloads,
}

/// Every round runs every selected variant once in every scenario.
fn run<'v>(options: &Options, selected: &[&'v Variant], root: &Path) -> Results<'v> {
    let mut results = Results::default();
    let plan = plan(options, selected, &mut results);
    // Every variant of a scenario is handed these same borrowed slices.
    let slices: Vec<Vec<&[u8]>> = plan.iter().map(|p| p.payloads.slices()).collect();
    for round in 1..=options.repeats {
        for (planned, payloads) in plan.iter().zip(&slices) {
            for variant in &planned.runners {
                if !results.has_failed(&planned.scenario, variant) {
                    let label = format!("round {round}/{}", options.repeats);
                    run_once(&label, planned, payloads, variant, root, &mut results);
                }
            }
        }
    }
    results
}

/// The scenarios of the selected workloads, their variants and payloads (made here, before
/// anything is timed); every row is planned in `results` so tables keep this order.
fn plan<'v>(
    options: &Options,
    selected: &[&'v Variant],
    results: &mut Results<'v>,
) -> Vec<Planned<'v>> {
    let mut plan = Vec::new();
    for workload in &options.workloads {
        for scenario in Scenario::of(*workload, options.scale_down()) {
            let runners: Vec<&Variant> = selected
                .iter()
                .copied()
                .filter(|v| v.workloads.contains(workload))
                .collect();
            for variant in &runners {
                results.plan(scenario, variant);
            }
            eprintln!("generating payloads for {}", scenario.title());
            let payloads = scenario.payloads();
            plan.push(Planned {
                scenario,
                runners,
                payloads,
            });
        }
    }
    plan
}

/// Runs one variant once, prints its figures, and records them (or its failure: a panic in
/// one system must not lose the rest of a long run).
fn run_once<'v>(
    label: &str,
    planned: &Planned<'v>,
    payloads: &[&[u8]],
    variant: &'v Variant,
    root: &Path,
    results: &mut Results<'v>,
) {
    let scenario = &planned.scenario;
    let producers = if scenario.workload == Workload::W3 {
        format!("×{}", scenario.producers)
    } else {
        String::new()
    };
    let label = format!(
        "{label} {}{producers} {}",
        scenario.workload.name(),
        variant.name
    );
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        workloads::run(scenario, variant, root, payloads)
    }));
    match outcome {
        Ok(sample) => {
            let mut shown: Vec<String> = scenario
                .metrics()
                .iter()
                .zip(&sample.values)
                .map(|(m, v)| format!("{} {}", report::format_value(*m, *v), m.unit()))
                .collect();
            if let Some(disk) = &sample.disk {
                let payload_bytes = scenario.payload_bytes_total();
                shown.push(format!(
                    "disk {:.3} allocated, {:.3} apparent per payload byte",
                    disk.allocated_per(payload_bytes),
                    disk.apparent_per(payload_bytes)
                ));
            }
            eprintln!("{label}: {}", shown.join(", "));
            results.record(scenario, variant, sample);
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panicked".to_owned());
            eprintln!("{label}: FAILED: {message}");
            results.fail(scenario, variant, message);
        }
    }
}
