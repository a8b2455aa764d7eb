//! The filters' verdicts on device and interface names, kept between ticks. The same few names
//! come back every tick, and matching each against a `[host]` regular expression (regex-lite's
//! backtracking-free engine: 0.1-0.3 µs a name and pattern) was a visible part of the tick
//! (issue 20); a kept name also brings its text, shared by every point's attributes instead of
//! copied per tick.

use std::collections::HashMap;
use std::sync::Arc;

/// Names remembered at most; past this (a host creating and deleting loop devices or veth
/// pairs by the thousand) the memo starts over rather than grow.
const CAP: usize = 4096;

#[derive(Debug, Clone, Default)]
pub struct NameMemo {
    judged: HashMap<Box<str>, Option<Arc<str>>>,
}

impl NameMemo {
    /// `name` shared when `keeps` keeps it, `None` when it does not; `keeps` runs once per
    /// name while it stays remembered.
    pub fn kept(&mut self, name: &str, keeps: impl FnOnce(&str) -> bool) -> Option<Arc<str>> {
        if let Some(verdict) = self.judged.get(name) {
            return verdict.clone();
        }
        if self.judged.len() >= CAP {
            self.judged.clear();
        }
        let verdict = keeps(name).then(|| Arc::from(name));
        self.judged.insert(name.into(), verdict.clone());
        verdict
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn a_name_is_judged_once_and_its_text_shared() {
        let mut memo = NameMemo::default();
        let calls = Cell::new(0);
        let keeps = |n: &str| {
            calls.set(calls.get() + 1);
            n.starts_with("sd")
        };
        let a = memo.kept("sda", keeps).unwrap();
        let b = memo.kept("sda", keeps).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(memo.kept("loop0", keeps), None);
        assert_eq!(memo.kept("loop0", keeps), None);
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn the_memo_starts_over_past_its_cap() {
        let mut memo = NameMemo::default();
        for i in 0..CAP + 10 {
            memo.kept(&format!("loop{i}"), |_| false);
        }
        assert!(memo.judged.len() <= CAP);
        assert_eq!(memo.judged.len(), 10);
    }
}
