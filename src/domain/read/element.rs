//! A small read-only element tree of a domain XML, built from the one reader's [`Index`] (`read/xml.rs`).
//!
//! Domain XMLs are a few KiB, so a tree is cheap (tens of µs) and makes the lookups the hook needs (by path,
//! by namespace URI) simple. Input is untrusted (the hook's stdin): the reader bounds size and depth and
//! nothing here panics on it. Comments, processing instructions and the prolog are dropped: this is a *view*,
//! never written back.
use super::xml::{Index, Node, Result};

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
    pub(crate) fn parse(xml: &str) -> Result<Element> {
        Ok(Self::tree(&Index::parse(xml)?))
    }

    /// The tree of an indexed document: its root element.
    pub(crate) fn tree(index: &Index<'_>) -> Element {
        // Nodes are in document order, so every node's descendants come after it: walking backwards, a node's
        // children are complete (in reverse order) when it is reached.
        let mut built: Vec<Option<Element>> = index.nodes.iter().map(|n| Some(of(n))).collect();
        let mut root = Element::default();
        for (i, node) in index.nodes.iter().enumerate().rev() {
            let Some(mut element) = built.get_mut(i).and_then(Option::take) else {
                continue;
            };
            element.children.reverse();
            match node.parent.and_then(|p| built.get_mut(p)) {
                Some(Some(parent)) => parent.children.push(element),
                _ => root = element,
            }
        }
        root
    }

    /// True when this element has local name `name` and no namespace (libvirt's own elements).
    pub(crate) fn is(&self, name: &str) -> bool {
        self.namespace.is_none() && self.name == name
    }

    /// The value of an unprefixed attribute.
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child in no namespace named `name`.
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(name))
    }

    /// Every child in no namespace named `name`.
    pub(crate) fn children_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(name))
    }

    /// Follows a path of child names in no namespace (`["devices", "hostdev"]` gives the first).
    pub(crate) fn path(&self, names: &[&str]) -> Option<&Element> {
        names.iter().try_fold(self, |el, name| el.child(name))
    }

    /// The element's text, trimmed.
    pub(crate) fn trimmed_text(&self) -> &str {
        self.text.trim()
    }
}

/// One node as an element: local name, unprefixed attributes (namespace declarations are resolved by the reader;
/// prefixed attributes are not ours), no children yet.
fn of(node: &Node) -> Element {
    Element {
        namespace: node.namespace.clone(),
        name: node.local_name().to_string(),
        attributes: node
            .attrs
            .iter()
            .filter(|(k, _)| !k.contains(':') && k != "xmlns")
            .cloned()
            .collect(),
        text: node.text.clone(),
        children: Vec::new(),
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
        assert_eq!(config.attributes, vec![("version".into(), "1".into())]);
    }

    #[test]
    fn test_parse_unescapes_text_and_attributes() {
        let root =
            Element::parse(r#"<domain a="x&amp;y"><name>a&lt;b&#65;</name></domain>"#).unwrap();
        assert_eq!(root.attr("a"), Some("x&y"));
        assert_eq!(root.child("name").unwrap().text, "a<bA");
    }

    #[test]
    fn test_tree_keeps_document_order() {
        let root = Element::parse("<d><a><x/><y/></a><b/><a/></d>").unwrap();
        let names: Vec<&str> = root.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "a"]);
        let inner: Vec<&str> = root.children[0]
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(inner, ["x", "y"]);
    }

    #[test]
    fn test_parse_refuses_what_the_reader_refuses() {
        assert!(Element::parse("<domain><name>x</name>").is_err());
        assert!(Element::parse("<domain><v:config/></domain>").is_err());
    }
}
