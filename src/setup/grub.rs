//! Editing `GRUB_CMDLINE_LINUX` in `/etc/default/grub` (a shell file): only the last plain assignment is
//! touched, its quoting and any trailing comment are kept, and anything that needs a shell to understand is
//! refused rather than guessed, naming the line: `$VAR`, backquotes, line continuations, unbalanced quotes,
//! a `; command` after the value, an assignment inside `if … fi` (or any compound command) or behind
//! `&&`, and a `. file` / `source file` include anywhere (the included file could set the variable again).
use super::cmdline;

/// Why the file cannot be edited safely.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The assignment uses shell expansion or continuation.
    #[error(
        "line {line} ({text:?}): {var} uses shell syntax vmgpu does not rewrite ({what}); make it a plain \
         {var}=\"value\" line or add the parameters by hand"
    )]
    ShellSyntax {
        /// 1-based line number.
        line: usize,
        /// The line (cut to 80 characters).
        text: String,
        /// The variable.
        var: &'static str,
        /// What was found.
        what: &'static str,
    },
}

/// Result of editing.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// One `NAME="value"` assignment found in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assignment {
    /// 0-based line index.
    index: usize,
    /// Everything before the value (indentation, `export `, `NAME=`).
    head: String,
    /// The quote character used, if any.
    quote: Option<char>,
    /// The value without quotes.
    value: String,
    /// Everything after the closing quote (a comment).
    tail: String,
}

impl Assignment {
    fn render(&self, value: &str) -> String {
        let q = match self.quote {
            Some('\'') if !value.contains('\'') => '\'',
            _ => '"',
        };
        format!("{}{q}{value}{q}{}", self.head, self.tail)
    }
}

/// Words that open and close a shell compound command.
const OPENS: &[&str] = &[
    "if", "case", "for", "while", "until", "select", "{", "function",
];
const CLOSES: &[&str] = &["fi", "esac", "done", "}"];

/// A line with quoted text and the comment removed (what the shell sees as code). `quote` is the quote open
/// at the start of the line (a string that spans lines) and is left as the one open at its end.
fn code_of(line: &str, quote: &mut Option<char>) -> String {
    let mut code = String::new();
    for c in line.chars() {
        match *quote {
            Some(q) if c == q => {
                *quote = None;
                code.push(c);
            }
            Some(_) => {}
            None if c == '"' || c == '\'' => {
                *quote = Some(c);
                code.push(c);
            }
            None if c == '#' && (code.is_empty() || code.ends_with(char::is_whitespace)) => break,
            None => code.push(c),
        }
    }
    code
}

/// True when `code` names `var` other than as `$var`/`${var}` (an assignment, `unset`, `read`, …).
fn names_var(code: &str, var: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    code.match_indices(var).any(|(at, _)| {
        let before_ok = !code[..at].ends_with(|c: char| ident(c) || c == '$' || c == '{');
        let after_ok = !code[at + var.len()..].starts_with(ident);
        before_ok && after_ok
    })
}

/// The shell words of a code line (split at blanks and control operators).
fn words(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| c.is_whitespace() || ";&|()".contains(c))
        .filter(|w| !w.is_empty())
}

fn find(text: &str, var: &'static str) -> Result<Option<Assignment>> {
    let mut found = None;
    let mut depth = 0usize;
    let mut quote = None;
    for (index, line) in text.lines().enumerate() {
        let err = |what| Error::ShellSyntax {
            line: index + 1,
            text: line.trim().chars().take(80).collect(),
            var,
            what,
        };
        let in_string = quote.is_some();
        let code = code_of(line, &mut quote);
        let first = words(&code).next();
        if matches!(first, Some(".") | Some("source")) {
            return Err(err("an include of another file, which may set it again"));
        }
        let depth_here = depth;
        let opens = words(&code).filter(|w| OPENS.contains(w)).count() + code.matches("()").count();
        let closes = words(&code).filter(|w| CLOSES.contains(w)).count();
        depth = (depth + opens).saturating_sub(closes);
        let trimmed = line.trim_start();
        let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let plain = body
            .strip_prefix(var)
            .and_then(|r| r.strip_prefix('='))
            .filter(|_| !in_string);
        let Some(rest) = plain else {
            if names_var(&code, var) && code.trim() != format!("export {var}") {
                return Err(err("an assignment or use inside other shell code"));
            }
            continue;
        };
        if depth_here > 0 || opens > 0 {
            return Err(err(
                "an assignment inside a compound command such as if … fi",
            ));
        }
        if quote.is_some() {
            return Err(err("an unbalanced quote"));
        }
        if line.trim_end().ends_with('\\') {
            return Err(err("a line continuation"));
        }
        let head = line[..line.len() - rest.len()].to_string();
        let (quote, value, tail) = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = &rest[1..];
                let end = inner.find(q).ok_or_else(|| err("an unbalanced quote"))?;
                (Some(q), &inner[..end], &inner[end + 1..])
            }
            _ => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                (None, &rest[..end], &rest[end..])
            }
        };
        if quote != Some('\'') && (value.contains('$') || value.contains('`')) {
            return Err(err("a variable or command substitution"));
        }
        if value.contains('\\') {
            return Err(err("a backslash escape"));
        }
        let tail_trim = tail.trim_start();
        if !tail_trim.is_empty() && !tail_trim.starts_with('#') {
            return Err(err("more shell code after the value"));
        }
        found = Some(Assignment {
            index,
            head,
            quote,
            value: value.to_string(),
            tail: tail.to_string(),
        });
    }
    Ok(found)
}

/// Returns the file with `wanted` merged into `GRUB_CMDLINE_LINUX` (appended as a new assignment when there is
/// none). Parameters in `GRUB_CMDLINE_LINUX_DEFAULT` that play the same role are removed there, unless they are
/// already exactly what is wanted and `GRUB_CMDLINE_LINUX` does not set them.
pub(crate) fn edit_default_grub(text: &str, wanted: &[String]) -> Result<String> {
    let linux = find(text, "GRUB_CMDLINE_LINUX")?;
    let default = find(text, "GRUB_CMDLINE_LINUX_DEFAULT")?;
    let linux_tokens = linux
        .as_ref()
        .map(|a| cmdline::split(&a.value))
        .unwrap_or_default();
    let default_tokens = default
        .as_ref()
        .map(|a| cmdline::split(&a.value))
        .unwrap_or_default();
    // A parameter only in DEFAULT, exactly as wanted, stays there (the smallest edit).
    let for_linux: Vec<String> = wanted
        .iter()
        .filter(|w| {
            let linux_has_role =
                cmdline::remove_roles(&linux_tokens, std::slice::from_ref(*w)) != linux_tokens;
            !default_tokens.contains(w) || linux_has_role
        })
        .cloned()
        .collect();
    let new_linux = cmdline::merge(&linux_tokens, &for_linux).join(" ");
    let kept_in_default: Vec<String> = wanted
        .iter()
        .filter(|w| !for_linux.contains(w))
        .cloned()
        .collect();
    let new_default = cmdline::merge(
        &cmdline::remove_roles(&default_tokens, &for_linux),
        &kept_in_default,
    )
    .join(" ");

    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if let Some(a) = &default
        && cmdline::split(&a.value).join(" ") != new_default
        && let Some(line) = lines.get_mut(a.index)
    {
        *line = a.render(&new_default);
    }
    match &linux {
        Some(a) if cmdline::split(&a.value).join(" ") != new_linux => {
            if let Some(line) = lines.get_mut(a.index) {
                *line = a.render(&new_linux);
            }
        }
        Some(_) => {}
        None => lines.push(format!("GRUB_CMDLINE_LINUX=\"{new_linux}\"")),
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') || linux.is_none() || text.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> Vec<String> {
        cmdline::split("iommu=pt amd_iommu=on rd.driver.pre=vfio-pci")
    }

    #[test]
    fn test_edit_default_grub_fills_empty_linux_var() {
        let text = "GRUB_TIMEOUT=8\nGRUB_CMDLINE_LINUX=\"\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"splash=silent quiet\"\n";
        let out = edit_default_grub(text, &wanted()).unwrap();
        assert_eq!(
            out,
            "GRUB_TIMEOUT=8\nGRUB_CMDLINE_LINUX=\"iommu=pt amd_iommu=on rd.driver.pre=vfio-pci\"\n\
             GRUB_CMDLINE_LINUX_DEFAULT=\"splash=silent quiet\"\n"
        );
    }

    #[test]
    fn test_edit_default_grub_is_idempotent() {
        let text = "GRUB_CMDLINE_LINUX=\"quiet\"\n";
        let once = edit_default_grub(text, &wanted()).unwrap();
        assert_eq!(edit_default_grub(&once, &wanted()).unwrap(), once);
    }

    #[test]
    fn test_edit_default_grub_moves_stale_default_param() {
        let text = "GRUB_CMDLINE_LINUX=\"\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet amd_iommu=off\"\n";
        let out = edit_default_grub(text, &wanted()).unwrap();
        assert!(
            out.contains("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\""),
            "{out}"
        );
        assert!(
            out.contains("GRUB_CMDLINE_LINUX=\"iommu=pt amd_iommu=on rd.driver.pre=vfio-pci\"")
        );
    }

    #[test]
    fn test_edit_default_grub_keeps_exact_default_param() {
        let text = "GRUB_CMDLINE_LINUX=\"\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet iommu=pt\"\n";
        let out = edit_default_grub(text, &wanted()).unwrap();
        assert!(
            out.contains("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet iommu=pt\""),
            "{out}"
        );
        assert!(out.contains("GRUB_CMDLINE_LINUX=\"amd_iommu=on rd.driver.pre=vfio-pci\""));
    }

    #[test]
    fn test_edit_default_grub_appends_missing_assignment() {
        let out = edit_default_grub("GRUB_TIMEOUT=5\n", &wanted()).unwrap();
        assert!(
            out.ends_with("GRUB_CMDLINE_LINUX=\"iommu=pt amd_iommu=on rd.driver.pre=vfio-pci\"\n")
        );
    }

    #[test]
    fn test_edit_default_grub_refuses_variable_expansion() {
        let text = "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX foo\"\n";
        let err = edit_default_grub(text, &wanted()).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn test_edit_default_grub_ignores_comments_and_keeps_tail_comment() {
        let text = "#GRUB_CMDLINE_LINUX=\"x\"\nGRUB_CMDLINE_LINUX='quiet' # mine\n";
        let out = edit_default_grub(text, &wanted()).unwrap();
        assert!(out.starts_with("#GRUB_CMDLINE_LINUX=\"x\"\n"));
        assert!(out.contains(
            "GRUB_CMDLINE_LINUX='quiet iommu=pt amd_iommu=on rd.driver.pre=vfio-pci' # mine"
        ));
    }

    fn refused(text: &str) -> String {
        match edit_default_grub(text, &wanted()) {
            Ok(out) => panic!("accepted {text:?}: {out:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn test_edit_default_grub_refuses_shell_around_the_assignment_naming_the_line() {
        for (text, line) in [
            ("GRUB_CMDLINE_LINUX=\"quiet\"; rm -rf /x\n", 1),
            ("GRUB_CMDLINE_LINUX=\"quiet\" ;\n", 1),
            ("GRUB_CMDLINE_LINUX=quiet&& reboot\n", 1),
            ("if [ -e /x ]; then\nGRUB_CMDLINE_LINUX=\"quiet\"\nfi\n", 2),
            ("if true; then GRUB_CMDLINE_LINUX=\"quiet\"; fi\n", 1),
            ("case $x in\n a) GRUB_CMDLINE_LINUX=\"a\";;\nesac\n", 2),
            ("f() {\n  GRUB_CMDLINE_LINUX=\"a\"\n}\n", 2),
            ("[ -e /x ] && GRUB_CMDLINE_LINUX=\"quiet\"\n", 1),
            (
                "GRUB_CMDLINE_LINUX=\"\"\n. /etc/default/grub.d/extra.cfg\n",
                2,
            ),
            (
                "source /etc/default/grub.local\nGRUB_CMDLINE_LINUX=\"\"\n",
                1,
            ),
            ("GRUB_CMDLINE_LINUX=\"\"\nunset GRUB_CMDLINE_LINUX\n", 2),
            (
                "GRUB_CMDLINE_LINUX_DEFAULT=\"a\nGRUB_CMDLINE_LINUX=b\"\n",
                1,
            ),
        ] {
            let err = refused(text);
            assert!(err.starts_with(&format!("line {line} ")), "{text:?}: {err}");
        }
    }

    #[test]
    fn test_edit_default_grub_accepts_plain_lines_around_shell_it_does_not_edit() {
        let text = "GRUB_DEFAULT=0\nif [ -e /x ]; then\n  GRUB_TIMEOUT=1\nfi\nexport GRUB_CMDLINE_LINUX\n\
                    GRUB_CMDLINE_LINUX=\"quiet\" # mine\nGRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n";
        let out = edit_default_grub(text, &wanted()).unwrap();
        assert!(out.contains("GRUB_CMDLINE_LINUX=\"quiet iommu=pt"), "{out}");
    }
}
