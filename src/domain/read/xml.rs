//! A read-only index of an XML document's elements with their byte ranges, so that `rewrite.rs` can replace
//! exactly the elements vmgpu owns and copy every other byte through unchanged (comments, quotes, entities,
//! whitespace and elements vmgpu does not know).
use std::ops::Range;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// XML that cannot be indexed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// quick-xml refused the document.
    #[error("malformed XML at byte {position}")]
    Malformed {
        /// Byte offset of the error.
        position: u64,
        /// Why.
        #[source]
        source: quick_xml::Error,
    },
    /// An attribute could not be read.
    #[error("malformed attribute in <{element}>")]
    Attribute {
        /// The element.
        element: String,
        /// Why.
        #[source]
        source: quick_xml::events::attributes::AttrError,
    },
    /// The document ended inside an element.
    #[error("XML ends inside <{0}>")]
    Unclosed(String),
    /// No root element.
    #[error("XML has no root element")]
    Empty,
}

/// Result of indexing.
pub type Result<T> = std::result::Result<T, Error>;

/// One element of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Qualified names from the root to this element (`["domain", "devices", "hostdev"]`).
    pub path: Vec<String>,
    /// Attributes in document order, values unescaped.
    pub attrs: Vec<(String, String)>,
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
    pub fn name(&self) -> &str {
        self.path.last().map_or("", String::as_str)
    }

    /// The local name (after any `prefix:`).
    pub fn local_name(&self) -> &str {
        let name = self.name();
        name.rsplit_once(':').map_or(name, |(_, local)| local)
    }

    /// Nesting depth: the root is 0.
    pub fn depth(&self) -> usize {
        self.path.len().saturating_sub(1)
    }

    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when `other` lies inside this element.
    pub fn contains(&self, other: &Node) -> bool {
        other.range.start > self.range.start && other.range.end <= self.range.end
    }
}

/// Every element of a document, in document order.
#[derive(Debug, Clone)]
pub struct Index<'a> {
    /// The document.
    pub text: &'a str,
    /// Its elements, in the order their start tags appear.
    pub nodes: Vec<Node>,
}

impl<'a> Index<'a> {
    /// Indexes `text`.
    pub fn parse(text: &'a str) -> Result<Self> {
        let mut reader = Reader::from_str(text);
        let mut nodes: Vec<Node> = Vec::new();
        // Open elements: index into `nodes`.
        let mut open: Vec<usize> = Vec::new();
        let mut path: Vec<String> = Vec::new();
        let mut last_space: Option<Range<usize>> = None;
        loop {
            let before = reader.buffer_position() as usize;
            let event = reader.read_event().map_err(|source| Error::Malformed {
                position: reader.error_position(),
                source,
            })?;
            let after = reader.buffer_position() as usize;
            match event {
                Event::Start(start) => {
                    path.push(start.name().as_ref().to_string());
                    nodes.push(node(&start, &path, before..after, last_space.take())?);
                    open.push(nodes.len() - 1);
                }
                Event::Empty(start) => {
                    path.push(start.name().as_ref().to_string());
                    nodes.push(node(&start, &path, before..after, last_space.take())?);
                    path.pop();
                }
                Event::End(_) => {
                    if let Some(n) = open.pop().and_then(|i| nodes.get_mut(i)) {
                        n.range.end = after;
                        n.end_tag = Some(before);
                    }
                    path.pop();
                    last_space = None;
                }
                Event::Text(t) if t.as_ref().trim().is_empty() => {
                    last_space = Some(before..after);
                }
                Event::Eof => break,
                _ => last_space = None,
            }
        }
        if let Some(name) = path.pop() {
            return Err(Error::Unclosed(name));
        }
        if nodes.is_empty() {
            return Err(Error::Empty);
        }
        Ok(Self { text, nodes })
    }

    /// The root element.
    pub fn root(&self) -> Option<&Node> {
        self.nodes.first()
    }

    /// Elements at exactly this path (`["domain", "devices", "hostdev"]`).
    pub fn at<'s>(&'s self, path: &'s [&str]) -> impl Iterator<Item = &'s Node> + 's {
        self.nodes.iter().filter(move |n| {
            n.path.len() == path.len() && n.path.iter().zip(path).all(|(a, b)| a == b)
        })
    }

    /// The direct children of `parent`.
    pub fn children<'s>(&'s self, parent: &'s Node) -> impl Iterator<Item = &'s Node> + 's {
        self.nodes
            .iter()
            .filter(move |n| n.depth() == parent.depth() + 1 && parent.contains(n))
    }

    /// Every element inside `parent` (any depth).
    pub fn descendants<'s>(&'s self, parent: &'s Node) -> impl Iterator<Item = &'s Node> + 's {
        self.nodes.iter().filter(move |n| parent.contains(n))
    }

    /// The text of an element, tags included.
    pub fn source(&self, node: &Node) -> &'a str {
        self.text.get(node.range.clone()).unwrap_or("")
    }

    /// The character content of a simple element such as `<name>win11</name>`, unescaped and trimmed.
    pub fn text_of(&self, node: &Node) -> Option<String> {
        let inner = self.text.get(node.start_tag_end..node.end_tag?)?;
        quick_xml::escape::unescape(inner.trim())
            .ok()
            .map(|s| s.into_owned())
    }

    /// The leading whitespace of the line `node` starts on (its indentation).
    pub fn indent_of(&self, node: &Node) -> &'a str {
        let head = self.text.get(..node.range.start).unwrap_or("");
        let line_start = head.rfind('\n').map_or(0, |i| i + 1);
        let line = head.get(line_start..).unwrap_or("");
        let width = line.len() - line.trim_start().len();
        line.get(..width).unwrap_or("")
    }
}

fn node(
    start: &BytesStart<'_>,
    path: &[String],
    range: Range<usize>,
    space: Option<Range<usize>>,
) -> Result<Node> {
    let element = start.name().as_ref().to_string();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|source| Error::Attribute {
            element: element.clone(),
            source,
        })?;
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map(|v| v.into_owned())
            .unwrap_or_else(|_| attr.value.clone().into_owned());
        attrs.push((attr.key.as_ref().to_string(), value));
    }
    Ok(Node {
        path: path.to_vec(),
        attrs,
        start_tag_end: range.end,
        range,
        end_tag: None,
        space_before: space,
    })
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
    }

    #[test]
    fn test_text_of_unescapes() {
        let index = Index::parse(DOC).unwrap();
        let name = index.at(&["domain", "name"]).next().unwrap();
        assert_eq!(index.text_of(name).as_deref(), Some("a&b"));
    }

    #[test]
    fn test_unclosed_element_is_error() {
        let err = Index::parse("<domain><name>x</name>").unwrap_err();
        assert!(matches!(err, Error::Unclosed(_)), "{err}");
    }

    #[test]
    fn test_mismatched_end_tag_is_error() {
        assert!(Index::parse("<domain><name>x</nam></domain>").is_err());
    }
}
