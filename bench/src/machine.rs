//! What the figures were measured on.

use std::process::Command;

fn first_line(path: &str, prefix: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub fn describe() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut push = |k: &str, v: Option<String>| {
        out.push((k.to_owned(), v.unwrap_or_else(|| "unknown".into())));
    };
    push(
        "date",
        Some(chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string()),
    );
    push("CPU", first_line("/proc/cpuinfo", "model name"));
    push(
        "cores",
        std::thread::available_parallelism()
            .ok()
            .map(|n| n.to_string()),
    );
    push(
        "memory",
        first_line("/proc/meminfo", "MemTotal").map(|kb| {
            let kb: f64 = kb.trim_end_matches(" kB").trim().parse().unwrap_or(0.0);
            format!("{:.1} GiB", kb / 1024.0 / 1024.0)
        }),
    );
    push(
        "kernel",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_owned()),
    );
    push("rustc", output("rustc", &["--version"]));
    push("PostgreSQL", output("psql", &["--version"]));
    push("commit", output("git", &["rev-parse", "--short", "HEAD"]));
    out
}
