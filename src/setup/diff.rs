//! Unified diffs (`diff -u` style, 3 lines of context) of a file's old and new text, for showing a plan.
//! The diff itself is the `similar` crate's (Myers, with a deadline-free line diff: configuration files are small).

use similar::TextDiff;

/// Lines of context around each change, as `diff -u`.
const CONTEXT: usize = 3;

/// The unified diff of `old` (`None`: the file is new) to `new` under the name `path`; empty when equal.
pub(crate) fn unified(path: &str, old: Option<&str>, new: &str) -> String {
    let old_text = old.unwrap_or_default();
    if old_text == new {
        return String::new();
    }
    let from = if old.is_some() { path } else { "/dev/null" };
    TextDiff::from_lines(old_text, new)
        .unified_diff()
        .context_radius(CONTEXT)
        .header(from, path)
        .to_string()
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

    #[test]
    fn test_unified_missing_final_newline_is_marked() {
        let out = unified("f", Some("a\nb"), "a\nb\n");
        assert_eq!(
            out,
            "--- f\n+++ f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n"
        );
    }

    #[test]
    fn test_unified_deletions_come_before_additions() {
        let out = unified("f", Some("a\nb\nc\n"), "a\nx\ny\nc\n");
        assert_eq!(out, "--- f\n+++ f\n@@ -1,3 +1,4 @@\n a\n-b\n+x\n+y\n c\n");
    }
}
