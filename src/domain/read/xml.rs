//! The one XML reader: a read-only index of a document's elements, built in one pass with quick-xml's
//! namespace-aware reader. Each element keeps its byte ranges (so `write::rewrite` replaces exactly the elements
//! vmgpu owns and copies every other byte through: comments, quotes, entities, whitespace, elements vmgpu does
//! not know), its namespace URI, attributes and own text (so [`super::element::Element`], the tree the hook,
//! `check` and `explain` walk, is built from the same index).
//!
//! Input may be hostile (the hook's stdin): size and depth are bounded, entities other than XML's own are
//! refused, and nothing here panics on it.
use std::ops::Range;

use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

/// The largest document accepted (libvirt's own limit for a domain XML is 10 MiB).
pub(crate) const MAX_BYTES: usize = 10 * 1024 * 1024;
/// The deepest nesting accepted (real domain XMLs are under 10 levels deep).
pub(crate) const MAX_DEPTH: usize = 64;

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// quick-xml rejected the document.
    #[error("malformed XML at byte {position}")]
    Syntax {
        /// Byte offset where the reader stopped.
        position: u64,
        /// Why.
        #[source]
        source: quick_xml::Error,
    },
    /// An attribute could not be read or unescaped.
    #[error("malformed attribute in <{element}> at byte {position}")]
    Attribute {
        /// The element's name as written.
        element: String,
        /// Byte offset.
        position: u64,
        /// Why.
        #[source]
        source: quick_xml::Error,
    },
    /// An element's prefix is not declared.
    #[error("undeclared namespace prefix in <{0}>")]
    UnknownPrefix(String),
    /// The document ended inside an element, or had no element at all.
    #[error("XML document is incomplete: {0}")]
    Incomplete(&'static str),
    /// An entity reference XML does not define (no DTDs are read).
    #[error("malformed XML: unknown entity &{0};")]
    UnknownEntity(String),
    /// More than one top-level element.
    #[error("XML document has more than one top-level element")]
    SeveralRoots,
    /// Too large.
    #[error("XML document is {0} bytes, more than the {MAX_BYTES} accepted")]
    TooLarge(usize),
    /// Too deep.
    #[error("XML document nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Result of reading a document.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// One element of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// Qualified names from the root to this element (`["domain", "devices", "hostdev"]`).
    pub path: Vec<String>,
    /// The namespace URI the element's prefix (or the default namespace) resolves to.
    pub namespace: Option<String>,
    /// Attributes in document order with their qualified names (`xmlns` declarations included), values
    /// unescaped.
    pub attrs: Vec<(String, String)>,
    /// The element's own text (its text, CDATA and character references joined), unescaped.
    pub text: String,
    /// The enclosing element (an index into [`Index::nodes`]); `None` for the root.
    pub parent: Option<usize>,
    /// From `<` of the start tag to after `>` of the end tag.
    pub range: Range<usize>,
    /// Where the end tag `</…>` starts; `None` for `<empty/>` elements.
    pub end_tag: Option<usize>,
    /// Whitespace-only text directly before this element (it is removed with the element).
    pub space_before: Option<Range<usize>>,
    /// Where the start tag ends (after `>`).
    pub start_tag_end: usize,
}

impl Node {
    /// The element's qualified name.
    pub(crate) fn name(&self) -> &str {
        self.path.last().map_or("", String::as_str)
    }

    /// The local name (after any `prefix:`).
    pub(crate) fn local_name(&self) -> &str {
        let name = self.name();
        name.rsplit_once(':').map_or(name, |(_, local)| local)
    }

    /// Nesting depth: the root is 0.
    pub(crate) fn depth(&self) -> usize {
        self.path.len().saturating_sub(1)
    }

    /// An attribute's value.
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when `other` lies inside this element.
    pub(crate) fn contains(&self, other: &Node) -> bool {
        other.range.start > self.range.start && other.range.end <= self.range.end
    }
}

/// Every element of a document, in document order.
#[derive(Debug, Clone)]
pub(crate) struct Index<'a> {
    /// The document.
    pub text: &'a str,
    /// Its elements, in the order their start tags appear.
    pub nodes: Vec<Node>,
}

impl<'a> Index<'a> {
    /// Reads `text`: one well-formed element tree, at most [`MAX_BYTES`] long and [`MAX_DEPTH`] deep.
    pub(crate) fn parse(text: &'a str) -> Result<Self> {
        if text.len() > MAX_BYTES {
            return Err(Error::TooLarge(text.len()));
        }
        let mut reader = NsReader::from_str(text);
        reader.config_mut().check_end_names = true;
        let mut nodes: Vec<Node> = Vec::new();
        // Open elements: indexes into `nodes`.
        let mut open: Vec<usize> = Vec::new();
        let mut path: Vec<String> = Vec::new();
        let mut last_space: Option<Range<usize>> = None;
        loop {
            let before = reader.buffer_position() as usize;
            let (ns, event) = reader
                .read_resolved_event()
                .map_err(|source| Error::Syntax {
                    position: before as u64,
                    source,
                })?;
            // Owned before the reader is asked anything else (the resolved name borrows it).
            let namespace = match ns {
                ResolveResult::Bound(ns) => Ok(Some(ns.0.to_string())),
                ResolveResult::Unbound => Ok(None),
                ResolveResult::Unknown(_) => Err(()),
            };
            let after = reader.buffer_position() as usize;
            match event {
                Event::Start(ref start) | Event::Empty(ref start) => {
                    if open.is_empty() && !nodes.is_empty() {
                        return Err(Error::SeveralRoots);
                    }
                    if open.len() >= MAX_DEPTH {
                        return Err(Error::TooDeep);
                    }
                    let namespace =
                        namespace.map_err(|()| Error::UnknownPrefix(start.name().0.to_string()))?;
                    path.push(start.name().as_ref().to_string());
                    let placed = Placed {
                        path: &path,
                        namespace,
                        parent: open.last().copied(),
                        range: before..after,
                        space: last_space.take(),
                    };
                    nodes.push(node(start, placed)?);
                    if matches!(event, Event::Start(_)) {
                        open.push(nodes.len() - 1);
                    } else {
                        path.pop();
                    }
                }
                Event::End(_) => {
                    let n = open
                        .pop()
                        .and_then(|i| nodes.get_mut(i))
                        .ok_or(Error::Incomplete("unmatched end tag"))?;
                    n.range.end = after;
                    n.end_tag = Some(before);
                    path.pop();
                    last_space = None;
                }
                Event::Text(text) => {
                    let content = text.xml10_content();
                    push_text(&mut nodes, &open, &content);
                    last_space = content.trim().is_empty().then_some(before..after);
                }
                Event::CData(data) => {
                    push_text(&mut nodes, &open, &data.xml10_content());
                    last_space = None;
                }
                Event::GeneralRef(reference) => {
                    let resolved = match reference.resolve_char_ref() {
                        Ok(Some(ch)) => Some(ch.to_string()),
                        Ok(None) => quick_xml::escape::resolve_predefined_entity(&reference)
                            .map(str::to_string),
                        Err(source) => {
                            let position = before as u64;
                            return Err(Error::Syntax { position, source });
                        }
                    };
                    let Some(resolved) = resolved else {
                        return Err(Error::UnknownEntity(reference.chars().take(32).collect()));
                    };
                    push_text(&mut nodes, &open, &resolved);
                    last_space = None;
                }
                Event::Eof => break,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {
                    last_space = None;
                }
            }
        }
        if !open.is_empty() {
            return Err(Error::Incomplete("the document ends inside an element"));
        }
        if nodes.is_empty() {
            return Err(Error::Incomplete("no element"));
        }
        Ok(Self { text, nodes })
    }

    /// The root element.
    pub(crate) fn root(&self) -> Option<&Node> {
        self.nodes.first()
    }

    /// Elements at exactly this path (`["domain", "devices", "hostdev"]`).
    pub(crate) fn at<'s>(&'s self, path: &'s [&str]) -> impl Iterator<Item = &'s Node> + 's {
        self.nodes.iter().filter(move |n| {
            n.path.len() == path.len() && n.path.iter().zip(path).all(|(a, b)| a == b)
        })
    }

    /// The direct children of `parent`.
    pub(crate) fn children<'s>(&'s self, parent: &'s Node) -> impl Iterator<Item = &'s Node> + 's {
        self.nodes
            .iter()
            .filter(move |n| n.depth() == parent.depth() + 1 && parent.contains(n))
    }

    /// Every element inside `parent` (any depth).
    pub(crate) fn descendants<'s>(
        &'s self,
        parent: &'s Node,
    ) -> impl Iterator<Item = &'s Node> + 's {
        self.nodes.iter().filter(move |n| parent.contains(n))
    }

    /// The text of an element, tags included.
    pub(crate) fn source(&self, node: &Node) -> &'a str {
        self.text.get(node.range.clone()).unwrap_or("")
    }

    /// The character content of a simple element such as `<name>win11</name>`, unescaped and trimmed; `None`
    /// for an `<empty/>` element.
    #[cfg(test)]
    pub(crate) fn text_of(&self, node: &Node) -> Option<String> {
        node.end_tag?;
        Some(node.text.trim().to_string())
    }

    /// The leading whitespace of the line `node` starts on (its indentation).
    pub(crate) fn indent_of(&self, node: &Node) -> &'a str {
        let head = self.text.get(..node.range.start).unwrap_or("");
        let line_start = head.rfind('\n').map_or(0, |i| i + 1);
        let line = head.get(line_start..).unwrap_or("");
        let width = line.len() - line.trim_start().len();
        line.get(..width).unwrap_or("")
    }
}

/// Where a new element stands, for [`node`].
struct Placed<'p> {
    path: &'p [String],
    namespace: Option<String>,
    parent: Option<usize>,
    range: Range<usize>,
    space: Option<Range<usize>>,
}

fn node(start: &BytesStart<'_>, at: Placed<'_>) -> Result<Node> {
    let position = at.range.start as u64;
    let element = start.name().as_ref().to_string();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| Error::Attribute {
            element: element.clone(),
            position,
            source: e.into(),
        })?;
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|source| Error::Attribute {
                element: element.clone(),
                position,
                source,
            })?;
        attrs.push((attr.key.as_ref().to_string(), value.into_owned()));
    }
    Ok(Node {
        path: at.path.to_vec(),
        namespace: at.namespace,
        attrs,
        text: String::new(),
        parent: at.parent,
        start_tag_end: at.range.end,
        range: at.range,
        end_tag: None,
        space_before: at.space,
    })
}

fn push_text(nodes: &mut [Node], open: &[usize], text: &str) {
    if let Some(top) = open.last().and_then(|&i| nodes.get_mut(i)) {
        top.text.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "<!-- c -->\n<domain type='kvm'>\n  <name>a&amp;b</name>\n  <devices>\n    <hostdev mode='subsystem'/>\n  </devices>\n</domain>\n";

    #[test]
    fn test_index_finds_elements_with_ranges() {
        let index = Index::parse(DOC).unwrap();
        let hostdev = index.at(&["domain", "devices", "hostdev"]).next().unwrap();
        assert_eq!(index.source(hostdev), "<hostdev mode='subsystem'/>");
        assert_eq!(hostdev.attr("mode"), Some("subsystem"));
        assert_eq!(index.indent_of(hostdev), "    ");
        assert_eq!(hostdev.space_before, Some(65..70));
    }

    #[test]
    fn test_text_of_unescapes() {
        let index = Index::parse(DOC).unwrap();
        let name = index.at(&["domain", "name"]).next().unwrap();
        assert_eq!(index.text_of(name).as_deref(), Some("a&b"));
    }

    #[test]
    fn test_parse_resolves_namespace_not_prefix() {
        let xml = r#"<domain><metadata><x:config xmlns:x="urn:a"/></metadata></domain>"#;
        let index = Index::parse(xml).unwrap();
        let config = index
            .at(&["domain", "metadata", "x:config"])
            .next()
            .unwrap();
        assert_eq!(config.namespace.as_deref(), Some("urn:a"));
        assert_eq!(config.local_name(), "config");
        assert_eq!(config.parent, Some(1));
    }

    #[test]
    fn test_unclosed_element_is_error() {
        let err = Index::parse("<domain><name>x</name>").unwrap_err();
        assert!(matches!(err, Error::Incomplete(_)), "{err}");
    }

    #[test]
    fn test_mismatched_end_tag_is_error() {
        assert!(Index::parse("<domain><name>x</nam></domain>").is_err());
    }

    #[test]
    fn test_two_roots_is_error() {
        assert!(matches!(Index::parse("<a/><b/>"), Err(Error::SeveralRoots)));
    }

    #[test]
    fn test_deep_nesting_is_error() {
        let xml = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(matches!(Index::parse(&xml), Err(Error::TooDeep)));
    }

    #[test]
    fn test_undeclared_prefix_is_error() {
        let err = Index::parse("<domain><v:config/></domain>").unwrap_err();
        assert!(matches!(err, Error::UnknownPrefix(_)), "{err}");
    }

    #[test]
    fn test_unknown_entity_is_error() {
        let err = Index::parse("<domain>&bogus;</domain>").unwrap_err();
        assert!(matches!(err, Error::UnknownEntity(_)), "{err}");
    }
}
