//! The table: each figure beside its ceiling, as a ratio, with the target it is held to.

use crate::scenarios::Options;

#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The ratio must be at least this.
    AtLeast(f64),
    /// The ratio must stay within 1 ± this.
    Within(f64),
}

impl Target {
    fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(min) => ratio >= min,
            Target::Within(band) => (ratio - 1.0).abs() <= band,
        }
    }

    fn label(self) -> String {
        match self {
            Target::AtLeast(min) => format!("≥ {:.0} %", min * 100.0),
            Target::Within(band) => format!("within ±{:.0} %", band * 100.0),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub id: &'static str,
    pub name: String,
    pub result: String,
    pub ceiling: String,
    pub ratio: Option<f64>,
    pub target: Option<Target>,
    /// What was checked beyond speed (exactly-once counts, signatures…), or why it failed.
    pub note: String,
    /// A correctness check failed: the run is not a valid measurement.
    pub broken: bool,
}

impl Row {
    pub fn new(id: &'static str, name: impl Into<String>, result: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
            result: result.into(),
            ceiling: String::new(),
            ratio: None,
            target: None,
            note: String::new(),
            broken: false,
        }
    }

    pub fn against(mut self, ceiling: impl Into<String>, ratio: f64) -> Self {
        self.ceiling = ceiling.into();
        self.ratio = Some(ratio);
        self
    }

    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    pub fn check_failed(&self) -> bool {
        self.broken
    }

    fn ratio_cell(&self) -> String {
        match self.ratio {
            Some(r) if r >= 10.0 => format!("{r:.1}×"),
            Some(r) => format!("{:.0} %", r * 100.0),
            None => "—".into(),
        }
    }

    fn target_cell(&self) -> String {
        match (self.target, self.ratio) {
            (Some(t), Some(r)) => {
                let verdict = if t.met(r) { "met" } else { "MISSED" };
                format!("{} ({verdict})", t.label())
            }
            _ => "—".into(),
        }
    }
}

pub fn terminal(rows: &[Row]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.id.to_owned(),
                r.name.clone(),
                r.result.clone(),
                r.ceiling.clone(),
                r.ratio_cell(),
                r.target_cell(),
            ]
        })
        .collect();
    let header = ["#", "measurement", "result", "ceiling", "ratio", "target"].map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: &[String; 6]| {
        row.iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = line(&header);
    for row in &cells {
        out.push('\n');
        out.push_str(&line(row));
    }
    for r in rows.iter().filter(|r| !r.note.is_empty()) {
        out.push_str(&format!("\n  {} {}: {}", r.id, r.name, r.note));
    }
    out
}

pub fn markdown(rows: &[Row], options: &Options, machine: &[(String, String)]) -> String {
    let mut out = String::from("# Keyturn benchmark results\n\n");
    out.push_str(
        "Written by `bench/run.sh`; every figure below comes from one run on one machine, and \
         each is given as a ratio to the ceiling measured in that same run. How each figure is \
         made, and what the profiles say limits it: [README.md](README.md).\n\n",
    );
    out.push_str("## Machine\n\n");
    for (k, v) in machine {
        out.push_str(&format!("- {k}: {v}\n"));
    }
    out.push_str(&format!(
        "\n## Reproduce\n\n```sh\nbash bench/run.sh{}\n```\n\n",
        options.reproduce_flags()
    ));
    out.push_str(&format!(
        "Load: {} keep-alive connections per throughput figure ({} for latency), {} s warm-up \
         then {} s measured, one load-generator thread on the same machine.\n\n",
        options.connections, options.latency_connections, options.warmup_secs, options.seconds
    ));
    out.push_str("## Results\n\n| # | measurement | result | ceiling | ratio | target |\n|---|---|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.id,
            r.name,
            r.result,
            r.ceiling,
            r.ratio_cell(),
            r.target_cell()
        ));
    }
    let notes: Vec<&Row> = rows.iter().filter(|r| !r.note.is_empty()).collect();
    if !notes.is_empty() {
        out.push_str("\n## Checked along the way\n\n");
        for r in notes {
            out.push_str(&format!("- {} {}: {}\n", r.id, r.name, r.note));
        }
    }
    out
}
