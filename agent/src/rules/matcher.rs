//! Attribute matchers of a rule: `"key" = "value"` (equal), `"key" = ""` (the attribute is
//! absent), `"key" = "!value"` (anything but `value`, absent included, as Prometheus's `!=`),
//! `"key" = "{13,31,61-64}"` (an integer attribute in the set, ranges inclusive; `"!{...}"`
//! anything else, absent included): how the `gpu_xid` rule names the XID families it pages on.

use std::collections::BTreeMap;

use crate::model::{AttrKey, Attrs};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    Absent,
    Equal(String),
    NotEqual(String),
    In(IntSet),
    NotIn(IntSet),
}

/// Integers and inclusive ranges, as written in `{13,31,61-64}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntSet(Vec<(i64, i64)>);

impl IntSet {
    /// Parses `{a,b-c,...}`; None when the value is not in braces. Err says what is wrong.
    pub fn parse(value: &str) -> Option<Result<IntSet, String>> {
        let inner = value.strip_prefix('{')?.strip_suffix('}')?;
        let mut ranges = Vec::new();
        for item in inner.split(',').map(str::trim) {
            let range = match item.split_once('-') {
                Some((a, b)) => a.trim().parse().and_then(|a| Ok((a, b.trim().parse()?))),
                None => item.parse().map(|a| (a, a)),
            };
            match range {
                Ok((a, b)) if a <= b => ranges.push((a, b)),
                _ => {
                    return Some(Err(format!(
                        "\"{item}\" in \"{value}\" is not an integer or a range low-high"
                    )));
                }
            }
        }
        Some(Ok(IntSet(ranges)))
    }

    pub fn contains(&self, v: i64) -> bool {
        self.0.iter().any(|(a, b)| (*a..=*b).contains(&v))
    }

    /// True when the attribute's text is an integer in the set.
    fn holds(&self, text: &str) -> bool {
        text.parse().is_ok_and(|v| self.contains(v))
    }
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
                let (negated, rest) = match v.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, v.as_str()),
                };
                // A malformed set (rejected by `validate_rules`) compiles to nothing at all.
                let want = match (v.is_empty(), negated, IntSet::parse(rest)) {
                    (true, _, _) => Want::Absent,
                    (_, false, Some(set)) => Want::In(set.ok()?),
                    (_, true, Some(set)) => Want::NotIn(set.ok()?),
                    (_, true, None) => Want::NotEqual(rest.to_owned()),
                    (_, false, None) => Want::Equal(v.clone()),
                };
                Some(Matcher { key, want })
            })
            .collect()
    }

    pub fn key(&self) -> AttrKey {
        self.key
    }

    pub fn matches(&self, attrs: &Attrs) -> bool {
        let Some(have) = attrs.get(self.key) else {
            return matches!(self.want, Want::Absent | Want::NotEqual(_) | Want::NotIn(_));
        };
        // The attribute's text, borrowed: every point of the rule's metric is matched every
        // tick, and a copy of each text was an allocation (issue 20).
        have.with_text(|h| match &self.want {
            Want::Absent => false,
            Want::Equal(w) => w == h,
            Want::NotEqual(w) => w != h,
            Want::In(set) => set.holds(h),
            Want::NotIn(set) => !set.holds(h),
        })
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
            Some(p) => a.with(AttrKey::ZfsPoolName, p.to_owned()),
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

    fn xid(x: Option<u32>) -> Attrs {
        let a = Attrs::new().with(AttrKey::HwId, "GPU-1");
        match x {
            Some(x) => a.with(AttrKey::HwGpuXid, x),
            None => a,
        }
    }

    /// The XID families the shipped `gpu_xid` rule pages on, edge by edge.
    #[rstest]
    #[case::graphics_engine_exception(13, true)]
    #[case::mmu_fault(31, true)]
    #[case::stopped_processing(43, true)]
    #[case::preemptive_cleanup(45, true)]
    #[case::double_bit_ecc(48, true)]
    #[case::below_range(60, false)]
    #[case::range_low(61, true)]
    #[case::range_mid(63, true)]
    #[case::range_high(64, true)]
    #[case::above_range(65, false)]
    #[case::nvdec(68, true)]
    #[case::class_error(69, true)]
    #[case::nvlink(74, true)]
    #[case::off_the_bus(79, true)]
    #[case::sbe_rate_92(92, true)]
    #[case::uncontained_95(95, true)]
    #[case::after(96, false)]
    #[case::app_memory_fault_not_listed(32, false)]
    #[case::unknown_999(999, false)]
    fn xid_families(#[case] x: u32, #[case] hit: bool) {
        let set = "{13,31,43,45,48,61-64,68,69,74,79,92-95}";
        let table = BTreeMap::from([("hw.gpu.xid".to_owned(), set.to_owned())]);
        let m = Matcher::compile(&table).unwrap();
        assert_eq!(all_match(&m, &xid(Some(x))), hit, "XID {x}");
        let negated = BTreeMap::from([("hw.gpu.xid".to_owned(), format!("!{set}"))]);
        let n = Matcher::compile(&negated).unwrap();
        assert_eq!(all_match(&n, &xid(Some(x))), !hit, "XID {x} negated");
    }

    #[test]
    fn a_set_matches_no_absent_or_text_attribute_and_its_negation_does() {
        let table = BTreeMap::from([("hw.gpu.xid".to_owned(), "{79}".to_owned())]);
        let m = Matcher::compile(&table).unwrap();
        assert!(!all_match(&m, &xid(None)));
        let text = Attrs::new().with(AttrKey::HwGpuXid, "seventy-nine");
        assert!(!all_match(&m, &text));
        let negated = BTreeMap::from([("hw.gpu.xid".to_owned(), "!{79}".to_owned())]);
        assert!(all_match(&Matcher::compile(&negated).unwrap(), &xid(None)));
    }

    #[rstest]
    #[case("{13,x}")]
    #[case("{64-61}")]
    #[case("{}")]
    #[case("{1-}")]
    fn malformed_sets_are_errors(#[case] value: &str) {
        assert!(matches!(IntSet::parse(value), Some(Err(_))), "{value}");
        let table = BTreeMap::from([("hw.gpu.xid".to_owned(), value.to_owned())]);
        assert_eq!(Matcher::compile(&table), None);
    }

    #[test]
    fn unknown_key_does_not_compile() {
        let table = BTreeMap::from([("no.such.key".to_owned(), "x".to_owned())]);
        assert_eq!(Matcher::compile(&table), None);
    }
}
