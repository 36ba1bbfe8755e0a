//! The machine fingerprint: what tells this machine from others, stable across reboots and
//! network changes.
//!
//! A fingerprint is built from several components, each hashed (SHA-256, truncated to 64 bits)
//! so no raw serial number or address leaves the machine:
//!
//! | name  | source | strong |
//! |-------|--------|--------|
//! | `env` | the `KEYTURN_MACHINE_ID` environment variable, when set | yes |
//! | `mid` | the OS machine id: `/etc/machine-id` or `/var/lib/dbus/machine-id` (Linux), `IOPlatformUUID` (macOS), `MachineGuid` (Windows) | yes |
//! | `dmi` | `/sys/class/dmi/id/product_uuid`, where readable (usually root only) | yes |
//! | `brd` | `/sys/class/dmi/id/board_serial`, where readable | yes |
//! | `mac` | the permanent MAC of the first physical network interface (by name; virtual, bridge and container interfaces are skipped, so plugging cables or switching networks changes nothing) | yes |
//! | `idf` | the identity file (see below) | yes |
//! | `cpu` | the CPU model | no |
//! | `hst` | the host name | no |
//!
//! The text form is `ktfp1:mid=…;mac=…;cpu=…;hst=…` (under 200 characters; the server accepts up to 256).
//!
//! **Containers.** A container usually has no readable hardware ids, a virtual network
//! interface and often no machine id of its own (or one baked into the image and shared by every
//! container started from it). When no strong component is readable, or when the program runs in
//! a container (`/.dockerenv`, `/run/.containerenv`, or a container runtime named in
//! `/proc/1/cgroup`), the fingerprint also uses an *identity file*: a random id written once to
//! `$KEYTURN_IDENTITY_FILE`, else `$XDG_DATA_HOME/keyturn/machine-id`, else
//! `~/.local/share/keyturn/machine-id` (`%LOCALAPPDATA%\keyturn\machine-id` on Windows). Keep it on
//! a volume to keep the identity across container restarts, or set `KEYTURN_MACHINE_ID` to an id
//! the deployment already has.
//!
//! **Tolerant matching.** [`Fingerprint::matches`] compares component by component: two
//! fingerprints name the same machine when at least one strong component agrees and more of their
//! shared components agree than differ. One changed component (a replaced network card, a renamed
//! host) therefore never locks a user out, while another machine — which differs in every
//! strong component — never matches. The server applies the same rule, written once in
//! `keyturn_protocol::fingerprint`, when a machine activates, validates or deactivates; with a
//! state file the client also keeps the code the machine was first activated under
//! ([`crate::Client::machine_code`]), so drift is followed component by component.
//!
//! Collecting a fingerprint reads a few small files and never panics: unreadable sources are
//! skipped.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The prefix of the text form of a fingerprint built from components.
pub use keyturn_protocol::fingerprint::PREFIX;
/// The environment variable that gives a machine an explicit identity (e.g. in containers).
pub const MACHINE_ID_ENV: &str = "KEYTURN_MACHINE_ID";
/// The environment variable that overrides where the identity file lives.
pub const IDENTITY_FILE_ENV: &str = "KEYTURN_IDENTITY_FILE";

/// A machine fingerprint: named, hashed components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    text: String,
    components: Vec<(String, String)>,
}

impl Fingerprint {
    /// This machine's fingerprint, with the identity file in its default place.
    pub fn current() -> Self {
        Self::collect(default_identity_file().as_deref())
    }

    /// This machine's fingerprint; `identity_file` is where the fallback identity is kept when
    /// the machine offers no strong component of its own (or runs in a container).
    pub fn current_with_identity_file(identity_file: &Path) -> Self {
        Self::collect(Some(identity_file))
    }

    fn collect(identity_file: Option<&Path>) -> Self {
        let mut raw: Vec<(&str, String)> = Vec::new();
        if let Some(id) = std::env::var(MACHINE_ID_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            raw.push(("env", id.trim().to_owned()));
        }
        raw.extend(sources::read());
        let strong = raw
            .iter()
            .any(|(name, _)| keyturn_protocol::fingerprint::is_strong(name));
        if !strong || sources::in_container() {
            if let Some(id) = identity_file.and_then(identity) {
                raw.push(("idf", id));
            }
        }
        if raw.is_empty() {
            // Nothing at all was readable: a stable, if weak, last resort.
            raw.push(("hst", "unknown".to_owned()));
        }
        let components = raw
            .into_iter()
            .map(|(name, value)| (name.to_owned(), hash(name, &value)))
            .collect();
        Self::from_components(components)
    }

    fn from_components(components: Vec<(String, String)>) -> Self {
        let text = format!(
            "{PREFIX}{}",
            components
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join(";")
        );
        Self { text, components }
    }

    /// Reads the text form. A string that is not in the component form is taken as one opaque,
    /// strong component, so ids a program chose itself still work (and match only exactly).
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        let components = keyturn_protocol::fingerprint::components(text)
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        Self {
            text: text.to_owned(),
            components,
        }
    }

    /// The text form, as the server stores it and as a vendor passes it to
    /// `keyturn license file --machine`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The components as (name, hashed value) pairs.
    pub fn components(&self) -> &[(String, String)] {
        &self.components
    }

    /// Whether `other` names the same machine: identical, or at least one strong component
    /// agrees and more shared components agree than differ.
    pub fn matches(&self, other: &Fingerprint) -> bool {
        keyturn_protocol::fingerprint::same_machine(&self.text, &other.text)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn hash(name: &str, value: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"keyturn-fingerprint/1\0")
        .chain_update(name.as_bytes())
        .chain_update(b"\0")
        .chain_update(value.as_bytes())
        .finalize();
    hex::encode(&digest[..8])
}

fn default_identity_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(IDENTITY_FILE_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let base = if cfg!(windows) {
        std::env::var_os("LOCALAPPDATA").map(PathBuf::from)
    } else {
        std::env::var_os("XDG_DATA_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share"))
            })
    };
    base.map(|b| b.join("keyturn").join("machine-id"))
}

/// Reads the identity file, creating it with a fresh random id when it does not exist yet.
fn identity(path: &Path) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let id = text.trim();
        if !id.is_empty() {
            return Some(id.to_owned());
        }
    }
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let id = hex::encode(bytes);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok()?;
    }
    std::fs::write(path, format!("{id}\n")).ok()?;
    Some(id)
}

#[cfg_attr(any(target_os = "macos", windows), allow(dead_code))]
fn first_line(path: impl AsRef<Path>) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

#[cfg(target_os = "linux")]
mod sources {
    use super::first_line;
    use std::path::Path;

    /// Values that say nothing about the machine (placeholders firmware vendors ship).
    fn meaningful(value: &str) -> bool {
        let v = value.to_ascii_lowercase();
        !v.is_empty()
            && !v
                .chars()
                .all(|c| c == '0' || c == '-' || c == ':' || c == 'f')
            && ![
                "none",
                "default string",
                "to be filled by o.e.m.",
                "not specified",
            ]
            .contains(&v.as_str())
    }

    pub fn read() -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(id) = first_line("/etc/machine-id")
            .or_else(|| first_line("/var/lib/dbus/machine-id"))
            .filter(|v| meaningful(v))
        {
            out.push(("mid", id));
        }
        for (name, file) in [("dmi", "product_uuid"), ("brd", "board_serial")] {
            if let Some(v) =
                first_line(Path::new("/sys/class/dmi/id").join(file)).filter(|v| meaningful(v))
            {
                out.push((name, v.to_ascii_lowercase()));
            }
        }
        if let Some(mac) = primary_mac() {
            out.push(("mac", mac));
        }
        if let Some(cpu) = cpu_model() {
            out.push(("cpu", cpu));
        }
        if let Some(host) = first_line("/proc/sys/kernel/hostname")
            .or_else(|| first_line("/etc/hostname"))
            .or_else(|| std::env::var("HOSTNAME").ok())
        {
            out.push(("hst", host.to_ascii_lowercase()));
        }
        out
    }

    /// The MAC of the first physical interface by name: one with a `device` link in sysfs, so
    /// loopback, bridges, tunnels and container veths are left out. The permanent address is
    /// preferred where the kernel exposes it (it survives MAC randomisation).
    fn primary_mac() -> Option<String> {
        let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| Path::new("/sys/class/net").join(n).join("device").exists())
            .collect();
        names.sort();
        names.into_iter().find_map(|name| {
            let dir = Path::new("/sys/class/net").join(&name);
            first_line(dir.join("address"))
                .map(|a| a.to_ascii_lowercase())
                .filter(|a| meaningful(a))
        })
    }

    fn cpu_model() -> Option<String> {
        let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
        info.lines()
            .find(|l| l.starts_with("model name") || l.starts_with("Hardware"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn in_container() -> bool {
        if Path::new("/.dockerenv").exists() || Path::new("/run/.containerenv").exists() {
            return true;
        }
        std::fs::read_to_string("/proc/1/cgroup").is_ok_and(|c| {
            ["docker", "kubepods", "containerd", "libpod", "lxc"]
                .iter()
                .any(|runtime| c.contains(runtime))
        })
    }
}

#[cfg(target_os = "macos")]
mod sources {
    pub fn read() -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Ok(o) = std::process::Command::new("ioreg")
            .args(["-rd1", "-c", "IOPlatformExpertDevice"])
            .output()
        {
            let text = String::from_utf8_lossy(&o.stdout);
            if let Some(uuid) = text
                .lines()
                .find(|l| l.contains("IOPlatformUUID"))
                .and_then(|l| l.rsplit('"').nth(1))
            {
                out.push(("mid", uuid.to_owned()));
            }
        }
        if let Ok(host) = std::process::Command::new("hostname").output() {
            let host = String::from_utf8_lossy(&host.stdout)
                .trim()
                .to_ascii_lowercase();
            if !host.is_empty() {
                out.push(("hst", host));
            }
        }
        out
    }

    pub fn in_container() -> bool {
        false
    }
}

#[cfg(windows)]
mod sources {
    pub fn read() -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Ok(o) = std::process::Command::new("reg")
            .args([
                "query",
                r"HKLM\SOFTWARE\Microsoft\Cryptography",
                "/v",
                "MachineGuid",
            ])
            .output()
        {
            let text = String::from_utf8_lossy(&o.stdout);
            if let Some(guid) = text
                .lines()
                .find(|l| l.contains("MachineGuid"))
                .and_then(|l| l.split_whitespace().last())
            {
                out.push(("mid", guid.to_owned()));
            }
        }
        if let Ok(host) = std::env::var("COMPUTERNAME") {
            out.push(("hst", host.to_ascii_lowercase()));
        }
        out
    }

    pub fn in_container() -> bool {
        false
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
mod sources {
    pub fn read() -> Vec<(&'static str, String)> {
        super::first_line("/etc/hostid")
            .map(|id| vec![("mid", id)])
            .unwrap_or_default()
    }

    pub fn in_container() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(pairs: &[(&str, &str)]) -> Fingerprint {
        Fingerprint::from_components(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn one_changed_component_still_matches() {
        let mine = fp(&[("mid", "1"), ("mac", "2"), ("cpu", "3"), ("hst", "4")]);
        let new_nic = fp(&[("mid", "1"), ("mac", "9"), ("cpu", "3"), ("hst", "4")]);
        let renamed = fp(&[("mid", "1"), ("mac", "2"), ("cpu", "3"), ("hst", "x")]);
        assert!(mine.matches(&new_nic));
        assert!(mine.matches(&renamed));
        assert!(new_nic.matches(&mine), "matching is symmetric");
    }

    #[test]
    fn other_machines_do_not_match() {
        let mine = fp(&[("mid", "1"), ("mac", "2"), ("cpu", "3"), ("hst", "4")]);
        let same_model = fp(&[("mid", "7"), ("mac", "8"), ("cpu", "3"), ("hst", "4")]);
        assert!(
            !mine.matches(&same_model),
            "weak components alone never match"
        );
        let half = fp(&[("mid", "1"), ("mac", "8"), ("cpu", "9"), ("hst", "4")]);
        assert!(!mine.matches(&half), "as many differences as agreements");
        let weak_only = fp(&[("cpu", "3"), ("hst", "4")]);
        assert!(!weak_only.matches(&fp(&[("cpu", "3"), ("hst", "5")])));
        assert!(weak_only.matches(&weak_only.clone()));
    }

    #[test]
    fn text_form_round_trips_and_opaque_ids_match_exactly() {
        let mine = fp(&[("mid", "ab"), ("mac", "cd")]);
        assert_eq!(mine.as_str(), "ktfp1:mid=ab;mac=cd");
        assert_eq!(Fingerprint::parse(mine.as_str()), mine);
        let opaque = Fingerprint::parse("machine-a");
        assert_eq!(opaque.components(), [("raw".into(), "machine-a".into())]);
        assert!(opaque.matches(&Fingerprint::parse("machine-a")));
        assert!(!opaque.matches(&Fingerprint::parse("machine-b")));
        assert_eq!(Fingerprint::parse("ktfp1:").components()[0].0, "raw");
    }

    #[test]
    fn this_machine_has_a_stable_fingerprint() {
        let dir = std::env::temp_dir().join(format!("keyturn-fp-{}", std::process::id()));
        let file = dir.join("machine-id");
        let first = Fingerprint::current_with_identity_file(&file);
        let second = Fingerprint::current_with_identity_file(&file);
        assert_eq!(first, second);
        assert!(first.as_str().starts_with(PREFIX));
        assert!(first.as_str().len() <= 256, "the server accepts it");
        assert!(
            first
                .components()
                .iter()
                .any(|(n, _)| keyturn_protocol::fingerprint::is_strong(n)),
            "{first}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_identity_file_is_created_once() {
        let dir = std::env::temp_dir().join(format!("keyturn-idf-{}", std::process::id()));
        let file = dir.join("sub").join("machine-id");
        let id = identity(&file).unwrap();
        assert_eq!(identity(&file).unwrap(), id);
        assert_eq!(id.len(), 32);
        let _ = std::fs::remove_dir_all(dir);
    }
}
