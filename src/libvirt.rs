//! The only user of the `virt` crate (libvirt): connect, look up, read and define domains. The hook never
//! comes here (a hook that calls libvirt deadlocks libvirtd).
//!
//! libvirt prints every error to stderr by default; [`Libvirt::open`] turns that off, so each failure reaches
//! the user once, as one line, through our error chain.
use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::{ErrorNumber, clear_error_callback};

/// A libvirt call that failed; the message is libvirt's own, without its code suffix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The connection could not be opened.
    #[error("cannot connect to libvirt at {uri}: {message}")]
    Connect {
        /// The URI.
        uri: String,
        /// libvirt's message.
        message: String,
    },
    /// Looking up or reading a domain failed.
    #[error("cannot read domain {name}: {message}")]
    Lookup {
        /// The domain.
        name: String,
        /// libvirt's message.
        message: String,
    },
    /// libvirt refused the domain XML.
    #[error("libvirt refused the domain: {message}")]
    Define {
        /// libvirt's message.
        message: String,
    },
}

/// Result of libvirt calls.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// An open libvirt connection.
pub(crate) struct Libvirt {
    conn: Connect,
}

/// libvirt's message on one line (it sometimes spans lines).
fn one_line(err: &virt::error::Error) -> String {
    err.message()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl Libvirt {
    /// Connects to `uri` (`qemu:///system`, `qemu+ssh://host/system`, `test:///default`, …).
    pub(crate) fn open(uri: &str) -> Result<Self> {
        clear_error_callback();
        let conn = Connect::open(Some(uri)).map_err(|e| Error::Connect {
            uri: uri.to_string(),
            message: one_line(&e),
        })?;
        Ok(Self { conn })
    }

    fn lookup(&self, name: &str) -> Result<Option<Domain>> {
        match self.conn.lookup_domain_by_name(name) {
            Ok(domain) => Ok(Some(domain)),
            Err(e) if e.code() == ErrorNumber::NoDomain.into() => Ok(None),
            Err(e) => Err(Error::Lookup {
                name: name.to_string(),
                message: one_line(&e),
            }),
        }
    }

    /// True when a domain (running or not) has this name.
    pub(crate) fn domain_exists(&self, name: &str) -> Result<bool> {
        self.lookup(name).map(|d| d.is_some())
    }

    /// The persistent (inactive) XML of a domain; `None` when there is no such domain.
    pub(crate) fn inactive_xml(&self, name: &str) -> Result<Option<String>> {
        let Some(domain) = self.lookup(name)? else {
            return Ok(None);
        };
        let flags = virt::sys::VIR_DOMAIN_XML_INACTIVE | virt::sys::VIR_DOMAIN_XML_SECURE;
        domain.xml_desc(flags).map(Some).map_err(|e| Error::Lookup {
            name: name.to_string(),
            message: one_line(&e),
        })
    }

    /// The live XML of a running domain with secrets (the SPICE password); `None` when there is no such
    /// domain. For a domain that is not running this is its inactive XML (no SPICE port yet).
    #[cfg(feature = "viewer")]
    pub(crate) fn live_xml(&self, name: &str) -> Result<Option<String>> {
        let Some(domain) = self.lookup(name)? else {
            return Ok(None);
        };
        domain
            .xml_desc(virt::sys::VIR_DOMAIN_XML_SECURE)
            .map(Some)
            .map_err(|e| Error::Lookup {
                name: name.to_string(),
                message: one_line(&e),
            })
    }

    /// Defines (or redefines) a domain from XML; returns its name.
    pub(crate) fn define(&self, xml: &str) -> Result<String> {
        let domain = self
            .conn
            .define_domain_xml(xml)
            .map_err(|e| Error::Define {
                message: one_line(&e),
            })?;
        domain.name().map_err(|e| Error::Define {
            message: one_line(&e),
        })
    }
}
