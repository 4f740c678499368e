//! Rewrites the parts of a domain XML that vmgpu owns and copies every other byte through unchanged.
//!
//! A rule names a parent element by its path and the children it owns there (by local name, optionally narrowed
//! by a predicate such as "a PCI hostdev at this address"). `Replace` puts new elements where the first owned one
//! was (or at the end of the parent when there was none) and drops the others; `Ensure` adds elements only when
//! none is there. This is how `vmgpu define` fills a template and how `--update` edits an existing domain without
//! losing a comment, a quote style or an element vmgpu does not know: never a DOM round trip.
use std::collections::BTreeMap;
use std::ops::Range;

use crate::domain::read::xml::{Index, Node};

/// A rewrite that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is not well-formed XML.
    #[error("cannot read the domain XML")]
    Index(#[source] crate::domain::read::xml::Error),
    /// Two rules touched the same bytes (a bug in the rule set).
    #[error("rules overlap at byte {0}")]
    Overlap(usize),
}

/// Result of a rewrite.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Picks, among the children with the rule's name, the ones the rule owns.
pub(crate) type Predicate = Box<dyn Fn(&Index<'_>, &Node) -> bool>;

/// What to do with the owned children.
pub(crate) enum Action {
    /// Replace the owned children with these elements (none: remove them).
    Replace(Vec<String>),
    /// Add these elements when there is no owned child; leave an existing one alone.
    Ensure(Vec<String>),
}

/// One owned part of the document.
pub(crate) struct Rule {
    /// Qualified names from the root to the parent (`["domain", "devices"]`).
    pub parent: Vec<&'static str>,
    /// Local name of the owned children.
    pub name: &'static str,
    /// Narrows the owned children further; `None` owns every child with that name.
    pub predicate: Option<Predicate>,
    /// What to do.
    pub action: Action,
    /// Where new elements go when there is none yet: before the first child with one of these local names
    /// (libvirt's usual order), else at the end of the parent.
    pub before: &'static [&'static str],
}

impl Rule {
    /// Replaces every `name` child of `parent` with `items`.
    pub(crate) fn replace(parent: &[&'static str], name: &'static str, items: Vec<String>) -> Self {
        Self {
            parent: parent.to_vec(),
            name,
            predicate: None,
            action: Action::Replace(items),
            before: &[],
        }
    }

    /// New elements go before the first child named in `names` (when there is one).
    pub(crate) fn before(mut self, names: &'static [&'static str]) -> Self {
        self.before = names;
        self
    }

    /// Replaces the `name` children of `parent` that `predicate` selects with `items`.
    pub(crate) fn replace_where(
        parent: &[&'static str],
        name: &'static str,
        predicate: impl Fn(&Index<'_>, &Node) -> bool + 'static,
        items: Vec<String>,
    ) -> Self {
        Self {
            parent: parent.to_vec(),
            name,
            predicate: Some(Box::new(predicate)),
            action: Action::Replace(items),
            before: &[],
        }
    }

    /// Adds `items` under `parent` when it has no `name` child (selected by `predicate` when given).
    pub(crate) fn ensure(
        parent: &[&'static str],
        name: &'static str,
        predicate: Option<Predicate>,
        items: Vec<String>,
    ) -> Self {
        Self {
            parent: parent.to_vec(),
            name,
            predicate,
            action: Action::Ensure(items),
            before: &[],
        }
    }

    fn owns(&self, index: &Index<'_>, node: &Node) -> bool {
        node.local_name() == self.name && self.predicate.as_ref().is_none_or(|p| p(index, node))
    }
}

/// Applies `rules` to `xml`, in order.
pub(crate) fn apply(xml: &str, rules: &[Rule]) -> Result<String> {
    let index = Index::parse(xml).map_err(Error::Index)?;
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    // Elements to add at the end of a parent, keyed by the parent's start offset.
    let mut appends: BTreeMap<usize, (&Node, Vec<String>)> = BTreeMap::new();
    for rule in rules {
        for parent in index.at(&rule.parent) {
            let owned: Vec<&Node> = index
                .children(parent)
                .filter(|c| rule.owns(&index, c))
                .collect();
            let indent = child_indent(&index, parent);
            let (items, replace) = match &rule.action {
                Action::Replace(items) => (items, true),
                Action::Ensure(items) => (items, false),
            };
            match owned.split_first() {
                None => {
                    let sibling = index
                        .children(parent)
                        .find(|c| rule.before.contains(&c.local_name()));
                    if let (Some(sibling), false) = (sibling, items.is_empty()) {
                        let at = sibling.range.start;
                        let text: String = items
                            .iter()
                            .map(|i| format!("{}\n{indent}", reindent(i, &indent)))
                            .collect();
                        edits.push((at..at, text));
                    } else if !items.is_empty() {
                        let entry = appends
                            .entry(parent.range.start)
                            .or_insert((parent, Vec::new()));
                        entry.1.extend(items.iter().cloned());
                    }
                }
                Some((first, rest)) if replace => {
                    if items.is_empty() {
                        edits.push((removal(first), String::new()));
                    } else {
                        let joined: Vec<String> =
                            items.iter().map(|i| reindent(i, &indent)).collect();
                        edits.push((first.range.clone(), joined.join(&format!("\n{indent}"))));
                    }
                    edits.extend(rest.iter().map(|n| (removal(n), String::new())));
                }
                Some(_) => {}
            }
        }
    }
    for (parent, items) in appends.into_values() {
        edits.push(append(&index, parent, &items));
    }
    splice(xml, edits)
}

/// The range that removes `node` together with the whitespace that leads up to it.
fn removal(node: &Node) -> Range<usize> {
    match &node.space_before {
        Some(space) if space.end == node.range.start => space.start..node.range.end,
        _ => node.range.clone(),
    }
}

fn child_indent(index: &Index<'_>, parent: &Node) -> String {
    match index.children(parent).next() {
        Some(child) if index.indent_of(child).len() > index.indent_of(parent).len() => {
            index.indent_of(child).to_string()
        }
        _ => format!("{}  ", index.indent_of(parent)),
    }
}

/// Indents every line of `item` after the first by `indent` (items are written as if at column 0).
fn reindent(item: &str, indent: &str) -> String {
    item.trim_end()
        .lines()
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}

/// The edit that adds `items` as the last children of `parent`.
fn append(index: &Index<'_>, parent: &Node, items: &[String]) -> (Range<usize>, String) {
    let indent = child_indent(index, parent);
    let parent_indent = index.indent_of(parent);
    let body: Vec<String> = items.iter().map(|i| reindent(i, &indent)).collect();
    match parent.end_tag {
        Some(end_tag) => {
            let head = index.text.get(..end_tag).unwrap_or("");
            if head.ends_with(&format!("\n{parent_indent}")) {
                // Insert whole lines just before the line of the end tag.
                let at = end_tag - parent_indent.len();
                let text: String = body.iter().map(|b| format!("{indent}{b}\n")).collect();
                (at..at, text)
            } else {
                let text: String = body.iter().map(|b| format!("\n{indent}{b}")).collect();
                (end_tag..end_tag, format!("{text}\n{parent_indent}"))
            }
        }
        None => {
            // `<parent/>` becomes `<parent>…</parent>`.
            let tag = index.source(parent);
            let open = tag.trim_end_matches("/>").trim_end();
            let text: String = body.iter().map(|b| format!("\n{indent}{b}")).collect();
            (
                parent.range.clone(),
                format!("{open}>{text}\n{parent_indent}</{}>", parent.name()),
            )
        }
    }
}

fn splice(xml: &str, mut edits: Vec<(Range<usize>, String)>) -> Result<String> {
    edits.sort_by_key(|(range, _)| (range.start, range.end));
    let mut out = String::with_capacity(xml.len() + 4096);
    let mut at = 0;
    for (range, text) in edits {
        if range.start < at {
            return Err(Error::Overlap(range.start));
        }
        out.push_str(xml.get(at..range.start).unwrap_or(""));
        out.push_str(&text);
        at = range.end;
    }
    out.push_str(xml.get(at..).unwrap_or(""));
    Ok(out)
}

/// Sets an attribute of the root element (`<domain type='qemu'>`, `xmlns:qemu=…`), keeping its quote style;
/// everything else is copied through.
pub(crate) fn set_root_attribute(xml: &str, name: &str, value: &str) -> Result<String> {
    let index = Index::parse(xml).map_err(Error::Index)?;
    let Some(root) = index.root() else {
        return Ok(xml.to_string());
    };
    let tag = xml.get(root.range.start..root.start_tag_end).unwrap_or("");
    let escaped = quick_xml::escape::escape(value);
    for quote in ['\'', '"'] {
        let pattern = format!("{name}={quote}");
        let mut from = 0;
        while let Some(found) = tag.get(from..).and_then(|t| t.find(&pattern)) {
            let at = from + found;
            let preceded_by_space = tag
                .get(..at)
                .is_some_and(|h| h.ends_with(char::is_whitespace));
            let value_start = at + pattern.len();
            if let (true, Some(len)) = (
                preceded_by_space,
                tag.get(value_start..).and_then(|t| t.find(quote)),
            ) {
                let start = root.range.start + value_start;
                return splice(xml, vec![(start..start + len, escaped.into_owned())]);
            }
            from = value_start;
        }
    }
    let close = if tag.ends_with("/>") {
        tag.len() - 2
    } else {
        tag.len().saturating_sub(1)
    };
    let at = root.range.start + close;
    splice(xml, vec![(at..at, format!(" {name}='{escaped}'"))])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "<domain type='kvm'>\n  <!-- mine -->\n  <name>old</name>\n  <devices>\n    <disk type=\"file\"/>\n    <hostdev a='1'/>\n    <hostdev a='2'/>\n  </devices>\n</domain>\n";

    #[test]
    fn test_no_rules_is_byte_identical() {
        assert_eq!(apply(DOC, &[]).unwrap(), DOC);
    }

    #[test]
    fn test_replace_keeps_everything_else() {
        let rules = [Rule::replace(
            &["domain"],
            "name",
            vec!["<name>new</name>".into()],
        )];
        let out = apply(DOC, &rules).unwrap();
        assert_eq!(out, DOC.replace("<name>old</name>", "<name>new</name>"));
    }

    #[test]
    fn test_replace_many_with_one_drops_the_rest_and_their_space() {
        let rules = [Rule::replace(
            &["domain", "devices"],
            "hostdev",
            vec!["<hostdev a='3'/>".into()],
        )];
        let out = apply(DOC, &rules).unwrap();
        assert_eq!(
            out,
            DOC.replace(
                "    <hostdev a='1'/>\n    <hostdev a='2'/>\n",
                "    <hostdev a='3'/>\n"
            )
        );
    }

    #[test]
    fn test_replace_missing_appends_indented_before_end_tag() {
        let rules = [Rule::replace(
            &["domain"],
            "vcpu",
            vec!["<vcpu>\n  4\n</vcpu>".into()],
        )];
        let out = apply(DOC, &rules).unwrap();
        assert!(
            out.ends_with("  </devices>\n  <vcpu>\n    4\n  </vcpu>\n</domain>\n"),
            "{out}"
        );
    }

    #[test]
    fn test_ensure_into_empty_parent_opens_it() {
        let doc = "<domain>\n  <metadata/>\n</domain>";
        let rules = [Rule::ensure(
            &["domain", "metadata"],
            "config",
            None,
            vec!["<v:config/>".into()],
        )];
        let out = apply(doc, &rules).unwrap();
        assert_eq!(
            out,
            "<domain>\n  <metadata>\n    <v:config/>\n  </metadata>\n</domain>"
        );
    }

    #[test]
    fn test_replace_with_nothing_removes() {
        let rules = [Rule::replace(&["domain", "devices"], "hostdev", vec![])];
        let out = apply(DOC, &rules).unwrap();
        assert_eq!(
            out,
            DOC.replace("    <hostdev a='1'/>\n    <hostdev a='2'/>\n", "")
        );
    }

    #[test]
    fn test_missing_element_goes_before_the_named_sibling() {
        let rules = [
            Rule::replace(&["domain"], "metadata", vec!["<metadata/>".into()]).before(&["devices"]),
        ];
        let out = apply(DOC, &rules).unwrap();
        assert_eq!(
            out,
            DOC.replace("  <devices>", "  <metadata/>\n  <devices>")
        );
    }

    #[test]
    fn test_set_root_attribute_replaces_value_in_place() {
        let out = set_root_attribute(DOC, "type", "qemu").unwrap();
        assert_eq!(out, DOC.replacen("type='kvm'", "type='qemu'", 1));
    }

    #[test]
    fn test_set_root_attribute_adds_missing() {
        let out = set_root_attribute("<domain type=\"kvm\">\n</domain>", "xmlns:qemu", "http://q")
            .unwrap();
        assert_eq!(
            out,
            "<domain type=\"kvm\" xmlns:qemu='http://q'>\n</domain>"
        );
    }

    #[test]
    fn test_predicate_selects_owned_children() {
        let rules = [Rule::replace_where(
            &["domain", "devices"],
            "hostdev",
            |_, n| n.attr("a") == Some("2"),
            vec![],
        )];
        let out = apply(DOC, &rules).unwrap();
        assert_eq!(out, DOC.replace("    <hostdev a='2'/>\n", ""));
    }
}
