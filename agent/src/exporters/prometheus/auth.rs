//! Basic authentication for the endpoint. The config holds a SHA-256 of each password, never the
//! password, so a leaked config does not hand out the credentials of a long random password
//! (unsalted SHA-256 does not protect a guessable one: docs/export.md says to use a random one).
//! Without TLS the password crosses the network in clear, as with any basic auth.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `sha256:` and 64 hex digits: `printf %s "$password" | sha256sum`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PasswordHash([u8; 32]);

impl TryFrom<String> for PasswordHash {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("\"{s}\" is not \"sha256:\" and 64 hex digits");
        let hex = s.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(PasswordHash(out))
    }
}

impl From<PasswordHash> for String {
    fn from(h: PasswordHash) -> String {
        let hex: String = h.0.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }
}

/// Equal in time independent of where the first difference is.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an `Authorization` header value admits one of `users`. With no users, everyone is.
pub fn admits(users: &BTreeMap<String, PasswordHash>, authorization: Option<&[u8]>) -> bool {
    if users.is_empty() {
        return true;
    }
    let Some(encoded) = authorization
        .and_then(|a| a.strip_prefix(b"Basic "))
        .map(|a| a.trim_ascii())
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    let presented: [u8; 32] = Sha256::digest(password).into();
    match std::str::from_utf8(user).ok().and_then(|u| users.get(u)) {
        Some(stored) => same(&presented, &stored.0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // printf %s 'correct horse battery staple' | sha256sum
    const HASH: &str = "sha256:c4bbcb1fbec99d65bf59d85c8cb62ee2db963f0fe106f483d9afa73bd4e39a8a";

    fn users() -> BTreeMap<String, PasswordHash> {
        [(
            "prometheus".to_owned(),
            PasswordHash::try_from(HASH.to_owned()).unwrap(),
        )]
        .into()
    }

    fn basic(credentials: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
        .into_bytes()
    }

    #[test]
    fn the_right_password_is_admitted_and_nothing_else() {
        let u = users();
        assert!(admits(
            &u,
            Some(&basic("prometheus:correct horse battery staple"))
        ));
        assert!(!admits(
            &u,
            Some(&basic("prometheus:correct horse battery"))
        ));
        assert!(!admits(
            &u,
            Some(&basic("grafana:correct horse battery staple"))
        ));
        assert!(!admits(&u, Some(&basic("prometheus"))));
        assert!(!admits(&u, Some(b"Basic %%%")));
        assert!(!admits(&u, Some(b"Bearer abc")));
        assert!(!admits(&u, None));
        assert!(admits(&BTreeMap::new(), None), "no users means no auth");
    }

    #[test]
    fn hashes_parse_strictly_and_round_trip() {
        let h = PasswordHash::try_from(HASH.to_owned()).unwrap();
        assert_eq!(String::from(h), HASH);
        for bad in ["c4bbcb1f", "sha256:c4bb", "md5:00", &HASH.replace('c', "g")] {
            assert!(PasswordHash::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }
}
