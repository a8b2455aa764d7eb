//! Attribute matchers of a rule: `"key" = "value"` (equal), `"key" = ""` (the attribute is
//! absent), `"key" = "!value"` (anything but `value`, absent included, as Prometheus's `!=`).

use std::collections::BTreeMap;

use crate::model::{AttrKey, Attrs};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    Absent,
    Equal(String),
    NotEqual(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    key: AttrKey,
    want: Want,
}

impl Matcher {
    /// Compiles a rule's `match` table. Unknown keys are rejected by `validate_rules`; should
    /// one slip through, it yields a matcher that matches nothing rather than everything.
    pub fn compile(table: &BTreeMap<String, String>) -> Option<Vec<Matcher>> {
        table
            .iter()
            .map(|(k, v)| {
                let key = AttrKey::from_name(k)?;
                let want = if v.is_empty() {
                    Want::Absent
                } else if let Some(rest) = v.strip_prefix('!') {
                    Want::NotEqual(rest.to_owned())
                } else {
                    Want::Equal(v.clone())
                };
                Some(Matcher { key, want })
            })
            .collect()
    }

    pub fn key(&self) -> AttrKey {
        self.key
    }

    pub fn matches(&self, attrs: &Attrs) -> bool {
        let have = attrs.get(self.key).map(|v| v.as_text());
        match (&self.want, have) {
            (Want::Absent, have) => have.is_none(),
            (Want::Equal(w), Some(h)) => *w == h,
            (Want::Equal(_), None) => false,
            (Want::NotEqual(w), Some(h)) => *w != h,
            (Want::NotEqual(_), None) => true,
        }
    }
}

/// True when every matcher matches.
pub fn all_match(matchers: &[Matcher], attrs: &Attrs) -> bool {
    matchers.iter().all(|m| m.matches(attrs))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn attrs_with_pool(pool: Option<&str>) -> Attrs {
        let a = Attrs::new().with(AttrKey::ZfsPoolHealthState, "ONLINE");
        match pool {
            Some(p) => a.with(AttrKey::ZfsPoolName, p),
            None => a,
        }
    }

    #[rstest]
    #[case::equal_hit("tank", Some("tank"), true)]
    #[case::equal_miss("tank", Some("rpool"), false)]
    #[case::equal_absent("tank", None, false)]
    #[case::absent_hit("", None, true)]
    #[case::absent_miss("", Some("tank"), false)]
    #[case::negated_hit("!tank", Some("rpool"), true)]
    #[case::negated_miss("!tank", Some("tank"), false)]
    #[case::negated_absent("!tank", None, true)]
    fn matcher_semantics(#[case] want: &str, #[case] have: Option<&str>, #[case] hit: bool) {
        let table = BTreeMap::from([("zfs.pool.name".to_owned(), want.to_owned())]);
        let m = Matcher::compile(&table).unwrap();
        assert_eq!(all_match(&m, &attrs_with_pool(have)), hit);
    }

    #[test]
    fn unknown_key_does_not_compile() {
        let table = BTreeMap::from([("no.such.key".to_owned(), "x".to_owned())]);
        assert_eq!(Matcher::compile(&table), None);
    }
}
