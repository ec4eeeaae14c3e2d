//! The samples of one harness run, their summaries, wharf's ratios, and the markdown report.
//!
//! Every figure in a report comes from the same run: per scenario and variant, the median of
//! the repeats and their min–max. A ratio divides wharf's median by the peer's (the peer's by
//! wharf's for latencies), so above 1 always means wharf is faster. The wharf variant a peer
//! is compared with is the one that makes the same promise when an append returns (the same
//! [`Guarantee`]); where the scenario has no such wharf variant (W4 reads), it is the
//! scenario's fastest wharf variant.

use crate::systems::{Guarantee, Variant};
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

    /// The wharf variant `peer` is compared with in `scenario`, and its summary.
    fn wharf_reference(
        &self,
        scenario: &Scenario,
        guarantee: Guarantee,
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
        if let Some(same) = candidates.iter().find(|(v, _)| v.guarantee == guarantee) {
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
        let theirs = self.summary(scenario, peer.name, metric)?;
        let (wharf, ours) = self.wharf_reference(scenario, peer.guarantee, metric)?;
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

    /// One metric's table: a row per variant, in planned order.
    fn table(&self, scenario: &Scenario, index: usize, metric: Metric) -> String {
        let rows = self
            .rows
            .iter()
            .filter(|row| row.scenario == *scenario)
            .map(|row| self.table_row(scenario, row.variant, index, metric));
        let second = if scenario.workload == Workload::W4 {
            "read with"
        } else {
            "append returns"
        };
        let mut out = format!("| system | {second} | median | min–max | unit | wharf ratio |\n");
        out.push_str("|---|---|---:|---:|---|---|\n");
        out.extend(rows);
        out
    }

    fn table_row(
        &self,
        scenario: &Scenario,
        variant: &Variant,
        index: usize,
        metric: Metric,
    ) -> String {
        let second = if scenario.workload == Workload::W4 {
            variant.reads.unwrap_or("")
        } else {
            guarantee_label(variant.guarantee)
        };
        let Some(summary) = self.summary(scenario, variant.name, index) else {
            return format!("| {} | {second} | failed | | | |\n", variant.name);
        };
        let ratio = if variant.is_wharf() {
            "—".to_owned()
        } else {
            self.ratio(scenario, variant, index).map_or_else(
                || "n/a".to_owned(),
                |r| format!("{:.2}× (vs {})", r.value, r.wharf.name),
            )
        };
        format!(
            "| {} | {second} | {} | {}–{} | {} | {ratio} |\n",
            variant.name,
            format_value(metric, summary.median),
            format_value(metric, summary.min),
            format_value(metric, summary.max),
            metric.unit(),
        )
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
