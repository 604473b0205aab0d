//! Prometheus text exposition (format 0.0.4) for tests of a `/metrics`
//! endpoint: a strict parse into something to query, plus the checks a
//! scraper would make.
//!
//! The grammar (names, label escapes, floats, families grouped by `TYPE`) is
//! `prom_text_format_parser`'s; on top [`parse`] checks what that crate lets
//! through: every family has well-formed `# HELP` and `# TYPE` lines, no family
//! or series twice, no duplicate or reserved (`__`) label names, `HELP` escapes,
//! histograms well-formed (sorted `le`, cumulative counts, a `+Inf` bucket equal
//! to `_count`, a `_sum`), counters not negative, and a final newline.
//! [`promtool_check`] runs Prometheus's own `promtool check metrics` too, where
//! it is installed (`.ci/run` installs it).
//!
//! ```text
//! let m = common::prometheus::parse(&body).unwrap_or_else(|e| panic!("{e:#?}"));
//! assert_eq!(m.value("webhook_inbox_ingested_total", &[("outcome", "stored")]), Some(3.0));
//! let h = m.histogram("webhook_inbox_handler_seconds", &[]).unwrap();
//! assert_eq!(h.count, 3.0);
//! assert!(h.buckets.iter().any(|&(le, n)| le == 0.1 && n >= 1.0));
//! common::prometheus::promtool_check(&body);
//! ```
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prom_text_format_parser::{Scrape, ScrapeParseError, Type, ValueType};

/// One sample line, label values unescaped.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's own name (`x_bucket`, `x_sum`, `x_count` for a histogram `x`).
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One metric family: its `TYPE`, `HELP` and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

/// A histogram series: `(le, cumulative count)` buckets in order, `+Inf` last.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub count: f64,
    pub sum: f64,
}

/// A parsed, checked exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Exposition {
    pub families: Vec<Family>,
}

fn labels_match(have: &BTreeMap<String, String>, want: &[(&str, &str)]) -> bool {
    have.len() == want.len()
        && want
            .iter()
            .all(|(k, v)| have.get(*k).is_some_and(|h| h == v))
}

impl Exposition {
    /// The family named `name` (the base name: `x`, not `x_bucket`).
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// Every sample named `name` (e.g. `x_total` or `x_bucket`), from any family.
    pub fn samples(&self, name: &str) -> Vec<&Sample> {
        self.families
            .iter()
            .flat_map(|f| &f.samples)
            .filter(|s| s.name == name)
            .collect()
    }

    /// The value of sample `name` with exactly the labels `labels` (order free).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples(name)
            .into_iter()
            .find(|s| labels_match(&s.labels, labels))
            .map(|s| s.value)
    }

    /// The sum of sample `name` over every series whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name)
            .into_iter()
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|h| h == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Histogram `name`'s series with exactly the labels `labels` (besides `le`).
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<Histogram> {
        let family = self.family(name).filter(|f| f.kind == "histogram")?;
        let mut buckets = Vec::new();
        let (mut count, mut sum) = (None, None);
        for s in &family.samples {
            let mut rest = s.labels.clone();
            let le = rest.remove("le");
            if !labels_match(&rest, labels) {
                continue;
            }
            match (s.name.strip_prefix(name), le) {
                (Some("_bucket"), Some(le)) => buckets.push((parse_float(&le)?, s.value)),
                (Some("_count"), None) => count = Some(s.value),
                (Some("_sum"), None) => sum = Some(s.value),
                _ => {}
            }
        }
        Some(Histogram {
            buckets,
            count: count?,
            sum: sum?,
        })
    }
}

/// A float as Prometheus writes it (`+Inf`, `-Inf`, `NaN` included).
pub fn parse_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "+inf" | "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Whether `name` matches `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` matches `[a-zA-Z_][a-zA-Z0-9_]*` and does not start with `__`.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// Undoes the label-value escapes `\\`, `\"` and `\n` (the parser has
/// already rejected any other).
fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(c) => out.push(c),
            None => out.push('\\'),
        }
    }
    out
}

/// Escapes `v` as a label value (for building expected lines in tests).
pub fn escape_label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

const KINDS: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];

/// Parses `text` and checks it as a scraper would; every problem found, by line.
pub fn parse(text: &str) -> Result<Exposition, Vec<String>> {
    let mut errors = Vec::new();
    if !text.is_empty() && !text.ends_with('\n') {
        errors.push("the exposition does not end with a newline".to_owned());
    }

    // HELP and TYPE lines, which the grammar would take for comments when malformed.
    let mut helps: HashMap<String, String> = HashMap::new();
    let mut types: HashMap<String, String> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let mut words = rest.trim_start().splitn(3, ' ');
        let (keyword, name, tail) = (words.next(), words.next(), words.next());
        match keyword {
            Some("HELP") | Some("TYPE") => {}
            _ => continue,
        }
        let keyword = keyword.unwrap_or_default();
        let Some(name) = name.filter(|n| valid_metric_name(n)) else {
            errors.push(format!(
                "line {n}: {keyword} without a valid metric name: {line:?}"
            ));
            continue;
        };
        let tail = tail.unwrap_or("");
        if keyword == "TYPE" {
            if !KINDS.contains(&tail.trim()) {
                errors.push(format!("line {n}: unknown TYPE {tail:?} for {name}"));
            }
            if types
                .insert(name.to_owned(), tail.trim().to_owned())
                .is_some()
            {
                errors.push(format!("line {n}: a second TYPE for {name}"));
            }
        } else {
            let mut chars = tail.chars();
            while let Some(c) = chars.next() {
                if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
                    errors.push(format!(
                        "line {n}: HELP of {name} has an escape other than \\\\ or \\n"
                    ));
                    break;
                }
            }
            if tail.trim().is_empty() {
                errors.push(format!("line {n}: empty HELP for {name}"));
            }
            if helps.insert(name.to_owned(), tail.to_owned()).is_some() {
                errors.push(format!("line {n}: a second HELP for {name}"));
            }
        }
    }

    let scrape = match Scrape::parse(text) {
        Ok(s) => s,
        Err(ScrapeParseError::Parse(e)) => {
            errors.push(format!("syntax: {e}"));
            return Err(errors);
        }
        Err(ScrapeParseError::Collect(es)) => {
            for e in es {
                errors.push(format!("lines {:?}: {}", e.line_no, e.error));
            }
            return Err(errors);
        }
    };

    let mut families = Vec::new();
    let mut seen_families = BTreeSet::new();
    let mut seen_series = BTreeSet::new();
    for m in scrape.metrics {
        let name = m.name.clone();
        if !seen_families.insert(name.clone()) {
            errors.push(format!(
                "{name}: the family appears twice (its lines are not together)"
            ));
        }
        if !types.contains_key(&name) {
            errors.push(format!("{name}: no # TYPE line"));
        }
        if !helps.contains_key(&name) {
            errors.push(format!("{name}: no # HELP line"));
        }
        let kind = match m.kind {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
            Type::Summary => "summary",
            Type::Untyped => "untyped",
        };
        let mut samples = Vec::new();
        for s in m.samples {
            let sample_name = match (m.kind, s.value.value_type) {
                (Type::Histogram, ValueType::Sample) => format!("{name}_bucket"),
                (_, ValueType::Sum) => format!("{name}_sum"),
                (_, ValueType::Count) => format!("{name}_count"),
                _ => name.clone(),
            };
            let mut labels = BTreeMap::new();
            for l in s.labels.iter() {
                if !valid_label_name(&l.key) {
                    errors.push(format!("{sample_name}: invalid label name {:?}", l.key));
                }
                // The grammar lets a quoted value run over a line end.
                if l.value.contains(['\n', '\r']) {
                    errors.push(format!(
                        "{sample_name}: label {:?} has a raw line end",
                        l.key
                    ));
                }
                if labels.insert(l.key.clone(), unescape(&l.value)).is_some() {
                    errors.push(format!("{sample_name}: label {:?} twice", l.key));
                }
            }
            let Some(value) = parse_float(&s.value.value) else {
                errors.push(format!("{sample_name}: value {:?}", s.value.value.as_str()));
                continue;
            };
            if kind == "counter" && (value.is_nan() || value < 0.0) {
                errors.push(format!("{sample_name}: counter value {value}"));
            }
            if !seen_series.insert((sample_name.clone(), format!("{labels:?}"))) {
                errors.push(format!("{sample_name}{labels:?}: the series appears twice"));
            }
            samples.push(Sample {
                name: sample_name,
                labels,
                value,
            });
        }
        families.push(Family {
            help: helps.get(&name).cloned().unwrap_or_default(),
            name,
            kind: kind.to_owned(),
            samples,
        });
    }
    let exposition = Exposition { families };

    for f in exposition.families.iter().filter(|f| f.kind == "histogram") {
        let mut groups: BTreeSet<Vec<(String, String)>> = BTreeSet::new();
        for s in &f.samples {
            if s.name == format!("{}_bucket", f.name) && !s.labels.contains_key("le") {
                errors.push(format!("{}: a bucket without le", s.name));
            }
            let key = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            groups.insert(key);
        }
        for key in groups {
            let want: Vec<(&str, &str)> =
                key.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let Some(h) = exposition.histogram(&f.name, &want) else {
                errors.push(format!("{}{key:?}: no _count or _sum, or a bad le", f.name));
                continue;
            };
            let sorted = h
                .buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
            if !sorted {
                errors.push(format!(
                    "{}{key:?}: buckets not in le order or not cumulative",
                    f.name
                ));
            }
            match h.buckets.last() {
                Some(&(le, n)) if le == f64::INFINITY => {
                    if n != h.count {
                        errors.push(format!(
                            "{}{key:?}: +Inf bucket {n} != _count {}",
                            f.name, h.count
                        ));
                    }
                }
                _ => errors.push(format!("{}{key:?}: no +Inf bucket", f.name)),
            }
        }
    }

    if errors.is_empty() {
        Ok(exposition)
    } else {
        Err(errors)
    }
}

/// `promtool`, from `PATH` (Debian's `prometheus` package; `.ci/run` installs it).
pub fn promtool() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
}

/// Runs `promtool check metrics` on `text`: `Ok` when it passes, `Err` with its
/// output when not. Without promtool this prints why and returns `Ok` — except
/// under `CI=true`, where it panics.
#[track_caller]
pub fn promtool_check(text: &str) -> Result<(), String> {
    use std::io::Write;
    let Some(tool) = promtool() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("promtool is not installed (CI=true: not skipped)");
        }
        eprintln!("SKIPPED promtool check: promtool is not installed (Debian package prometheus)");
        return Ok(());
    };
    let mut child = std::process::Command::new(&tool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", tool.display()))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let input = text.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("promtool check metrics: {}: {said}", out.status))
    }
}
