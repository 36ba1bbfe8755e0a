//! Machine fingerprints as both sides read them.
//!
//! A fingerprint the client SDK builds is `ktfp1:` followed by `name=value` components separated
//! by `;` (values are hashes; see `keyturn-client`'s fingerprint module for the sources). Any other
//! text is a fingerprint a program chose itself: one opaque component named `raw`.
//!
//! Two fingerprints name the same machine when they are identical, or when at least one *strong*
//! component agrees and more of their shared components agree than differ. So one changed
//! component (a replaced network card, a renamed host) never makes a machine a stranger, while
//! another machine — which differs in every strong component — never matches. The server decides
//! activations with this rule and the client opens license files with it; a difference between
//! the two would lock out a paying user offline or let a second machine in, which is why it is
//! written only here.

/// The prefix of fingerprints made of components.
pub const PREFIX: &str = "ktfp1:";

/// Components that identify a machine by themselves. Weak ones (the host name, the CPU model)
/// are shared by many machines. `raw` stands for a fingerprint not made of components.
pub const STRONG: [&str; 7] = ["env", "mid", "dmi", "brd", "mac", "idf", "raw"];

/// Whether `name` is a strong component.
pub fn is_strong(name: &str) -> bool {
    STRONG.contains(&name)
}

/// Splits a fingerprint into its named components: `ktfp1:mid=…;mac=…` into pairs (parts without
/// a name or a value are skipped), any other text into the one opaque component `raw`.
pub fn components(fingerprint: &str) -> Vec<(&str, &str)> {
    let parsed: Option<Vec<(&str, &str)>> = fingerprint.strip_prefix(PREFIX).map(|rest| {
        rest.split(';')
            .filter_map(|c| c.split_once('='))
            .filter(|(n, v)| !n.is_empty() && !v.is_empty())
            .collect()
    });
    match parsed {
        Some(components) if !components.is_empty() => components,
        _ => vec![("raw", fingerprint)],
    }
}

/// Whether fingerprints `a` and `b` name the same machine (see the module's rule).
pub fn same_machine(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let theirs = components(b);
    let (mut agree, mut differ, mut strong) = (0usize, 0usize, false);
    for (name, value) in components(a) {
        match theirs.iter().find(|(n, _)| *n == name) {
            Some((_, v)) if *v == value => {
                agree += 1;
                strong |= is_strong(name);
            }
            Some(_) => differ += 1,
            None => {}
        }
    }
    strong && agree > differ
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_changed_component_is_the_same_machine() {
        let fp = "ktfp1:mid=1;mac=2;cpu=3;hst=4";
        assert!(same_machine(fp, "ktfp1:mid=1;mac=9;cpu=3;hst=4"));
        assert!(same_machine(fp, "ktfp1:mid=1;mac=2;cpu=3;hst=9"));
        assert!(!same_machine(fp, "ktfp1:mid=7;mac=8;cpu=3;hst=4"));
        assert!(!same_machine(fp, "ktfp1:mid=1;mac=8;cpu=9;hst=4"));
        // Weak components alone never make a match.
        assert!(!same_machine(
            "ktfp1:cpu=3;hst=4",
            "ktfp1:cpu=3;hst=4;mid=5"
        ));
    }

    #[test]
    fn the_rule_is_symmetric() {
        let pairs = [
            ("ktfp1:mid=1;mac=2;hst=4", "ktfp1:mid=1;mac=9;cpu=3"),
            ("ktfp1:mid=1", "ktfp1:mid=1;mac=2;cpu=3"),
            ("machine-a", "ktfp1:raw=machine-a"),
        ];
        for (a, b) in pairs {
            assert_eq!(same_machine(a, b), same_machine(b, a), "{a} / {b}");
        }
    }

    #[test]
    fn opaque_fingerprints_match_only_exactly() {
        assert!(same_machine("machine-a", "machine-a"));
        assert!(!same_machine("machine-a", "machine-b"));
        assert_eq!(components("machine-a"), [("raw", "machine-a")]);
        assert_eq!(components("ktfp1:"), [("raw", "ktfp1:")]);
        assert_eq!(components("ktfp1:=x;mid=;mac=2"), [("mac", "2")]);
    }
}
