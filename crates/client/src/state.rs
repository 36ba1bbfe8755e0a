//! The local state file: the latest time this program has seen (to notice a clock turned back),
//! the last good validation of each key (to run offline for a grace period), and the fingerprint
//! this machine is known by on the server (so one changed component keeps its activation).
//!
//! Cached validations are kept as the server's signed reply bytes and re-verified on every use,
//! so editing the file cannot make a license valid.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct State {
    /// The latest local time seen by a validation.
    #[serde(default)]
    pub last_seen: Option<DateTime<Utc>>,
    #[serde(default)]
    pub machine: Option<MachineIdentity>,
    /// By license key.
    #[serde(default)]
    pub validations: BTreeMap<String, CachedReply>,
}

/// The fingerprint the server knows this machine by, and the one last read from the machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MachineIdentity {
    pub known_as: String,
    pub observed: String,
}

/// A signed validation reply, exactly as the server sent it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CachedReply {
    /// Base64 of the reply body.
    pub body: String,
    pub signature: String,
    /// The fingerprint the reply was asked for.
    pub fingerprint: String,
}

impl State {
    /// Reads the state; a missing or unreadable file is an empty state (a half-written file must
    /// not lock anybody out; writes are atomic anyway).
    pub fn load(path: &Path) -> Self {
        std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Writes the state atomically: to a temporary file, then renamed over the old one.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let fail = |e: std::io::Error| Error::State(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let bytes = serde_json::to_vec_pretty(self).expect("the state always serialises");
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(fail)
    }

    /// Refuses a time earlier than the latest one seen (beyond `tolerance`), else records it.
    pub fn observe(&mut self, now: DateTime<Utc>, tolerance: Duration) -> Result<(), Error> {
        if let Some(last_seen) = self.last_seen {
            if now + tolerance < last_seen {
                return Err(Error::ClockRolledBack { last_seen, now });
            }
        }
        self.touch(now);
        Ok(())
    }

    /// Records `now` as seen, keeping the latest time.
    pub fn touch(&mut self, now: DateTime<Utc>) {
        self.last_seen = Some(self.last_seen.map_or(now, |seen| seen.max(now)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_only_moves_forward() {
        let now = Utc::now();
        let tolerance = Duration::minutes(5);
        let mut state = State::default();
        state.observe(now, tolerance).unwrap();
        state
            .observe(now - Duration::minutes(4), tolerance)
            .unwrap();
        assert_eq!(state.last_seen, Some(now), "the latest time is kept");
        assert!(matches!(
            state.observe(now - Duration::minutes(6), tolerance),
            Err(Error::ClockRolledBack { .. })
        ));
    }

    #[test]
    fn state_survives_a_round_trip_and_garbage_reads_as_empty() {
        let dir = std::env::temp_dir().join(format!("keyturn-state-{}", std::process::id()));
        let path = dir.join("state.json");
        let mut state = State::default();
        state.touch(Utc::now());
        state.save(&path).unwrap();
        assert_eq!(State::load(&path).last_seen, state.last_seen);
        std::fs::write(&path, b"{not json").unwrap();
        assert!(State::load(&path).last_seen.is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
