//! The VM's SPICE server, closed to other local users: loopback only and a random per-VM password (libvirt
//! shows it only to clients allowed to manage the domain, `VIR_DOMAIN_XML_SECURE`). `define` and `--update`
//! write it; `check` finds vmgpu domains whose SPICE server still takes anyone. Why a password and not a unix
//! socket: docs/spice.md.
use quick_xml::escape::escape;

use super::rewrite::{self, Rule};
use crate::domain::read::element::Element;

/// Characters of a generated password (alphanumeric: no quoting or shell trouble; 24 × ~5.95 bits = 143 bits).
// The password makers serve `define`, which needs libvirt.
#[cfg(any(test, feature = "libvirt"))]
pub(crate) const PASSWORD_LEN: usize = 24;
/// What `--dry-run` prints instead of a password (the real one is made when the domain is defined).
pub(crate) const DRY_RUN_PASSWORD: &str = "generated-when-defined";

/// A fresh random password from the kernel's RNG.
#[cfg(any(test, feature = "libvirt"))]
pub(crate) fn random_password() -> std::io::Result<String> {
    use std::io::Read;

    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::with_capacity(PASSWORD_LEN);
    let mut f = std::fs::File::open("/dev/urandom")?;
    while out.len() < PASSWORD_LEN {
        let mut b = [0u8; 32];
        f.read_exact(&mut b)?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % ALPHABET.len();
        out.extend(
            b.iter()
                .filter(|&&x| (x as usize) < limit)
                .map(|&x| ALPHABET[x as usize % ALPHABET.len()] as char)
                .take(PASSWORD_LEN - out.len()),
        );
    }
    Ok(out)
}

fn spice_graphics(root: &Element) -> Option<&Element> {
    root.child("devices")?
        .children_named("graphics")
        .find(|g| g.attr("type") == Some("spice"))
}

/// The password a domain's SPICE server already has (kept by `--update`, so a running viewer keeps working).
#[cfg(any(test, feature = "libvirt"))]
pub(crate) fn existing_password(xml: &str) -> Option<String> {
    let root = Element::parse(xml).ok()?;
    spice_graphics(&root)?
        .attr("passwd")
        .filter(|p| !p.is_empty())
        .map(str::to_string)
}

/// Replaces the domain's `<graphics type='spice'>` with one on 127.0.0.1 with `password`, keeping autoport,
/// uncompressed images and no video streams (the viewer decodes plain bitmaps only).
pub(crate) fn secure(xml: &str, password: &str) -> rewrite::Result<String> {
    let graphics = format!(
        "<graphics type='spice' autoport='yes' passwd='{}'>\n  <listen type='address' address='127.0.0.1'/>\n  <image compression='off'/>\n  <streaming mode='off'/>\n</graphics>",
        escape(password)
    );
    rewrite::apply(
        xml,
        &[Rule::replace_where(
            &["domain", "devices"],
            "graphics",
            |_, n| n.attr("type") == Some("spice"),
            vec![graphics],
        )],
    )
}

/// Why a domain's SPICE server lets any local user in (`None` when it does not, or has no SPICE server).
pub(crate) fn open_to_others(xml: &str) -> Option<String> {
    let root = Element::parse(xml).ok()?;
    let g = spice_graphics(&root)?;
    let listen = g.children_named("listen").next();
    if listen.and_then(|l| l.attr("type")) == Some("socket") {
        return None;
    }
    let address = listen
        .and_then(|l| l.attr("address"))
        .or(g.attr("listen"))
        .unwrap_or("127.0.0.1");
    let loopback = address.starts_with("127.") || address == "::1" || address == "localhost";
    match (g.attr("passwd").is_some_and(|p| !p.is_empty()), loopback) {
        (false, true) => {
            Some("its SPICE server has no password: any local user can type into it".into())
        }
        (false, false) => Some(format!(
            "its SPICE server listens on {address} without a password: anyone who can reach it can type into it"
        )),
        (true, false) => Some(format!(
            "its SPICE server listens on {address}, not only on loopback"
        )),
        (true, true) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: &str = "<domain type='kvm'><name>w</name><devices>\n    <graphics type='spice' autoport='yes'>\n      <listen type='address'/>\n      <image compression='off'/>\n    </graphics>\n    <graphics type='vnc'/>\n  </devices></domain>";

    #[test]
    fn secure_sets_password_and_loopback() {
        assert!(open_to_others(OPEN).unwrap().contains("no password"));
        let xml = secure(OPEN, "abc").unwrap();
        assert_eq!(existing_password(&xml).as_deref(), Some("abc"));
        assert_eq!(open_to_others(&xml), None);
        assert!(xml.contains("<graphics type='vnc'/>"), "{xml}");
        assert!(xml.contains("address='127.0.0.1'"));
    }

    #[test]
    fn passwords_are_random_and_plain() {
        let (a, b) = (random_password().unwrap(), random_password().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn wide_listen_is_reported() {
        let xml = OPEN.replace(
            "<listen type='address'/>",
            "<listen type='address' address='0.0.0.0'/>",
        );
        assert!(open_to_others(&xml).unwrap().contains("0.0.0.0"));
        let sock = OPEN.replace(
            "<listen type='address'/>",
            "<listen type='socket' socket='/x'/>",
        );
        assert_eq!(open_to_others(&sock), None);
    }
}
