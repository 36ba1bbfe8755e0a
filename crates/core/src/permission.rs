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
    /// Outgoing webhooks: endpoints, their deliveries and log.
    WebhooksRead,
    /// Create, change, rotate and delete endpoints; retry deliveries; send test events.
    WebhooksWrite,
    // Cryptolens Web API methods (`/api/...`), one permission each as in Cryptolens's access
    // tokens. They allow the method on the Cryptolens API only.
    ClActivate,
    ClDeactivate,
    ClGetKey,
    ClCreateKey,
    ClCreateTrialKey,
    ClExtendLicense,
    ClBlockKey,
    ClUnblockKey,
    ClAddFeature,
    ClRemoveFeature,
    ClMachineLockLimit,
    ClChangeNotes,
    ClChangeCustomer,
    ClAddCustomer,
    ClGetCustomerLicenses,
    ClGetCustomers,
    ClEditCustomer,
    ClRemoveCustomer,
    ClGetCustomerLicensesBySecret,
    ClGetKeys,
    ClGetProducts,
    // Data objects: one permission per operation, covering its key, machine-code and generic
    // forms (`IncrementIntValueToKey`, `…ToMachineCode`, `IncrementIntValue`), as in
    // Cryptolens's access tokens.
    ClAddDataObject,
    ClListDataObjects,
    ClRemoveDataObject,
    ClSetIntValue,
    ClSetStringValue,
    ClIncrementIntValue,
    ClDecrementIntValue,
    ClGetMessages,
    /// `CreateMessage` and `RemoveMessage` (Cryptolens's "Edit Messages").
    ClEditMessages,
}

impl Permission {
    pub const ALL: [Permission; 48] = [
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
        Permission::WebhooksRead,
        Permission::WebhooksWrite,
        Permission::ClActivate,
        Permission::ClDeactivate,
        Permission::ClGetKey,
        Permission::ClCreateKey,
        Permission::ClCreateTrialKey,
        Permission::ClExtendLicense,
        Permission::ClBlockKey,
        Permission::ClUnblockKey,
        Permission::ClAddFeature,
        Permission::ClRemoveFeature,
        Permission::ClMachineLockLimit,
        Permission::ClChangeNotes,
        Permission::ClChangeCustomer,
        Permission::ClAddCustomer,
        Permission::ClGetCustomerLicenses,
        Permission::ClGetCustomers,
        Permission::ClEditCustomer,
        Permission::ClRemoveCustomer,
        Permission::ClGetCustomerLicensesBySecret,
        Permission::ClGetKeys,
        Permission::ClGetProducts,
        Permission::ClAddDataObject,
        Permission::ClListDataObjects,
        Permission::ClRemoveDataObject,
        Permission::ClSetIntValue,
        Permission::ClSetStringValue,
        Permission::ClIncrementIntValue,
        Permission::ClDecrementIntValue,
        Permission::ClGetMessages,
        Permission::ClEditMessages,
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
            Permission::WebhooksRead => "webhooks:read",
            Permission::WebhooksWrite => "webhooks:write",
            Permission::ClActivate => "cryptolens:activate",
            Permission::ClDeactivate => "cryptolens:deactivate",
            Permission::ClGetKey => "cryptolens:getkey",
            Permission::ClCreateKey => "cryptolens:createkey",
            Permission::ClCreateTrialKey => "cryptolens:createtrialkey",
            Permission::ClExtendLicense => "cryptolens:extendlicense",
            Permission::ClBlockKey => "cryptolens:blockkey",
            Permission::ClUnblockKey => "cryptolens:unblockkey",
            Permission::ClAddFeature => "cryptolens:addfeature",
            Permission::ClRemoveFeature => "cryptolens:removefeature",
            Permission::ClMachineLockLimit => "cryptolens:machinelocklimit",
            Permission::ClChangeNotes => "cryptolens:changenotes",
            Permission::ClChangeCustomer => "cryptolens:changecustomer",
            Permission::ClAddCustomer => "cryptolens:addcustomer",
            Permission::ClGetCustomerLicenses => "cryptolens:getcustomerlicenses",
            Permission::ClGetCustomers => "cryptolens:getcustomers",
            Permission::ClEditCustomer => "cryptolens:editcustomer",
            Permission::ClRemoveCustomer => "cryptolens:removecustomer",
            Permission::ClGetCustomerLicensesBySecret => "cryptolens:getcustomerlicensesbysecret",
            Permission::ClGetKeys => "cryptolens:getkeys",
            Permission::ClGetProducts => "cryptolens:getproducts",
            Permission::ClAddDataObject => "cryptolens:adddataobject",
            Permission::ClListDataObjects => "cryptolens:listdataobjects",
            Permission::ClRemoveDataObject => "cryptolens:removedataobject",
            Permission::ClSetIntValue => "cryptolens:setintvalue",
            Permission::ClSetStringValue => "cryptolens:setstringvalue",
            Permission::ClIncrementIntValue => "cryptolens:incrementintvalue",
            Permission::ClDecrementIntValue => "cryptolens:decrementintvalue",
            Permission::ClGetMessages => "cryptolens:getmessages",
            Permission::ClEditMessages => "cryptolens:editmessages",
        }
    }

    /// The permission for a Cryptolens Web API method, by its name in any case (`Activate`,
    /// `getkey`, `IncrementIntValueToKey`); `None` for a method Keyturn does not serve.
    pub fn cryptolens_method(method: &str) -> Option<Permission> {
        let method = method.to_ascii_lowercase();
        let named = match method.as_str() {
            "createmessage" | "removemessage" => "editmessages",
            m => m
                .strip_suffix("tomachinecode")
                .or_else(|| m.strip_suffix("tokey"))
                .filter(|family| family.contains("dataobject") || family.ends_with("value"))
                .unwrap_or(m),
        };
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str().strip_prefix("cryptolens:") == Some(named))
    }

    /// The permissions in brief, for messages: `admin, products:read|write, …, and
    /// cryptolens:<method>` (one per Cryptolens method, too many to list in an error).
    pub fn summary() -> String {
        let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
        for p in Permission::ALL {
            let name = p.as_str();
            if name.starts_with("cryptolens:") {
                continue;
            }
            let (group, action) = name.split_once(':').unwrap_or((name, ""));
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, actions)) => actions.push(action),
                None => groups.push((group, vec![action])),
            }
        }
        let listed: Vec<String> = groups
            .into_iter()
            .map(|(group, actions)| match actions.as_slice() {
                [""] => group.to_owned(),
                _ => format!("{group}:{}", actions.join("|")),
            })
            .collect();
        format!(
            "{}, and cryptolens:<method> per Cryptolens API method (e.g. cryptolens:activate)",
            listed.join(", ")
        )
    }

    /// Whether this is a Cryptolens Web API method (`cryptolens:…`), which allows that method on
    /// the Cryptolens API and nothing on the native one.
    pub fn is_cryptolens_method(self) -> bool {
        self.as_str().starts_with("cryptolens:")
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
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                DomainError::new(
                    "permissions",
                    format!(
                        "unknown permission {s:?}; known are {}",
                        Permission::summary()
                    ),
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
        let unknown = "licenses:fly".parse::<Permission>().unwrap_err();
        assert!(
            unknown.message.contains("\"licenses:fly\"")
                && unknown.message.contains("licenses:read|write|delete")
                && unknown.message.contains("cryptolens:<method>")
                && unknown.message.len() < 320,
            "{unknown}"
        );
        assert_eq!(
            "cryptolens:GetKey".parse::<Permission>().unwrap(),
            Permission::ClGetKey
        );
    }

    #[test]
    fn admin_grants_everything_and_others_only_themselves() {
        assert!(Permission::Admin.grants(Permission::TokensManage));
        assert!(Permission::LicensesRead.grants(Permission::LicensesRead));
        assert!(!Permission::LicensesRead.grants(Permission::LicensesWrite));
        assert!(Permission::Admin.grants(Permission::ClActivate));
        assert!(!Permission::LicensesWrite.grants(Permission::ClCreateKey));
    }

    #[test]
    fn cryptolens_methods_map_to_their_permission_in_any_case() {
        assert_eq!(
            Permission::cryptolens_method("Activate"),
            Some(Permission::ClActivate)
        );
        assert_eq!(
            Permission::cryptolens_method("getcustomerlicenses"),
            Some(Permission::ClGetCustomerLicenses)
        );
        assert_eq!(
            Permission::cryptolens_method("GetCustomerLicensesBySecret"),
            Some(Permission::ClGetCustomerLicensesBySecret)
        );
        assert_eq!(
            Permission::cryptolens_method("EditCustomer"),
            Some(Permission::ClEditCustomer)
        );
        assert_eq!(Permission::cryptolens_method("Fly"), None);
        assert_eq!(
            Permission::cryptolens_method("IncrementIntValueToKey"),
            Some(Permission::ClIncrementIntValue)
        );
        assert_eq!(
            Permission::cryptolens_method("listdataobjectstomachinecode"),
            Some(Permission::ClListDataObjects)
        );
        assert_eq!(
            Permission::cryptolens_method("RemoveDataObject"),
            Some(Permission::ClRemoveDataObject)
        );
        assert_eq!(
            Permission::cryptolens_method("CreateMessage"),
            Some(Permission::ClEditMessages)
        );
        // Only data-object methods have key and machine-code forms.
        assert_eq!(Permission::cryptolens_method("GetKeyToKey"), None);
        assert!(Permission::ClGetKey.is_cryptolens_method());
        assert!(!Permission::Admin.is_cryptolens_method());
        assert!(!Permission::LicensesRead.is_cryptolens_method());
    }
}
