//! The figures of the reliability tiers (RELIABILITY.md section 5): each test records its
//! counts, prints one line per figure, and merges them into `target/reliability-summary.json`.
//!
//! Tests run in parallel: each tier's figures go to their own fragment file
//! (`target/reliability-summary.d/<tier>.txt`, one `name value` per line), and the JSON is
//! rebuilt from all fragments under an exclusive lock, then moved into place with a rename, so
//! a reader never sees half a file and no tier's figures are lost.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::PathBuf;

use fs2::FileExt;

/// Counts of one tier, by figure name (`snake_case`, the JSON key).
#[derive(Debug, Clone, Default)]
pub(super) struct Figures {
    pub counts: BTreeMap<&'static str, u64>,
}

impl Figures {
    pub(super) fn add(&mut self, name: &'static str, n: u64) {
        *self.counts.entry(name).or_default() += n;
    }

    pub(super) fn set(&mut self, name: &'static str, n: u64) {
        self.counts.insert(name, n);
    }

    pub(super) fn get(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }
}

/// `21344` as `21,344`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints the tier's figures, one line each, and merges them into the summary file.
pub(super) fn report(tier: &str, figures: &Figures) {
    for (name, n) in &figures.counts {
        let value = if *name == "base_seed" {
            format!("{n:#x}")
        } else {
            grouped(*n)
        };
        println!("reliability[{tier}]: {} {value}", name.replace('_', " "));
    }
    if let Err(e) = merge(tier, figures) {
        // The figures were printed; a read-only target directory must not fail the tier.
        println!("reliability[{tier}]: summary file not written: {e}");
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    )
}

fn merge(tier: &str, figures: &Figures) -> io::Result<()> {
    let target = target_dir();
    let fragments = target.join("reliability-summary.d");
    fs::create_dir_all(&fragments)?;
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(target.join("reliability-summary.lock"))?;
    lock.lock_exclusive()?;
    let mut text = String::new();
    for (name, n) in &figures.counts {
        let _ = writeln!(text, "{name} {n}");
    }
    fs::write(fragments.join(format!("{tier}.txt")), text)?;
    let mut tiers: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for entry in fs::read_dir(&fragments)? {
        let path = entry?.path();
        let Some(name) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|_| path.extension().is_some_and(|e| e == "txt"))
        else {
            continue;
        };
        let counts = fs::read_to_string(&path)?
            .lines()
            .filter_map(|line| {
                let (k, v) = line.split_once(' ')?;
                Some((k.to_owned(), v.parse().ok()?))
            })
            .collect();
        tiers.insert(name.to_owned(), counts);
    }
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for counts in tiers.values() {
        for (k, v) in counts {
            if k != "base_seed" && k != "damage_variants" {
                *totals.entry(k.as_str()).or_default() += v;
            }
        }
    }
    let json = to_json(&tiers, &totals);
    let tmp = target.join(format!(
        "reliability-summary.json.{}.tmp",
        std::process::id()
    ));
    fs::write(&tmp, json)?;
    fs::rename(&tmp, target.join("reliability-summary.json"))?;
    FileExt::unlock(&lock)
}

fn to_json(
    tiers: &BTreeMap<String, BTreeMap<String, u64>>,
    totals: &BTreeMap<&str, u64>,
) -> String {
    let object = |counts: &mut dyn Iterator<Item = (&str, u64)>, indent: &str| {
        let fields: Vec<String> = counts
            .map(|(k, v)| format!("{indent}  \"{k}\": {v}"))
            .collect();
        format!("{{\n{}\n{indent}}}", fields.join(",\n"))
    };
    let mut out = String::from("{\n  \"tiers\": {\n");
    let tier_objects: Vec<String> = tiers
        .iter()
        .map(|(name, counts)| {
            let mut it = counts.iter().map(|(k, v)| (k.as_str(), *v));
            format!("    \"{name}\": {}", object(&mut it, "    "))
        })
        .collect();
    out.push_str(&tier_objects.join(",\n"));
    out.push_str("\n  },\n  \"totals\": ");
    let mut it = totals.iter().map(|(k, v)| (*k, *v));
    out.push_str(&object(&mut it, "  "));
    out.push_str("\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_print_with_thousands_separators() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(21_344), "21,344");
        assert_eq!(grouped(1_000_000), "1,000,000");
    }

    #[test]
    fn the_summary_is_json_with_tiers_and_totals() {
        let mut tiers = BTreeMap::new();
        tiers.insert(
            "a".to_owned(),
            BTreeMap::from([("images".to_owned(), 2), ("panics".to_owned(), 0)]),
        );
        let totals = BTreeMap::from([("images", 2), ("panics", 0)]);
        assert_eq!(
            to_json(&tiers, &totals),
            "{\n  \"tiers\": {\n    \"a\": {\n      \"images\": 2,\n      \"panics\": 0\n    }\n  },\n  \
             \"totals\": {\n    \"images\": 2,\n    \"panics\": 0\n  }\n}\n"
        );
    }
}
