//! Just enough PromQL reading to tell which metric and label names a Grafana query uses:
//! string literals and range selectors are dropped, `{...}` matchers and `by/without (...)`
//! groupings give label names, and the identifiers left, less PromQL's own words, are metrics.

/// PromQL's functions, aggregations and keywords that the dashboard may use.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "topk",
    "bottomk",
    "quantile",
    "rate",
    "irate",
    "increase",
    "delta",
    "deriv",
    "abs",
    "clamp_min",
    "clamp_max",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "last_over_time",
    "label_values",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
];

/// Names used by one query.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub metrics: Vec<String>,
    pub labels: Vec<String>,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Identifiers in `s` (Grafana variables such as `$job` and `$__rate_interval` excluded).
fn identifiers(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    let mut prev = ' ';
    while let Some((i, c)) = chars.next() {
        if is_ident_start(c) && !is_ident(prev) && prev != '$' {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !is_ident(d) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            out.push(s[i..end].to_owned());
            prev = 'a';
        } else {
            prev = c;
        }
    }
    out
}

/// Removes `"..."` literals and `[...]` ranges.
fn strip_literals(expr: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    let mut in_range = false;
    let mut escaped = false;
    for c in expr.chars() {
        if in_str {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '[' => in_range = true,
            ']' => in_range = false,
            _ if in_range => {}
            _ => out.push(c),
        }
    }
    out
}

/// Reads one query.
pub fn names(expr: &str) -> Names {
    let bare = strip_literals(expr);
    let mut names = Names::default();
    let mut rest = String::new();
    let mut group = String::new();
    let mut depth_brace = false;
    for c in bare.chars() {
        match c {
            '{' => depth_brace = true,
            '}' => {
                names.labels.extend(identifiers(&group));
                group.clear();
                depth_brace = false;
            }
            _ if depth_brace => group.push(c),
            _ => rest.push(c),
        }
    }
    // `by (a, b)` / `without (a)`: the parenthesised list after the keyword is labels.
    let mut words = Vec::new();
    let mut cursor = rest.as_str();
    while let Some(pos) = ["by", "without"]
        .iter()
        .filter_map(|k| find_keyword(cursor, k).map(|p| (p, k.len())))
        .min()
    {
        words.extend(identifiers(&cursor[..pos.0]));
        let after = &cursor[pos.0 + pos.1..];
        let (Some(open), Some(close)) = (after.find('('), after.find(')')) else {
            cursor = after;
            continue;
        };
        names.labels.extend(identifiers(&after[open + 1..close]));
        cursor = &after[close + 1..];
    }
    words.extend(identifiers(cursor));
    names.metrics = words
        .into_iter()
        .filter(|w| !PROMQL_WORDS.contains(&w.as_str()))
        .collect();
    names
}

fn find_keyword(s: &str, kw: &str) -> Option<usize> {
    s.match_indices(kw).map(|(i, _)| i).find(|&i| {
        let before = s[..i].chars().next_back().is_none_or(|c| !is_ident(c));
        let after = s[i + kw.len()..]
            .chars()
            .next()
            .is_none_or(|c| !is_ident(c));
        before && after
    })
}

/// Label names referenced as `{{label}}` in a legend format.
pub fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}").map(|(l, _)| l.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_metrics_and_labels() {
        let n = names(
            r#"sum by (alert_rule, alert_severity) (rate(zfs_pool_io_bytes_total{job=~"$job", zfs_pool_name!="x"}[$__rate_interval])) > 0"#,
        );
        assert_eq!(n.metrics, ["zfs_pool_io_bytes_total"]);
        assert_eq!(
            n.labels,
            ["job", "zfs_pool_name", "alert_rule", "alert_severity"]
        );
        let n = names("label_values(hostwarden_collector_success_ratio, job)");
        assert_eq!(n.metrics, ["hostwarden_collector_success_ratio", "job"]);
    }

    #[test]
    fn legend_labels_are_found() {
        assert_eq!(
            legend_labels("{{hw_id}} {{ error_type }}"),
            ["hw_id", "error_type"]
        );
    }
}
