//! Names the commit the binary is built from (`KEYTURN_COMMIT`), for `/version`, the build
//! metric and `keyturn --version`-style reports: git's answer when the source is a git
//! checkout, `unknown` otherwise (a source tarball, or no git installed).

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Asks cargo to run this again when `path` changes; a path that does not exist is left out
/// (cargo would run the script on every build).
fn watch(path: PathBuf) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=KEYTURN_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=KEYTURN_BUILD_DATE");
    // Run again when HEAD moves: HEAD itself (a checkout), and the branch it points to (a
    // commit). A worktree's HEAD lives in its own git directory, the branches in the shared one.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        watch(PathBuf::from(&dir).join("HEAD"));
    }
    if let (Some(common), Some(branch)) = (
        git(&["rev-parse", "--git-common-dir"]),
        git(&["symbolic-ref", "-q", "HEAD"]),
    ) {
        let common = PathBuf::from(common);
        watch(common.join(&branch));
        watch(common.join("packed-refs"));
    }
}
