//! Every relative link in README.md and docs/*.md, and every docs file the sources, docs and Cargo.toml
//! cite, names a file that exists: the README sends newcomers there and the code cites section numbers in them.
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The targets of inline links `[text](target)`, without `#fragment` or a `"title"`.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("](") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split_whitespace().next().unwrap_or("");
        let target = target.split('#').next().unwrap_or("");
        targets.push(target.trim_matches(['<', '>']).to_string());
        rest = &rest[end..];
    }
    targets
}

fn is_relative(target: &str) -> bool {
    !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:")
}

/// Every docs/*.md name written anywhere in `text` (prose citations such as "docs/lg-protocol.md §2.6").
fn docs_citations(text: &str) -> Vec<String> {
    let mut cited = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("docs/") {
        let after = &rest[start + 5..];
        let preceded_by_name = rest[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(after.len());
        if !preceded_by_name && name_len > 0 && after[name_len..].starts_with(".md") {
            cited.push(format!("docs/{}.md", &after[..name_len]));
        }
        rest = after;
    }
    cited
}

/// Every .rs file under `dir`.
fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        // file_type does not follow symlinks: the recorded host trees are full of sysfs loops.
        if entry.file_type().unwrap().is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn test_every_relative_link_in_readme_and_docs_resolves() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let dir = file.parent().unwrap();
        for target in link_targets(&text).into_iter().filter(|t| is_relative(t)) {
            if !dir.join(&target).exists() {
                broken.push(format!("{}: {target}", file.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to missing files:\n{}",
        broken.join("\n")
    );
}

#[test]
fn test_every_cited_docs_file_exists() {
    let mut sources = markdown_files();
    sources.push(repo().join("Cargo.toml"));
    for dir in ["src", "tests/integration", "benches"] {
        rust_files(&repo().join(dir), &mut sources);
    }
    let mut missing = Vec::new();
    for file in sources {
        let text = std::fs::read_to_string(&file).unwrap();
        for cited in docs_citations(&text) {
            if !repo().join(&cited).exists() {
                missing.push(format!("{}: {cited}", file.display()));
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "cited docs that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn test_link_and_citation_parsers() {
    let text = "see [the notes](docs/lg-protocol.md#22-header) and [site](https://x.org/a.md), \
                docs/host-anchors.md §4, not mydocs/x.md";

    assert_eq!(
        link_targets(text),
        ["docs/lg-protocol.md", "https://x.org/a.md"]
    );
    assert_eq!(
        docs_citations(text),
        ["docs/lg-protocol.md", "docs/host-anchors.md"]
    );
}

#[test]
fn test_readme_fits_on_two_screens_and_speaks_to_users() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();

    assert!(
        readme.lines().count() <= 200,
        "README.md has {} lines",
        readme.lines().count()
    );
    for word in ["design card", "the brief"] {
        assert!(
            !readme.to_lowercase().contains(word),
            "README.md mentions {word:?}"
        );
    }
}
