//! The `make bench` report: parses `bench: metric=...` lines of both sides and writes the table, CSV and SVG chart.
//!
//! Pure functions (host-tested): [`parse_metric`] reads one line, [`table`] joins ours and Linux's by metric name
//! (ratio = ours / Linux: below 1 is faster than Linux), [`csv`] and [`svg`] render the joined rows. A metric
//! with no Linux counterpart ([`ABSOLUTE_TARGETS`]: the swap excluding load) shows `-` for Linux and its
//! absolute target instead of a ratio.

use std::fmt::Write as _;

/// One parsed metric line: `bench: metric=NAME unit=ns median=M min=m max=X iters=I runs=R [key=value ...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The metric's name (`null_call`, `cell_load_small`, ...).
    pub name: String,
    /// Median of the runs' means, in ns.
    pub median: u64,
    /// Smallest run mean, in ns.
    pub min: u64,
    /// Largest run mean, in ns.
    pub max: u64,
    /// Every `key=value` field of the line, in order (including the ones above).
    pub fields: Vec<(String, String)>,
}

impl Metric {
    /// The value of field `key`, if present.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parses one `bench: metric=...` line; `None` for any other line or a line with a non-numeric median/min/max.
pub fn parse_metric(line: &str) -> Option<Metric> {
    let rest = line.trim().strip_prefix("bench: ")?;
    let fields: Vec<(String, String)> = rest
        .split_whitespace()
        .map(|word| word.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect::<Option<_>>()?;
    let get = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let number = |key: &str| get(key)?.parse::<u64>().ok();
    Some(Metric { name: get("metric")?, median: number("median")?, min: number("min")?, max: number("max")?, fields })
}

/// Metrics without a Linux counterpart and their absolute targets in ns (issue 11: "Swap excluding load: <= 1 ms
/// for a small cell on 1 CPU under TCG").
pub const ABSOLUTE_TARGETS: &[(&str, u64)] = &[("swap_excluding_load", 1_000_000)];

/// The absolute target of metric `name` in ns, if it has one instead of a Linux counterpart.
pub fn absolute_target(name: &str) -> Option<u64> {
    ABSOLUTE_TARGETS.iter().find(|(metric, _)| *metric == name).map(|(_, target)| *target)
}

/// One row of the joined table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The metric's name.
    pub name: String,
    /// Our median, in ns (`None` if our side did not print it).
    pub ours: Option<u64>,
    /// Linux's median, in ns.
    pub linux: Option<u64>,
    /// The absolute target in ns, for a metric without a Linux counterpart ([`absolute_target`]).
    pub target: Option<u64>,
}

impl Row {
    /// ours / Linux, when both are known and Linux's is not zero.
    pub fn ratio(&self) -> Option<f64> {
        match (self.ours, self.linux) {
            (Some(ours), Some(linux)) if linux > 0 => Some(ours as f64 / linux as f64),
            _ => None,
        }
    }

    /// Whether the row is complete: a ratio, or our value for a metric judged by an absolute target.
    pub fn is_complete(&self) -> bool {
        self.ratio().is_some() || (self.target.is_some() && self.ours.is_some())
    }
}

/// Joins both sides by metric name, in our order, then metrics only Linux printed.
pub fn join(ours: &[Metric], linux: &[Metric]) -> Vec<Row> {
    let mut rows: Vec<Row> = ours
        .iter()
        .map(|metric| Row {
            name: metric.name.clone(),
            ours: Some(metric.median),
            linux: linux.iter().find(|other| other.name == metric.name).map(|other| other.median),
            target: absolute_target(&metric.name),
        })
        .collect();
    for metric in linux.iter().filter(|metric| !ours.iter().any(|other| other.name == metric.name)) {
        rows.push(Row {
            name: metric.name.clone(),
            ours: None,
            linux: Some(metric.median),
            target: absolute_target(&metric.name),
        });
    }
    rows
}

fn cell(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The table as text: `metric  ours (ns)  Linux (ns)  ratio  target`; the target column is filled only for a
/// metric judged by an absolute target (its Linux and ratio columns show `-`).
pub fn table(rows: &[Row]) -> String {
    let mut text =
        format!("{:<20} {:>14} {:>14} {:>8} {:>12}\n", "metric", "ours (ns)", "Linux (ns)", "ratio", "target (ns)");
    for row in rows {
        let ratio = row.ratio().map_or_else(|| "-".to_string(), |r| format!("{r:.3}"));
        let _ = writeln!(
            text,
            "{:<20} {:>14} {:>14} {:>8} {:>12}",
            row.name,
            cell(row.ours),
            cell(row.linux),
            ratio,
            row.target.map_or_else(String::new, |target| target.to_string())
        );
    }
    text
}

/// The table as CSV: `metric,ours_ns,linux_ns,ratio,target_ns` (empty fields for missing values).
pub fn csv(rows: &[Row]) -> String {
    let mut text = String::from("metric,ours_ns,linux_ns,ratio,target_ns\n");
    for row in rows {
        let number = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let ratio = row.ratio().map(|r| format!("{r:.4}")).unwrap_or_default();
        let _ =
            writeln!(text, "{},{},{},{ratio},{}", row.name, number(row.ours), number(row.linux), number(row.target));
    }
    text
}

/// A horizontal bar chart (SVG 1.1, written by hand) of log10(ratio) per metric: bars left of the 1.0 line are
/// faster than Linux.
pub fn svg(rows: &[Row], title: &str) -> String {
    const WIDTH: f64 = 720.0;
    const LEFT: f64 = 160.0;
    const BAR: f64 = 22.0;
    let plot = WIDTH - LEFT - 80.0;
    // log10 ratio from -3 (1000x faster) to +2 (100x slower).
    let (low, high) = (-3.0_f64, 2.0_f64);
    let x = |log: f64| LEFT + (log.clamp(low, high) - low) / (high - low) * plot;
    let height = 60.0 + BAR * rows.len() as f64 + 30.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" \
         font-size=\"12\">\n<text x=\"10\" y=\"20\" font-size=\"14\">{title}</text>\n"
    );
    for (index, row) in rows.iter().enumerate() {
        let y = 40.0 + BAR * index as f64;
        let _ = writeln!(out, "<text x=\"10\" y=\"{:.1}\">{}</text>", y + 15.0, row.name);
        if let Some(ratio) = row.ratio() {
            let (start, end) = (x(0.0), x(ratio.max(1e-9).log10()));
            let (left, width) = if end < start { (end, start - end) } else { (start, end - start) };
            let color = if ratio <= 1.0 { "#2a7" } else { "#c44" };
            let _ = writeln!(
                out,
                "<rect x=\"{left:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\">{ratio:.3}</text>",
                y + 3.0,
                width.max(1.0),
                BAR - 6.0,
                left.max(start) + width.max(1.0) + 4.0,
                y + 15.0
            );
        }
    }
    let axis_y = 40.0 + BAR * rows.len() as f64;
    for log in [-3, -2, -1, 0, 1, 2] {
        let position = x(f64::from(log));
        let label = 10f64.powi(log);
        let _ = writeln!(
            out,
            "<line x1=\"{position:.1}\" y1=\"35\" x2=\"{position:.1}\" y2=\"{axis_y:.1}\" stroke=\"#999\" \
             stroke-dasharray=\"{}\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">{label}</text>",
            if log == 0 { "none" } else { "2,3" },
            position - 8.0,
            axis_y + 16.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"{:.1}\">ratio ours / Linux (log scale; left of 1 = faster)</text>\n</svg>",
        axis_y + 30.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "bench: metric=null_call unit=ns median=148 min=145 max=244 iters=100 runs=5";
    const LOAD: &str = "bench: metric=cell_load_small unit=ns median=1382553 min=1084780 max=2048063 iters=2 runs=5 \
                        cell=demo_channel_buffered bytes=18896 relocations=161 ns_per_kib=74922 ns_per_relocation=8587";

    #[test]
    fn parses_metric_lines() {
        let metric = parse_metric(OURS).unwrap();
        assert_eq!((metric.name.as_str(), metric.median, metric.min, metric.max), ("null_call", 148, 145, 244));
        let load = parse_metric(LOAD).unwrap();
        assert_eq!(load.field("relocations"), Some("161"));
        assert_eq!(parse_metric("bench: profile cell=x phase=parse ns_per_load=1 percent=1.0"), None);
        assert_eq!(parse_metric("bench: metric=x unit=ns median=abc min=1 max=2"), None);
        assert_eq!(parse_metric("Hello from greeting v1, bench!"), None);
    }

    #[test]
    fn joins_and_renders() {
        let ours = [parse_metric(OURS).unwrap()];
        let linux = [
            parse_metric("bench: metric=null_call unit=ns median=400 min=1 max=2").unwrap(),
            parse_metric("bench: metric=only_linux unit=ns median=7 min=1 max=9").unwrap(),
        ];
        let rows = join(&ours, &linux);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].ratio(), Some(0.37));
        assert_eq!(rows[1].ours, None);
        assert_eq!(csv(&rows), "metric,ours_ns,linux_ns,ratio,target_ns\nnull_call,148,400,0.3700,\nonly_linux,,7,,\n");
        assert!(table(&rows).contains("null_call"));
        assert!(rows[0].is_complete() && !rows[1].is_complete());
        let chart = svg(&rows, "t");
        assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
        assert_eq!(chart.matches("<rect").count(), 1);
    }

    #[test]
    fn swap_metric_has_a_target_instead_of_linux() {
        let line = "bench: metric=swap_excluding_load unit=ns median=969422 min=941542 max=3761720 iters=4 runs=5 \
                    cell=greeting_v1 new=greeting_v2 relocations_rewritten=1 verify_ns=250328 state_transfer_ns=949 \
                    commit_ns=544443 pin_search_ns=520001 cleanup_ns=173701 load_ns=186725";
        let swap = parse_metric(line).unwrap();
        assert_eq!(swap.field("relocations_rewritten"), Some("1"));
        let rows = join(&[swap], &[]);
        assert_eq!(rows[0].target, Some(1_000_000));
        assert_eq!(rows[0].ratio(), None);
        assert!(rows[0].is_complete());
        assert!(csv(&rows).ends_with("swap_excluding_load,969422,,,1000000\n"));
        let text = table(&rows);
        let row = text.lines().find(|line| line.starts_with("swap_excluding_load")).unwrap();
        let columns: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(columns, ["swap_excluding_load", "969422", "-", "-", "1000000"]);
        // Without our value the row is incomplete (the bench run must fail).
        let missing =
            Row { name: String::from("swap_excluding_load"), ours: None, linux: None, target: Some(1_000_000) };
        assert!(!missing.is_complete());
    }
}
