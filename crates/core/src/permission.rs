use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::DomainError;

/// One action an access token may be allowed to take. `Admin` allows everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    Admin,
    ProductsRead,
    ProductsWrite,
    PlansRead,
    PlansWrite,
    CustomersRead,
    CustomersWrite,
    LicensesRead,
    LicensesWrite,
    LicensesDelete,
    ActivationsRead,
    ActivationsWrite,
    EventsRead,
    TokensManage,
    PaymentsRead,
    PaymentsWrite,
}

impl Permission {
    pub const ALL: [Permission; 16] = [
        Permission::Admin,
        Permission::ProductsRead,
        Permission::ProductsWrite,
        Permission::PlansRead,
        Permission::PlansWrite,
        Permission::CustomersRead,
        Permission::CustomersWrite,
        Permission::LicensesRead,
        Permission::LicensesWrite,
        Permission::LicensesDelete,
        Permission::ActivationsRead,
        Permission::ActivationsWrite,
        Permission::EventsRead,
        Permission::TokensManage,
        Permission::PaymentsRead,
        Permission::PaymentsWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Admin => "admin",
            Permission::ProductsRead => "products:read",
            Permission::ProductsWrite => "products:write",
            Permission::PlansRead => "plans:read",
            Permission::PlansWrite => "plans:write",
            Permission::CustomersRead => "customers:read",
            Permission::CustomersWrite => "customers:write",
            Permission::LicensesRead => "licenses:read",
            Permission::LicensesWrite => "licenses:write",
            Permission::LicensesDelete => "licenses:delete",
            Permission::ActivationsRead => "activations:read",
            Permission::ActivationsWrite => "activations:write",
            Permission::EventsRead => "events:read",
            Permission::TokensManage => "tokens:manage",
            Permission::PaymentsRead => "payments:read",
            Permission::PaymentsWrite => "payments:write",
        }
    }

    /// Whether holding `self` allows `wanted`.
    pub fn grants(self, wanted: Permission) -> bool {
        self == Permission::Admin || self == wanted
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim())
            .ok_or_else(|| {
                let known: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
                DomainError::new(
                    "permissions",
                    format!("unknown permission {s:?}; known: {}", known.join(", ")),
                )
            })
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_round_trips_through_its_name() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), p);
        }
        assert!("licenses:fly".parse::<Permission>().is_err());
    }

    #[test]
    fn admin_grants_everything_and_others_only_themselves() {
        assert!(Permission::Admin.grants(Permission::TokensManage));
        assert!(Permission::LicensesRead.grants(Permission::LicensesRead));
        assert!(!Permission::LicensesRead.grants(Permission::LicensesWrite));
    }
}
