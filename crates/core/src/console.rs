//! The people who use the admin console: their roles, what each role may do, and the rules a
//! console page shows at a glance (a license's status). Pure rules; time is passed in.
//!
//! A role is only a name for a set of [`Permission`]s: a console user acts through the same
//! principal, permission and product-scope checks as an access token, so no page can do more
//! than the API would let the same permissions do.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

use crate::{DomainError, License, Permission};

/// What a console user is there for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including the console's own users.
    Owner,
    /// Everything the API allows (products, plans, tokens, payments, licenses).
    Admin,
    /// Finds licenses and changes them for a customer: machines, features, expiry, blocks, notes.
    Support,
    /// Issues and extends licenses, manages customers.
    Sales,
    /// Looks, changes nothing.
    ReadOnly,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Support,
        Role::Sales,
        Role::ReadOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Support => "support",
            Role::Sales => "sales",
            Role::ReadOnly => "read_only",
        }
    }

    /// The permissions the role grants. Owner and admin differ only in what is not an API
    /// permission (managing console users), so both hold `admin`.
    pub fn permissions(self) -> Vec<Permission> {
        use Permission::*;
        match self {
            Role::Owner | Role::Admin => vec![Admin],
            Role::Support => vec![
                ProductsRead,
                PlansRead,
                CustomersRead,
                LicensesRead,
                LicensesWrite,
                ActivationsRead,
                ActivationsWrite,
                EventsRead,
                PaymentsRead,
            ],
            Role::Sales => vec![
                ProductsRead,
                PlansRead,
                CustomersRead,
                CustomersWrite,
                LicensesRead,
                LicensesWrite,
                ActivationsRead,
                EventsRead,
                PaymentsRead,
            ],
            Role::ReadOnly => vec![
                ProductsRead,
                PlansRead,
                CustomersRead,
                LicensesRead,
                ActivationsRead,
                EventsRead,
                PaymentsRead,
            ],
        }
    }

    /// Whether the role manages the console's users.
    pub fn manages_users(self) -> bool {
        self == Role::Owner
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().replace('-', "_");
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(&wanted))
            .ok_or_else(|| {
                DomainError::new(
                    "role",
                    format!(
                        "unknown role {s:?}; known are owner, admin, support, sales, read_only"
                    ),
                )
            })
    }
}

/// The shortest password a console user may have: long enough that guessing it online, at
/// the pace login throttling allows, is hopeless.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password hashed (argon2 takes any length; an unbounded one is free CPU for
/// whoever posts it).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A password as typed, checked for length only (composition rules make passwords worse).
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

impl Password {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let input = input.trim_end_matches(['\r', '\n']);
        if input.chars().count() < MIN_PASSWORD_CHARS {
            return Err(DomainError::new(
                "password",
                format!("must be at least {MIN_PASSWORD_CHARS} characters long"),
            ));
        }
        if input.len() > MAX_PASSWORD_BYTES {
            return Err(DomainError::new(
                "password",
                format!("must be at most {MAX_PASSWORD_BYTES} bytes long"),
            ));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A console user as stored (without the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleUser {
    pub id: i64,
    pub email: String,
    pub role: Role,
    /// The one product the user may see, if limited.
    pub product_id: Option<i64>,
    pub created: DateTime<Utc>,
    pub disabled: bool,
}

/// How far ahead an expiry makes a license "expiring soon".
pub const EXPIRING_SOON_DAYS: i64 = 14;

/// A license's state as a person looking at it wants it said, most pressing first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseStatus {
    Blocked,
    Expired,
    ExpiringSoon,
    Valid,
}

impl LicenseStatus {
    /// Blocked wins over expired (unblocking alone would not make it valid, but blocking is
    /// what someone did on purpose); an expiry within [`EXPIRING_SOON_DAYS`] is soon.
    pub fn of(license: &License, now: DateTime<Utc>) -> Self {
        if license.blocked {
            return LicenseStatus::Blocked;
        }
        match license.expires {
            Some(at) if at <= now => LicenseStatus::Expired,
            Some(at) if at - now <= Duration::days(EXPIRING_SOON_DAYS) => {
                LicenseStatus::ExpiringSoon
            }
            _ => LicenseStatus::Valid,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            LicenseStatus::Blocked => "blocked",
            LicenseStatus::Expired => "expired",
            LicenseStatus::ExpiringSoon => "expiring soon",
            LicenseStatus::Valid => "valid",
        }
    }

    /// A name safe for a CSS class.
    pub fn class(self) -> &'static str {
        match self {
            LicenseStatus::Blocked => "blocked",
            LicenseStatus::Expired => "expired",
            LicenseStatus::ExpiringSoon => "soon",
            LicenseStatus::Valid => "valid",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn license(blocked: bool, expires: Option<DateTime<Utc>>) -> License {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        License {
            id: 1,
            key: "AAAAA-BBBBB-CCCCC-DDDDD".into(),
            product_id: 1,
            plan_id: None,
            customer_id: None,
            created: at,
            updated: at,
            expires,
            period_days: None,
            features: vec![],
            max_machines: 0,
            floating_lease_seconds: None,
            trial: false,
            notes: String::new(),
            blocked,
            metadata: serde_json::json!({}),
            trial_activation: false,
            allowed_machines: vec![],
        }
    }

    #[test]
    fn status_says_the_most_pressing_state() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let days = |d: i64| Some(now + Duration::days(d));
        assert_eq!(
            LicenseStatus::of(&license(false, None), now),
            LicenseStatus::Valid
        );
        assert_eq!(
            LicenseStatus::of(&license(false, days(15)), now),
            LicenseStatus::Valid
        );
        assert_eq!(
            LicenseStatus::of(&license(false, days(14)), now),
            LicenseStatus::ExpiringSoon
        );
        assert_eq!(
            LicenseStatus::of(&license(false, Some(now)), now),
            LicenseStatus::Expired
        );
        assert_eq!(
            LicenseStatus::of(&license(true, days(-3)), now),
            LicenseStatus::Blocked
        );
    }

    #[test]
    fn roles_parse_and_only_owners_and_admins_hold_admin() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert_eq!("read-only".parse::<Role>().unwrap(), Role::ReadOnly);
        assert!("root".parse::<Role>().is_err());
        for role in [Role::Support, Role::Sales, Role::ReadOnly] {
            let p = role.permissions();
            assert!(!p.contains(&Permission::Admin));
            assert!(!p.contains(&Permission::TokensManage), "{role}");
        }
        assert!(!Role::ReadOnly
            .permissions()
            .iter()
            .any(|p| p.as_str().ends_with(":write")));
        assert!(Role::Owner.manages_users() && !Role::Admin.manages_users());
    }

    #[test]
    fn passwords_need_twelve_characters() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("twelve chars").is_ok());
        assert_eq!(
            Password::parse("twelve chars\n").unwrap().expose(),
            "twelve chars"
        );
        assert!(Password::parse(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }
}
