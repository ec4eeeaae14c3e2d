//! The command line.
//!
//! ```text
//! wharf-compare [--workload W1,W2,...,W4b] [--systems wharf,sqlite-full,...] [--repeats N]
//!               [--quick] [--dir DIR] [--out FILE] [--list]
//! ```
//!
//! `--systems` takes variant names or families (`plain` selects every `plain-*` variant);
//! wharf's variants always run, since every ratio is against them. `--quick` divides every
//! count by 10 and makes the default repeats 2 (for smoke tests; its figures are not the
//! results).

use std::path::PathBuf;

use crate::workloads::Workload;

/// Repeats of every run without `--quick`.
pub const DEFAULT_REPEATS: usize = 5;

/// Repeats of every run with `--quick`.
pub const QUICK_REPEATS: usize = 2;

/// Counts are divided by this with `--quick`.
pub const QUICK_SCALE_DOWN: u64 = 10;

pub const USAGE: &str = "\
usage: wharf-compare [--workload W1,W2,W3,W4,W4b,W5] [--systems NAME,...] [--repeats N]
                     [--quick] [--dir DIR] [--out FILE] [--list]

  --workload   workloads to run (default: all); W4b reads back what wharf sent in batches
  --systems    variants or families to run, e.g. sqlite,plain-group (default: all; wharf always runs)
  --repeats    runs of every system per workload, interleaved in rounds (default 5; 2 with --quick)
  --quick      10x smaller counts, for smoke tests
  --dir        where the per-run temporary directories go (default: the system temp dir)
  --out        also write the report to FILE
  --list       list the variants and exit";

/// What the command line asked for.
#[derive(Debug)]
pub struct Options {
    /// Workloads to run, in order.
    pub workloads: Vec<Workload>,
    /// Variant names or families; `None` runs every variant.
    pub systems: Option<Vec<String>>,
    /// Runs of every variant per scenario.
    pub repeats: usize,
    /// Whether counts are scaled down.
    pub quick: bool,
    /// Parent of the per-run directories.
    pub dir: Option<PathBuf>,
    /// Where to write the report too.
    pub out: Option<PathBuf>,
    /// Only list the variants.
    pub list: bool,
}

impl Options {
    /// What counts are divided by.
    pub fn scale_down(&self) -> u64 {
        if self.quick { QUICK_SCALE_DOWN } else { 1 }
    }
}

/// Parses the arguments after the program name; `Err` holds the message to print.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        workloads: Workload::ALL.to_vec(),
        systems: None,
        repeats: 0,
        quick: false,
        dir: None,
        out: None,
        list: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))
        };
        match flag.as_str() {
            "--workload" | "--workloads" => options.workloads = parse_workloads(&value()?)?,
            "--systems" | "--system" => options.systems = Some(split_list(&value()?)),
            "--repeats" => {
                let text = value()?;
                options.repeats = match text.parse() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--repeats takes a positive number, not {text:?}")),
                };
            }
            "--dir" => options.dir = Some(PathBuf::from(value()?)),
            "--out" => options.out = Some(PathBuf::from(value()?)),
            "--quick" => options.quick = true,
            "--list" => options.list = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    if options.repeats == 0 {
        options.repeats = if options.quick {
            QUICK_REPEATS
        } else {
            DEFAULT_REPEATS
        };
    }
    Ok(options)
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_workloads(text: &str) -> Result<Vec<Workload>, String> {
    let mut workloads = Vec::new();
    for name in split_list(text) {
        let workload = Workload::parse(&name).ok_or_else(|| {
            format!("unknown workload {name:?}: the workloads are W1 to W5 and W4b")
        })?;
        if !workloads.contains(&workload) {
            workloads.push(workload);
        }
    }
    workloads.sort_unstable();
    if workloads.is_empty() {
        return Err("--workload names no workload".to_owned());
    }
    Ok(workloads)
}
