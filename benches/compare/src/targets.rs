//! The team's targets, each a minimum ratio of wharf against one peer in one workload, and
//! their verdicts from one run's results.
//!
//! Where a target names a family rather than one variant ("the plain file's group commit"),
//! the peer is the family's fastest variant in this run, so the target is never met against
//! the weaker one.

use crate::report::{Results, format_value};
use crate::workloads::{Metric, Workload};

/// One target: in `workload` (with `producers` threads), wharf's ratio against the fastest of
/// `peers` on `metric` must be at least `minimum`.
struct Target {
    label: &'static str,
    workload: Workload,
    producers: usize,
    metric: Metric,
    peers: &'static [&'static str],
    minimum: f64,
}

const TARGETS: [Target; 6] = [
    Target {
        label: "W1 ≥ 5× yaque",
        workload: Workload::W1,
        producers: 1,
        metric: Metric::Throughput,
        peers: &["yaque"],
        minimum: 5.0,
    },
    Target {
        label: "W1 ≥ 1.0× the buffered plain file",
        workload: Workload::W1,
        producers: 1,
        metric: Metric::Throughput,
        peers: &["plain-buffered"],
        minimum: 1.0,
    },
    Target {
        label: "W2 ≥ 0.95× the plain file with zero-filled preallocation (throughput)",
        workload: Workload::W2,
        producers: 1,
        metric: Metric::Throughput,
        peers: &["plain-sync-prealloc"],
        minimum: 0.95,
    },
    Target {
        label: "W3, 16 producers: ≥ 1.0× the plain file's group commit",
        workload: Workload::W3,
        producers: 16,
        metric: Metric::Throughput,
        peers: &["plain-group", "plain-group-prealloc"],
        minimum: 1.0,
    },
    Target {
        label: "W4 ≥ 1.0× commitlog's scan",
        workload: Workload::W4,
        producers: 1,
        metric: Metric::Throughput,
        peers: &["commitlog"],
        minimum: 1.0,
    },
    Target {
        label: "W5 ≥ 1.3× yaque",
        workload: Workload::W5,
        producers: 1,
        metric: Metric::Throughput,
        peers: &["yaque"],
        minimum: 1.3,
    },
];

/// The markdown "Targets" section: each target, the measured ratio, met or missed.
pub fn section(results: &Results<'_>) -> String {
    let rows = TARGETS.iter().map(|target| {
        let (ratio, compared, verdict) = evaluate(results, target);
        format!("| {} | {ratio} | {compared} | {verdict} |\n", target.label)
    });
    let mut out = String::from("## Targets\n\n");
    out.push_str("| target | measured ratio | compared (medians) | verdict |\n");
    out.push_str("|---|---:|---|---|\n");
    out.extend(rows);
    out
}

/// The ratio, what was compared, and the verdict of one target.
fn evaluate(results: &Results<'_>, target: &Target) -> (String, String, &'static str) {
    let not_measured = || {
        (
            "—".to_owned(),
            "not measured in this run".to_owned(),
            "not measured",
        )
    };
    let Some(scenario) = results
        .scenarios()
        .into_iter()
        .find(|s| s.workload == target.workload && s.producers == target.producers)
    else {
        return not_measured();
    };
    let Some(metric) = scenario.metrics().iter().position(|m| *m == target.metric) else {
        return not_measured();
    };
    // The family's fastest peer.
    let peer = target
        .peers
        .iter()
        .filter_map(|name| {
            let variant = results.variant(&scenario, name)?;
            Some((variant, results.summary(&scenario, name, metric)?))
        })
        .max_by(|(_, a), (_, b)| a.median.total_cmp(&b.median));
    let Some((peer, theirs)) = peer else {
        return not_measured();
    };
    let Some(ratio) = results.ratio(&scenario, peer, metric) else {
        return not_measured();
    };
    let ours = results
        .summary(&scenario, ratio.wharf.name, metric)
        .expect("a ratio has a wharf summary");
    let compared = format!(
        "{} {} / {} {} {}",
        ratio.wharf.name,
        format_value(target.metric, ours.median),
        peer.name,
        format_value(target.metric, theirs.median),
        target.metric.unit()
    );
    let verdict = if ratio.value >= target.minimum {
        "met"
    } else {
        "missed"
    };
    (format!("{:.2}×", ratio.value), compared, verdict)
}
