//! Unified diffs (`diff -u` style, 3 lines of context) of a file's old and new text, for showing a plan.
//! Configuration files are small, so a plain longest-common-subsequence table is enough.

/// One line of an edit script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op<'a> {
    Keep(&'a str),
    Del(&'a str),
    Add(&'a str),
}

fn edit_script<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<Op<'a>> {
    let (n, m) = (old.len(), new.len());
    // lcs[i][j] = length of the LCS of old[i..] and new[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(n + m);
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            ops.push(Op::Keep(old[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push(Op::Add(new[j]));
            j += 1;
        } else {
            ops.push(Op::Del(old[i]));
            i += 1;
        }
    }
    // Show deletions before additions inside a changed run, as diff does.
    let mut k = 0;
    while k < ops.len() {
        let start = k;
        while k < ops.len() && !matches!(ops[k], Op::Keep(_)) {
            k += 1;
        }
        ops[start..k].sort_by_key(|op| matches!(op, Op::Add(_)));
        k += 1;
    }
    ops
}

/// The unified diff of `old` (`None`: the file is new) to `new` under the name `path`; empty when equal.
pub fn unified(path: &str, old: Option<&str>, new: &str) -> String {
    const CONTEXT: usize = 3;
    let old_text = old.unwrap_or_default();
    let old_lines: Vec<&str> = old_text.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let ops = edit_script(&old_lines, &new_lines);
    if ops.iter().all(|op| matches!(op, Op::Keep(_)))
        && old_text.ends_with('\n') == new.ends_with('\n')
    {
        return String::new();
    }
    let from = if old.is_some() {
        path.to_string()
    } else {
        "/dev/null".to_string()
    };
    let mut out = format!("--- {from}\n+++ {path}\n");
    // Group changes into hunks with CONTEXT lines around them.
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Keep(_)))
        .map(|(i, _)| i)
        .collect();
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &c in &changed {
        let lo = c.saturating_sub(CONTEXT);
        let hi = (c + CONTEXT + 1).min(ops.len());
        match hunks.last_mut() {
            Some((_, end)) if lo <= *end => *end = hi,
            _ => hunks.push((lo, hi)),
        }
    }
    if hunks.is_empty() {
        // Only the final newline differs.
        hunks.push((ops.len().saturating_sub(1), ops.len()));
    }
    for (lo, hi) in hunks {
        let old_start = ops[..lo]
            .iter()
            .filter(|o| !matches!(o, Op::Add(_)))
            .count();
        let new_start = ops[..lo]
            .iter()
            .filter(|o| !matches!(o, Op::Del(_)))
            .count();
        let old_len = ops[lo..hi]
            .iter()
            .filter(|o| !matches!(o, Op::Add(_)))
            .count();
        let new_len = ops[lo..hi]
            .iter()
            .filter(|o| !matches!(o, Op::Del(_)))
            .count();
        let range = |start: usize, len: usize| match len {
            0 => format!("{start},0"),
            1 => format!("{}", start + 1),
            _ => format!("{},{len}", start + 1),
        };
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            range(old_start, old_len),
            range(new_start, new_len)
        ));
        for op in &ops[lo..hi] {
            let (sign, line) = match op {
                Op::Keep(l) => (' ', l),
                Op::Del(l) => ('-', l),
                Op::Add(l) => ('+', l),
            };
            out.push(sign);
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_unified_new_file_is_all_additions() {
        let out = unified("/etc/x.conf", None, "a\nb\n");
        assert_eq!(
            out,
            "--- /dev/null\n+++ /etc/x.conf\n@@ -0,0 +1,2 @@\n+a\n+b\n"
        );
    }

    #[test]
    fn test_unified_changed_line_has_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n";
        let out = unified("f", Some(old), new);
        assert_eq!(
            out,
            "--- f\n+++ f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn test_unified_equal_is_empty() {
        assert_eq!(unified("f", Some("a\n"), "a\n"), "");
    }
}
