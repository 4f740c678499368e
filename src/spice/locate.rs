//! Where a running domain's SPICE server is, from its *live* XML (`<graphics type='spice'>`: the port QEMU got
//! with autoport, the listen address or unix socket, and the password, which libvirt only shows with
//! `VIR_DOMAIN_XML_SECURE`).
use std::path::PathBuf;

use super::session::Endpoint;
use super::transport::Target;
use crate::domain::Element;

/// Finds the SPICE endpoint in a live domain XML; the error is one line for the window and stderr.
pub(crate) fn from_live_xml(xml: &str) -> Result<Endpoint, String> {
    let root = Element::parse(xml).map_err(|e| format!("cannot read the domain XML: {e}"))?;
    let graphics = root
        .child("devices")
        .into_iter()
        .flat_map(|d| d.children_named("graphics"))
        .find(|g| g.attr("type") == Some("spice"))
        .ok_or(
            "the domain has no SPICE server (<graphics type='spice'>): keyboard and mouse need one",
        )?;
    let password = graphics
        .attr("passwd")
        .unwrap_or_default()
        .as_bytes()
        .to_vec();
    let listen = graphics.children_named("listen").next();
    if let Some(l) = listen.filter(|l| l.attr("type") == Some("socket")) {
        let socket = l
            .attr("socket")
            .ok_or("the SPICE <listen type='socket'> names no socket (is the VM running?)")?;
        return Ok(Endpoint {
            target: Target::Unix(PathBuf::from(socket)),
            password,
        });
    }
    let port: i32 = graphics
        .attr("port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(-1);
    if port <= 0 || port > 65535 {
        return Err("the VM is not running (its SPICE server has no port yet)".into());
    }
    let address = listen
        .and_then(|l| l.attr("address"))
        .or(graphics.attr("listen"))
        .unwrap_or("127.0.0.1");
    let host = match address {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" => "::1",
        a => a,
    };
    Ok(Endpoint {
        target: Target::Tcp {
            host: host.to_string(),
            port: port as u16,
        },
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(graphics: &str) -> String {
        format!("<domain type='kvm'><name>w</name><devices>{graphics}</devices></domain>")
    }

    #[test]
    fn autoport_with_password() {
        let ep = from_live_xml(&dom(
            "<graphics type='spice' port='5901' autoport='yes' listen='127.0.0.1' passwd='s3cret'>\
             <listen type='address' address='127.0.0.1'/></graphics>",
        ))
        .unwrap();
        assert_eq!(ep.target.to_string(), "127.0.0.1:5901");
        assert_eq!(ep.password, b"s3cret");
    }

    #[test]
    fn socket_and_not_running() {
        let ep = from_live_xml(&dom(
            "<graphics type='spice'><listen type='socket' socket='/run/x/spice.sock'/></graphics>",
        ))
        .unwrap();
        assert_eq!(ep.target, Target::Unix("/run/x/spice.sock".into()));
        assert!(ep.password.is_empty());
        let e =
            from_live_xml(&dom("<graphics type='spice' port='-1' autoport='yes'/>")).unwrap_err();
        assert!(e.contains("not running"), "{e}");
        let e = from_live_xml(&dom("<graphics type='vnc' port='5900'/>")).unwrap_err();
        assert!(e.contains("no SPICE server"), "{e}");
    }
}
