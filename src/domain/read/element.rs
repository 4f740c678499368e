//! A small read-only element tree of a domain XML, built with quick-xml's namespace-aware reader.
//!
//! Domain XMLs are a few KiB, so a tree is cheap (tens of µs) and makes the lookups the hook needs (by path,
//! by namespace URI) simple. Input is untrusted (the hook's stdin): size and depth are bounded and nothing
//! here panics on it. Comments, processing instructions and the prolog are dropped: this is a *view*, never
//! written back.
use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

/// The largest document accepted (libvirt's own limit for a domain XML is 10 MiB).
pub const MAX_BYTES: usize = 10 * 1024 * 1024;
/// The deepest nesting accepted (real domain XMLs are under 10 levels deep).
pub const MAX_DEPTH: usize = 64;

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
pub type Result<T> = std::result::Result<T, Error>;

/// One element: its namespace URI, local name, unprefixed attributes, text and children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// The namespace URI the element's prefix (or the default namespace) resolves to.
    pub namespace: Option<String>,
    /// Local name (without prefix).
    pub name: String,
    /// Attributes (local names; `xmlns` declarations left out), values unescaped.
    pub attributes: Vec<(String, String)>,
    /// The element's own text (all text and CDATA children joined), unescaped.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// Parses a whole document and returns its root element.
    pub fn parse(xml: &str) -> Result<Element> {
        if xml.len() > MAX_BYTES {
            return Err(Error::TooLarge(xml.len()));
        }
        let mut reader = NsReader::from_str(xml);
        reader.config_mut().check_end_names = true;
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
        loop {
            let position = reader.buffer_position();
            let (ns, event) = reader
                .read_resolved_event()
                .map_err(|source| Error::Syntax { position, source })?;
            let namespace = match ns {
                ResolveResult::Bound(ns) => Some(ns.0.to_string()),
                ResolveResult::Unbound => None,
                ResolveResult::Unknown(p) => return Err(Error::UnknownPrefix(p)),
            };
            match event {
                Event::Start(_) | Event::Empty(_) if root.is_some() => {
                    return Err(Error::SeveralRoots);
                }
                Event::Start(start) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(Error::TooDeep);
                    }
                    stack.push(element_of(&start, namespace, position)?);
                }
                Event::Empty(start) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(Error::TooDeep);
                    }
                    let element = element_of(&start, namespace, position)?;
                    close(&mut stack, &mut root, element);
                }
                Event::End(_) => {
                    let element = stack.pop().ok_or(Error::Incomplete("unmatched end tag"))?;
                    close(&mut stack, &mut root, element);
                }
                Event::Text(text) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&text.xml10_content());
                    }
                }
                Event::CData(data) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&data.xml10_content());
                    }
                }
                Event::GeneralRef(reference) => {
                    let Some(top) = stack.last_mut() else {
                        continue;
                    };
                    let resolved = match reference.resolve_char_ref() {
                        Ok(Some(ch)) => Some(ch.to_string()),
                        Ok(None) => quick_xml::escape::resolve_predefined_entity(&reference)
                            .map(str::to_string),
                        Err(source) => return Err(Error::Syntax { position, source }),
                    };
                    match resolved {
                        Some(text) => top.text.push_str(&text),
                        None => {
                            return Err(Error::UnknownEntity(reference.chars().take(32).collect()));
                        }
                    }
                }
                Event::Eof => break,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
        if !stack.is_empty() {
            return Err(Error::Incomplete("the document ends inside an element"));
        }
        root.ok_or(Error::Incomplete("no element"))
    }

    /// True when this element has local name `name` and no namespace (libvirt's own elements).
    pub fn is(&self, name: &str) -> bool {
        self.namespace.is_none() && self.name == name
    }

    /// The value of an unprefixed attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child in no namespace named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(name))
    }

    /// Every child in no namespace named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(name))
    }

    /// Follows a path of child names in no namespace (`["devices", "hostdev"]` gives the first).
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        names.iter().try_fold(self, |el, name| el.child(name))
    }

    /// The element's text, trimmed.
    pub fn trimmed_text(&self) -> &str {
        self.text.trim()
    }
}

fn element_of(start: &BytesStart<'_>, namespace: Option<String>, position: u64) -> Result<Element> {
    let qname = start.name();
    let element_name = qname.0.to_string();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| Error::Attribute {
            element: element_name.clone(),
            position,
            source: e.into(),
        })?;
        let key = attribute.key;
        if key.as_namespace_binding().is_some() || key.prefix().is_some() {
            // Namespace declarations are resolved by the reader; prefixed attributes are not ours.
            continue;
        }
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|source| Error::Attribute {
                element: element_name.clone(),
                position,
                source,
            })?;
        attributes.push((key.0.to_string(), value.into_owned()));
    }
    Ok(Element {
        namespace,
        name: start.local_name().as_ref().to_string(),
        attributes,
        text: String::new(),
        children: Vec::new(),
    })
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_resolves_namespace_not_prefix() {
        let xml =
            r#"<domain><metadata><x:config xmlns:x="urn:a" version="1"/></metadata></domain>"#;
        let root = Element::parse(xml).unwrap();
        let config = &root.path(&["metadata"]).unwrap().children[0];
        assert_eq!(config.namespace.as_deref(), Some("urn:a"));
        assert_eq!(config.name, "config");
        assert_eq!(config.attr("version"), Some("1"));
    }

    #[test]
    fn test_parse_unescapes_text_and_attributes() {
        let root =
            Element::parse(r#"<domain a="x&amp;y"><name>a&lt;b&#65;</name></domain>"#).unwrap();
        assert_eq!(root.attr("a"), Some("x&y"));
        assert_eq!(root.child("name").unwrap().text, "a<bA");
    }

    #[test]
    fn test_parse_unclosed_element_is_error() {
        assert!(Element::parse("<domain><name>x</name>").is_err());
    }

    #[test]
    fn test_parse_mismatched_end_is_error() {
        assert!(Element::parse("<domain><name>x</nome></domain>").is_err());
    }

    #[test]
    fn test_parse_two_roots_is_error() {
        assert!(matches!(
            Element::parse("<a/><b/>"),
            Err(Error::SeveralRoots)
        ));
    }

    #[test]
    fn test_parse_deep_nesting_is_error() {
        let xml = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(matches!(Element::parse(&xml), Err(Error::TooDeep)));
    }

    #[test]
    fn test_parse_undeclared_prefix_is_error() {
        assert!(Element::parse("<domain><v:config/></domain>").is_err());
    }
}
