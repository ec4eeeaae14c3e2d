//! The samples of one harness run, their summaries, wharf's ratios, and the markdown report.
//!
//! Every figure in a report comes from the same run: per scenario and variant, the median of
//! the repeats and their min–max. A ratio divides wharf's median by the peer's (the peer's by
//! wharf's for latencies), so above 1 always means wharf is faster. The wharf variant a peer
//! is compared with is the one that makes the same promise when an append returns (the same
//! [`Guarantee`]) and sends the same way (one message per call, or batches: [`Sends`]), else
//! the one with the same promise; where the scenario has no such wharf variant (the reads),
//! it is the scenario's fastest wharf variant.
//!
//! W1 and W5 add the disk: the main table's last column is the median allocated bytes per
//! payload byte, and a second table gives allocated and apparent bytes (see `disk.rs`). The
//! W4b table adds the W4 rows of the other variants for reference (their files do not depend
//! on how the records were sent), with wharf's W4b median divided by their W4 medians.

use crate::disk::DiskUsage;
use crate::systems::{Guarantee, Sends, Variant};
use crate::workloads::{Metric, Sample, Scenario, Workload};

/// The median and range of one metric over the repeats.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Summary {
    /// The summary of `values`; `None` if there are none.
    fn of(mut values: Vec<f64>) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        let median = if values.len().is_multiple_of(2) {
            f64::midpoint(values[mid - 1], values[mid])
        } else {
            values[mid]
        };
        Some(Summary {
            median,
            min: values[0],
            max: values[values.len() - 1],
        })
    }
}

/// A wharf-versus-peer ratio and the wharf variant it used.
#[derive(Clone, Copy)]
pub struct Ratio<'v> {
    /// Above 1: wharf is faster.
    pub value: f64,
    /// The wharf variant compared.
    pub wharf: &'v Variant,
}

/// One variant's runs in one scenario.
struct Row<'v> {
    scenario: Scenario,
    variant: &'v Variant,
    samples: Vec<Sample>,
    failure: Option<String>,
}

/// Everything one harness run measured, in the order it was planned.
#[derive(Default)]
pub struct Results<'v> {
    rows: Vec<Row<'v>>,
}

impl<'v> Results<'v> {
    /// Plans a row (rows print in the order they were planned).
    pub fn plan(&mut self, scenario: Scenario, variant: &'v Variant) {
        self.rows.push(Row {
            scenario,
            variant,
            samples: Vec::new(),
            failure: None,
        });
    }

    fn row_mut(&mut self, scenario: &Scenario, name: &str) -> &mut Row<'v> {
        self.rows
            .iter_mut()
            .find(|row| row.scenario == *scenario && row.variant.name == name)
            .expect("every run was planned")
    }

    /// Adds one run's sample.
    pub fn record(&mut self, scenario: &Scenario, variant: &Variant, sample: Sample) {
        self.row_mut(scenario, variant.name).samples.push(sample);
    }

    /// Marks a variant as failed in a scenario (it is not run there again).
    pub fn fail(&mut self, scenario: &Scenario, variant: &Variant, message: String) {
        self.row_mut(scenario, variant.name).failure = Some(message);
    }

    /// Whether the variant failed earlier in this scenario.
    pub fn has_failed(&self, scenario: &Scenario, variant: &Variant) -> bool {
        self.rows.iter().any(|row| {
            row.scenario == *scenario && row.variant.name == variant.name && row.failure.is_some()
        })
    }

    /// The scenarios, in planned order.
    pub fn scenarios(&self) -> Vec<Scenario> {
        let mut scenarios: Vec<Scenario> = Vec::new();
        for row in &self.rows {
            if !scenarios.contains(&row.scenario) {
                scenarios.push(row.scenario);
            }
        }
        scenarios
    }

    /// The summary of metric `metric` (an index into the scenario's metrics).
    pub fn summary(&self, scenario: &Scenario, name: &str, metric: usize) -> Option<Summary> {
        let row = self
            .rows
            .iter()
            .find(|row| row.scenario == *scenario && row.variant.name == name)?;
        Summary::of(row.samples.iter().map(|s| s.values[metric]).collect())
    }

    /// The variant called `name`, if it was planned in `scenario`.
    pub fn variant(&self, scenario: &Scenario, name: &str) -> Option<&'v Variant> {
        self.rows
            .iter()
            .find(|row| row.scenario == *scenario && row.variant.name == name)
            .map(|row| row.variant)
    }

    /// The summary of the disk usage of a variant's runs: allocated bytes, apparent bytes.
    fn disk_summary(&self, scenario: &Scenario, name: &str) -> Option<(Summary, Summary)> {
        let row = self
            .rows
            .iter()
            .find(|row| row.scenario == *scenario && row.variant.name == name)?;
        let usages: Vec<DiskUsage> = row.samples.iter().filter_map(|s| s.disk).collect();
        #[expect(clippy::cast_precision_loss, reason = "sizes stay far below 2^52")]
        let summary = |bytes: fn(&DiskUsage) -> u64| {
            Summary::of(usages.iter().map(|u| bytes(u) as f64).collect())
        };
        Some((
            summary(|u| u.allocated_bytes)?,
            summary(|u| u.apparent_bytes)?,
        ))
    }

    /// The wharf variant `peer` is compared with in `scenario`, and its summary.
    fn wharf_reference(
        &self,
        scenario: &Scenario,
        peer: &Variant,
        metric: usize,
    ) -> Option<(&'v Variant, Summary)> {
        let higher_is_better = scenario.metrics()[metric].higher_is_better();
        let candidates: Vec<(&'v Variant, Summary)> = self
            .rows
            .iter()
            .filter(|row| row.scenario == *scenario && row.variant.is_wharf())
            .filter_map(|row| {
                Some((
                    row.variant,
                    self.summary(scenario, row.variant.name, metric)?,
                ))
            })
            .collect();
        let same_sends = |v: &Variant| v.guarantee == peer.guarantee && v.sends == peer.sends;
        if let Some(same) = candidates.iter().find(|(v, _)| same_sends(v)) {
            return Some(*same);
        }
        if let Some(same) = candidates
            .iter()
            .find(|(v, _)| v.guarantee == peer.guarantee)
        {
            return Some(*same);
        }
        candidates.into_iter().max_by(|(_, a), (_, b)| {
            let order = a.median.total_cmp(&b.median);
            if higher_is_better {
                order
            } else {
                order.reverse()
            }
        })
    }

    /// wharf's ratio against the peer `peer` in `scenario` for metric `metric`.
    pub fn ratio(&self, scenario: &Scenario, peer: &Variant, metric: usize) -> Option<Ratio<'v>> {
        self.ratio_across(scenario, scenario, peer, metric)
    }

    /// wharf's ratio in `ours` against the peer `peer` in `theirs` (the same scenario, but for
    /// W4b's reference rows, which are W4's).
    fn ratio_across(
        &self,
        ours: &Scenario,
        theirs: &Scenario,
        peer: &Variant,
        metric: usize,
    ) -> Option<Ratio<'v>> {
        let scenario = ours;
        let theirs = self.summary(theirs, peer.name, metric)?;
        let (wharf, ours) = self.wharf_reference(scenario, peer, metric)?;
        let value = if scenario.metrics()[metric].higher_is_better() {
            ours.median / theirs.median
        } else {
            theirs.median / ours.median
        };
        Some(Ratio { value, wharf })
    }

    /// The failures, as `(scenario, variant, message)`.
    fn failures(&self) -> impl Iterator<Item = (&Scenario, &str, &str)> {
        self.rows.iter().filter_map(|row| {
            row.failure
                .as_deref()
                .map(|message| (&row.scenario, row.variant.name, message))
        })
    }

    /// One markdown section per scenario, a table per metric.
    pub fn tables(&self) -> String {
        let mut out = String::new();
        for scenario in self.scenarios() {
            out.push_str(&format_section_title(&scenario));
            for (index, metric) in scenario.metrics().iter().enumerate() {
                if scenario.metrics().len() > 1 {
                    out.extend([metric.label(), ":\n\n"]);
                }
                out.push_str(&self.table(&scenario, index, *metric));
                out.push('\n');
            }
            if scenario.workload.measures_disk() {
                out.push_str(&self.disk_table(&scenario));
                out.push('\n');
            }
        }
        let failures: Vec<String> = self
            .failures()
            .map(|(scenario, name, message)| format!("- {} {name}: {message}\n", scenario.title()))
            .collect();
        if !failures.is_empty() {
            out.push_str("## Failed runs\n\n");
            out.extend(failures);
            out.push('\n');
        }
        out
    }

    /// One metric's table: a row per variant, in planned order (W4b's followed by W4's, for
    /// reference).
    fn table(&self, scenario: &Scenario, index: usize, metric: Metric) -> String {
        let mut rows: Vec<String> = self
            .rows
            .iter()
            .filter(|row| row.scenario == *scenario)
            .map(|row| self.table_row(scenario, scenario, row.variant, index, metric))
            .collect();
        if let Some(w4) = self.w4_of(scenario) {
            rows.extend(
                self.rows
                    .iter()
                    .filter(|row| row.scenario == w4)
                    .map(|row| self.table_row(scenario, &w4, row.variant, index, metric)),
            );
        }
        let second = if scenario.workload.is_read() {
            "read with"
        } else {
            "append returns"
        };
        let (disk, disk_align) = if scenario.workload.measures_disk() {
            (" disk ÷ payload (allocated) |", "---:|")
        } else {
            ("", "")
        };
        let mut out = format!(
            "| system | {second} | median | min–max | unit | wharf ratio |{disk}\n\
             |---|---|---:|---:|---|---|{disk_align}\n"
        );
        out.extend(rows);
        out
    }

    /// The W4 scenario whose rows W4b's table repeats for reference.
    fn w4_of(&self, scenario: &Scenario) -> Option<Scenario> {
        if scenario.workload != Workload::W4b {
            return None;
        }
        self.scenarios().into_iter().find(|s| {
            s.workload == Workload::W4
                && (s.records, s.payload_bytes) == (scenario.records, scenario.payload_bytes)
        })
    }

    /// One variant's row of the table of `ours`, with its figures from `theirs` (the same
    /// scenario, except for W4b's reference rows from W4).
    fn table_row(
        &self,
        ours: &Scenario,
        theirs: &Scenario,
        variant: &Variant,
        index: usize,
        metric: Metric,
    ) -> String {
        let name = if ours == theirs {
            variant.name.to_owned()
        } else {
            format!("{} ({})", variant.name, theirs.workload.name())
        };
        let second = if ours.workload.is_read() {
            variant.reads.unwrap_or("").to_owned()
        } else {
            append_label(variant)
        };
        let Some(summary) = self.summary(theirs, variant.name, index) else {
            return format!("| {name} | {second} | failed | | | |\n");
        };
        let ratio = if variant.is_wharf() {
            "—".to_owned()
        } else {
            self.ratio_across(ours, theirs, variant, index).map_or_else(
                || "n/a".to_owned(),
                |r| format!("{:.2}× (vs {})", r.value, r.wharf.name),
            )
        };
        let disk = if theirs.workload.measures_disk() {
            let allocated = self.disk_summary(theirs, variant.name).map_or_else(
                || "n/a".to_owned(),
                |(allocated, _)| per_payload_byte(theirs, allocated.median),
            );
            format!(" {allocated} |")
        } else {
            String::new()
        };
        format!(
            "| {name} | {second} | {} | {}–{} | {} | {ratio} |{disk}\n",
            format_value(metric, summary.median),
            format_value(metric, summary.min),
            format_value(metric, summary.max),
            metric.unit(),
        )
    }

    /// W1's and W5's second table: what each closed system left on disk, allocated and
    /// apparent (medians of the runs).
    fn disk_table(&self, scenario: &Scenario) -> String {
        let mut out = format!(
            "On disk once closed ({} of payload; every regular file under the system's \
             directory, allocated = st_blocks × 512, apparent = file lengths; medians):\n\n",
            mebibytes(scenario.payload_bytes_total())
        );
        out.push_str(
            "| system | allocated | apparent | allocated ÷ payload | apparent ÷ payload |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|\n");
        out.extend(
            self.rows
                .iter()
                .filter(|row| row.scenario == *scenario)
                .map(|row| self.disk_row(scenario, row.variant.name)),
        );
        out
    }

    /// One variant's row of the disk table.
    fn disk_row(&self, scenario: &Scenario, name: &str) -> String {
        let Some((allocated, apparent)) = self.disk_summary(scenario, name) else {
            return format!("| {name} | failed | | | |\n");
        };
        format!(
            "| {name} | {} | {} | {} | {} |\n",
            mebibytes_f(allocated.median),
            mebibytes_f(apparent.median),
            per_payload_byte(scenario, allocated.median),
            per_payload_byte(scenario, apparent.median),
        )
    }
}

/// `bytes` divided by the payload bytes a run of `scenario` wrote, e.g. `1.080`.
#[expect(clippy::cast_precision_loss, reason = "sizes stay far below 2^52")]
fn per_payload_byte(scenario: &Scenario, bytes: f64) -> String {
    format!("{:.3}", bytes / scenario.payload_bytes_total() as f64)
}

/// `bytes` in MiB, e.g. `95.4 MiB`.
#[expect(clippy::cast_precision_loss, reason = "sizes stay far below 2^52")]
fn mebibytes(bytes: u64) -> String {
    mebibytes_f(bytes as f64)
}

/// `bytes` (a median, so possibly a half) in MiB.
fn mebibytes_f(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / f64::from(1u32 << 20))
}

/// The second column of an append table: what a returned append has done, and how it sends.
fn append_label(variant: &Variant) -> String {
    let guarantee = guarantee_label(variant.guarantee);
    match variant.sends {
        Sends::OneByOne => guarantee.to_owned(),
        Sends::Batches => format!(
            "{guarantee}, batches of {}",
            thousands(crate::systems::SEND_BATCH as u64)
        ),
    }
}

/// A scenario's section heading.
fn format_section_title(scenario: &Scenario) -> String {
    format!("## {}\n\n", scenario.title())
}

/// What a returned append has done, for the table.
fn guarantee_label(guarantee: Guarantee) -> &'static str {
    match guarantee {
        Guarantee::Buffered => "buffered",
        Guarantee::Written => "written",
        Guarantee::Synced => "synced",
    }
}

/// A value in its metric's unit: whole messages per second, milliseconds to the microsecond.
pub fn format_value(metric: Metric, value: f64) -> String {
    match metric {
        Metric::Throughput => thousands(rounded(value)),
        Metric::P50 | Metric::P99 => format!("{value:.3}"),
    }
}

/// `value` rounded to a whole number (negative and non-finite values give 0).
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "rates are positive and far below 2^64"
)]
fn rounded(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 {
        value.round() as u64
    } else {
        0
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systems;

    fn sample(rate: f64, allocated_bytes: u64) -> Sample {
        Sample {
            values: vec![rate],
            disk: Some(DiskUsage {
                allocated_bytes,
                apparent_bytes: allocated_bytes - 1,
                file_count: 1,
            }),
        }
    }

    #[test]
    fn a_peer_is_compared_with_the_wharf_variant_that_sends_the_same_way() {
        let variants = systems::all();
        let by_name = |name: &str| {
            variants
                .iter()
                .find(|v| v.name == name)
                .expect("a variant of that name")
        };
        let w1 = Scenario::of(Workload::W1, 1)[0];
        let mut results = Results::default();
        for (name, rate) in [
            ("wharf-write", 100.0),
            ("wharf-batch", 400.0),
            ("commitlog", 50.0),
            ("commitlog-batch", 800.0),
        ] {
            results.plan(w1, by_name(name));
            results.record(&w1, by_name(name), sample(rate, 200_000_000));
        }
        let one = results
            .ratio(&w1, by_name("commitlog"), 0)
            .expect("a ratio");
        assert_eq!((one.wharf.name, one.value), ("wharf-write", 2.0));
        let batch = results
            .ratio(&w1, by_name("commitlog-batch"), 0)
            .expect("a ratio");
        assert_eq!((batch.wharf.name, batch.value), ("wharf-batch", 0.5));

        let tables = results.tables();
        assert!(
            tables.contains("| commitlog-batch | written, batches of 1,000 | 800 | 800–800 | msgs/s | 0.50× (vs wharf-batch) | 2.000 |"),
            "{tables}"
        );
        assert!(
            tables.contains("| commitlog | 190.7 MiB | 190.7 MiB | 2.000 | 2.000 |"),
            "{tables}"
        );
    }

    #[test]
    fn the_w4b_table_repeats_the_w4_rows_against_wharf_batch() {
        let variants = systems::all();
        let by_name = |name: &str| {
            variants
                .iter()
                .find(|v| v.name == name)
                .expect("a variant of that name")
        };
        let w4 = Scenario::of(Workload::W4, 1)[0];
        let w4b = Scenario::of(Workload::W4b, 1)[0];
        let mut results = Results::default();
        for (scenario, name, rate) in [
            (w4, "wharf-write", 5.0),
            (w4, "commitlog", 10.0),
            (w4b, "wharf-batch", 20.0),
        ] {
            results.plan(scenario, by_name(name));
            let only_rate = Sample {
                values: vec![rate],
                disk: None,
            };
            results.record(&scenario, by_name(name), only_rate);
        }
        let tables = results.tables();
        let w4b_table = &tables[tables.find("## W4b").expect("a W4b section")..];
        assert!(
            w4b_table.contains("| commitlog (W4) | scan: read(offset, ~1000 records) | 10 | 10–10 | msgs/s | 2.00× (vs wharf-batch) |"),
            "{w4b_table}"
        );
        assert!(w4b_table.contains("| wharf-write (W4) |"), "{w4b_table}");
        assert!(
            !w4b_table.contains("disk"),
            "no disk column in a read table"
        );
    }
}
