//! The issuer's domain types: a principal and a scope are checked once,
//! when they are made, and carried as types after that; a key id is the
//! core's [`KeyId`], shown as hex.

use std::fmt;

use serde::Serialize;

use super::{IssuerError, Result};
use keygate::KeyId;

/// Who a key belongs to: 1-128 bytes, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Principal(String);

impl Principal {
    /// `s` as a principal, or `Invalid` saying why not.
    pub fn new(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        if s.is_empty() || s.len() > keygate::MAX_PRINCIPAL_LEN || s.chars().any(char::is_control) {
            return Err(IssuerError::Invalid(format!(
                "principal must be 1-128 bytes without control characters: {s:?}"
            )));
        }
        Ok(Self(s))
    }

    /// The principal as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A principal read back from the store: anything invalid is damage.
    pub(crate) fn from_store(s: String) -> Result<Self> {
        Self::new(s).map_err(|e| IssuerError::Corrupt(format!("stored {e}")))
    }
}

/// A permission a key carries: 1-64 printable ASCII characters, no `"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Scope(String);

impl Scope {
    /// `s` as a scope, or `Invalid` saying why not.
    pub fn new(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= keygate::MAX_SCOPE_LEN
            && s.bytes().all(|c| c.is_ascii_graphic() && c != b'"');
        if !ok {
            return Err(IssuerError::Invalid(format!(
                "scope must be 1-64 printable ASCII chars: {s:?}"
            )));
        }
        Ok(Self(s))
    }

    /// Scopes from text, each checked.
    pub fn all<S: Into<String>>(v: impl IntoIterator<Item = S>) -> Result<Vec<Self>> {
        v.into_iter().map(Self::new).collect()
    }

    /// The scope as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Scopes as the store keeps them: one space-separated text.
    pub(crate) fn join(scopes: &[Self]) -> String {
        Self::list(scopes, " ")
    }

    /// Scopes as one text, separated by `sep` (for showing them).
    pub fn list(scopes: &[Self], sep: &str) -> String {
        scopes
            .iter()
            .map(Self::as_str)
            .collect::<Vec<_>>()
            .join(sep)
    }

    /// Scopes read back from the store.
    pub(crate) fn split_stored(s: &str) -> Result<Vec<Self>> {
        s.split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| Self::new(s).map_err(|e| IssuerError::Corrupt(format!("stored {e}"))))
            .collect()
    }
}

macro_rules! text_type {
    ($t:ty) => {
        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, o: &str) -> bool {
                self.0 == o
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, o: &&str) -> bool {
                self.0 == *o
            }
        }
        impl PartialEq<String> for $t {
            fn eq(&self, o: &String) -> bool {
                &self.0 == o
            }
        }
        impl std::str::FromStr for $t {
            type Err = IssuerError;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }
        impl crate::db::ToValue for $t {
            fn to_value(&self) -> crate::db::Value {
                crate::db::Value::Text(self.0.clone())
            }
        }
    };
}
text_type!(Principal);
text_type!(Scope);

/// A key id as a caller gives it (32 hex digits), or `Invalid`.
pub fn parse_key_id(s: &str) -> Result<KeyId> {
    KeyId::from_hex(s)
        .ok_or_else(|| IssuerError::Invalid(format!("a key id is 32 hex digits: {s:?}")))
}

/// A key id read back from the store.
pub(crate) fn stored_key_id(s: &str) -> Result<KeyId> {
    KeyId::from_hex(s).ok_or_else(|| IssuerError::Corrupt(format!("stored key id {s:?}")))
}

/// Key ids serialize as their hex text.
pub(crate) mod key_id_hex {
    use keygate::KeyId;

    pub(crate) fn serialize<S: serde::Serializer>(
        id: &KeyId,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(id)
    }
}

impl crate::db::FromValue for KeyId {
    fn from_value(v: &crate::db::Value) -> Result<Self> {
        stored_key_id(&String::from_value(v)?)
    }
}

impl crate::db::FromValue for Principal {
    fn from_value(v: &crate::db::Value) -> Result<Self> {
        Self::from_store(String::from_value(v)?)
    }
}

impl crate::db::ToValue for KeyId {
    fn to_value(&self) -> crate::db::Value {
        crate::db::Value::Text(self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_and_scopes_are_checked_once_when_made() {
        assert_eq!(Principal::new("billing").unwrap(), "billing");
        assert!(Principal::new("").is_err());
        assert!(Principal::new("a\nb").is_err());
        assert!(Principal::new("p".repeat(129)).is_err());
        assert_eq!(
            Scope::new("invoices:read").unwrap().as_str(),
            "invoices:read"
        );
        for bad in ["", "two words", "quo\"te", "é"] {
            assert!(Scope::new(bad).is_err(), "{bad:?}");
        }
        let s = Scope::all(["a", "b"]).unwrap();
        assert_eq!(Scope::join(&s), "a b");
        assert_eq!(Scope::split_stored("a b").unwrap(), s);
        assert!(matches!(
            Scope::split_stored("a \u{1}"),
            Err(IssuerError::Corrupt(_))
        ));
        assert_eq!(
            serde_json::to_value(Principal::new("p").unwrap()).unwrap(),
            "p"
        );
    }
}
