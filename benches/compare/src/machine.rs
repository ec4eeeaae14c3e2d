//! What the report says about where it ran: CPUs, CPU model, memory, kernel, the data
//! directory's filesystem, the load average, and the date.
//!
//! Read from `/proc` and from `stat -f` (Linux). Anything unreadable prints as `unknown`
//! rather than failing the run. The load average is worth reading next to the figures: other
//! processes (compilers, on a shared machine) take CPU from the runs, which is why repeats are
//! interleaved and every ratio compares medians from the same run.

use std::fs;
use std::path::Path;
use std::process::Command;

const UNKNOWN: &str = "unknown";

/// `nproc`: the CPUs this process may use.
pub fn cpus() -> String {
    std::thread::available_parallelism().map_or_else(|_| UNKNOWN.to_owned(), |n| n.to_string())
}

/// The first `model name` of `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| UNKNOWN.to_owned())
}

/// The kernel release.
pub fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| UNKNOWN.to_owned(), |release| release.trim().to_owned())
}

/// Total memory, in GiB.
pub fn memory() -> String {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|line| line.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{} GiB", kib.div_ceil(1 << 20)))
        })
        .unwrap_or_else(|| UNKNOWN.to_owned())
}

/// The filesystem holding `dir`: the type, device and mount point from `/proc/mounts` (the
/// longest mount point that contains `dir`), and what `stat -f -c %T` calls it.
pub fn filesystem(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mount = fs::read_to_string("/proc/mounts").ok().and_then(|mounts| {
        mounts
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let device = fields.next()?;
                let point = fields.next()?;
                let kind = fields.next()?;
                dir.starts_with(point)
                    .then(|| (point.len(), format!("{kind} ({device} mounted on {point})")))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, mount)| mount)
    });
    let stat = command_output("stat", &["-f", "-c", "%T", &dir.to_string_lossy()]);
    format!(
        "{}; `stat -f -c %T`: {}",
        mount.unwrap_or_else(|| UNKNOWN.to_owned()),
        stat.unwrap_or_else(|| UNKNOWN.to_owned())
    )
}

/// `/proc/loadavg`'s 1-, 5- and 15-minute averages.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg").map_or_else(
        |_| UNKNOWN.to_owned(),
        |load| {
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

/// The current UTC time, as `date -u` prints it.
pub fn now() -> String {
    command_output("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]).unwrap_or_else(|| UNKNOWN.to_owned())
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
