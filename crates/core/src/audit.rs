//! What a license's audit entry says happened. One enum, so the console, the API and the
//! outgoing webhooks read the same words, and a new kind of change is a new variant the
//! compiler makes every reader consider rather than a string someone may spell differently.

/// The action of an audit entry on a license (`LicenseEvent::action` holds its text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    Created,
    Imported,
    Updated,
    Deleted,
    Extended,
    Renewed,
    ExpiryChanged,
    Blocked,
    Unblocked,
    FeatureAdded,
    FeatureRemoved,
    CustomerChanged,
    CustomerRemoved,
    PlanChanged,
    Subscribed,
    Activated,
    Deactivated,
    TrialStarted,
    LicenseFileIssued,
    DataObjectAdded,
    DataObjectSet,
    DataObjectIncremented,
    DataObjectDecremented,
    DataObjectRemoved,
}

impl AuditAction {
    pub const ALL: [AuditAction; 24] = [
        AuditAction::Created,
        AuditAction::Imported,
        AuditAction::Updated,
        AuditAction::Deleted,
        AuditAction::Extended,
        AuditAction::Renewed,
        AuditAction::ExpiryChanged,
        AuditAction::Blocked,
        AuditAction::Unblocked,
        AuditAction::FeatureAdded,
        AuditAction::FeatureRemoved,
        AuditAction::CustomerChanged,
        AuditAction::CustomerRemoved,
        AuditAction::PlanChanged,
        AuditAction::Subscribed,
        AuditAction::Activated,
        AuditAction::Deactivated,
        AuditAction::TrialStarted,
        AuditAction::LicenseFileIssued,
        AuditAction::DataObjectAdded,
        AuditAction::DataObjectSet,
        AuditAction::DataObjectIncremented,
        AuditAction::DataObjectDecremented,
        AuditAction::DataObjectRemoved,
    ];

    /// The text stored and shown (stable: audit logs written earlier use the same words).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Created => "created",
            AuditAction::Imported => "imported",
            AuditAction::Updated => "updated",
            AuditAction::Deleted => "deleted",
            AuditAction::Extended => "extended",
            AuditAction::Renewed => "renewed",
            AuditAction::ExpiryChanged => "expiry_changed",
            AuditAction::Blocked => "blocked",
            AuditAction::Unblocked => "unblocked",
            AuditAction::FeatureAdded => "feature_added",
            AuditAction::FeatureRemoved => "feature_removed",
            AuditAction::CustomerChanged => "customer_changed",
            AuditAction::CustomerRemoved => "customer_removed",
            AuditAction::PlanChanged => "plan_changed",
            AuditAction::Subscribed => "subscribed",
            AuditAction::Activated => "activated",
            AuditAction::Deactivated => "deactivated",
            AuditAction::TrialStarted => "trial_started",
            AuditAction::LicenseFileIssued => "license_file_issued",
            AuditAction::DataObjectAdded => "data_object.added",
            AuditAction::DataObjectSet => "data_object.set",
            AuditAction::DataObjectIncremented => "data_object.incremented",
            AuditAction::DataObjectDecremented => "data_object.decremented",
            AuditAction::DataObjectRemoved => "data_object.removed",
        }
    }

    /// Reads a stored action back.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_reads_back_as_itself() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
        }
        let mut texts: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        texts.sort();
        texts.dedup();
        assert_eq!(
            texts.len(),
            AuditAction::ALL.len(),
            "two actions share a text"
        );
        assert_eq!(AuditAction::parse("renamed"), None);
    }
}
