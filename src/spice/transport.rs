//! Where the SPICE server is (`HOST:PORT` or `unix:PATH`) and the byte stream to it. Reads wake up every
//! [`POLL`] so a channel thread notices a stop request; a read that times out mid-message resumes where it was,
//! so the framing never slips.
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::error::Error;

/// How often a blocked read checks the stop flag.
pub(crate) const POLL: Duration = Duration::from_millis(200);
/// A write that cannot finish in this time means a dead server (the UI thread must never hang on it).
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The server's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// TCP host and port.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A unix socket.
    Unix(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Target::Tcp { host, port } => write!(f, "{host}:{port}"),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    /// `HOST:PORT`, `[V6]:PORT` or `unix:PATH` (absolute).
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!("`{s}`: the socket path must be absolute"));
            }
            return Ok(Target::Unix(PathBuf::from(path)));
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}`: expected HOST:PORT or unix:PATH"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port
            .parse()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("`{s}`: `{port}` is not a port (1-65535)"))?;
        if host.is_empty() || host.contains(['/', ' ']) || host.contains(':') != s.contains('[') {
            return Err(format!("`{s}`: `{host}` is not a host name or address"));
        }
        Ok(Target::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

/// A connected stream (TCP or unix).
#[derive(Debug)]
pub(crate) enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix socket.
    Unix(UnixStream),
}

impl Stream {
    /// Connects with a timeout; sets TCP_NODELAY (input must not wait for Nagle) and the read/write timeouts.
    pub(crate) fn connect(target: &Target) -> Result<Self, Error> {
        let stream = match target {
            Target::Tcp { host, port } => {
                let addrs = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|e| Error::io(format!("cannot resolve {target}"), e))?;
                let mut last = None;
                let mut found = None;
                for addr in addrs {
                    match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let s = found.ok_or_else(|| {
                    Error::io(
                        format!("cannot connect to the SPICE server at {target}"),
                        last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()),
                    )
                })?;
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }
            Target::Unix(path) => Stream::Unix(UnixStream::connect(path).map_err(|e| {
                Error::io(format!("cannot connect to the SPICE server at {target}"), e)
            })?),
        };
        stream
            .set_timeouts()
            .map_err(|e| Error::io("cannot set socket timeouts", e))?;
        Ok(stream)
    }

    fn set_timeouts(&self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(POLL))?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))
            }
            Stream::Unix(s) => {
                s.set_read_timeout(Some(POLL))?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))
            }
        }
    }

    /// A second handle on the same connection (one reads, one writes).
    pub(crate) fn try_clone(&self) -> std::io::Result<Self> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }

    /// Closes both directions (wakes the reader).
    pub(crate) fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }

    /// Fills `buf` completely; read timeouts only check `stop`. EOF is [`Error::Closed`].
    pub(crate) fn read_full(
        &mut self,
        buf: &mut [u8],
        stop: &AtomicBool,
        during: &'static str,
    ) -> Result<(), Error> {
        let mut done = 0;
        while done < buf.len() {
            if stop.load(Ordering::Acquire) {
                return Err(Error::Stopped);
            }
            match self.read(&mut buf[done..]) {
                Ok(0) => return Err(Error::Closed { during }),
                Ok(n) => done += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    return Err(Error::io(
                        format!("reading from the SPICE server ({during})"),
                        e,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Writes all of `bytes` (bounded by the write timeout).
    pub(crate) fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.write_all(bytes)
            .map_err(|e| Error::io("writing to the SPICE server", e))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            "127.0.0.1:5930".parse::<Target>().unwrap(),
            Target::Tcp {
                host: "127.0.0.1".into(),
                port: 5930
            }
        );
        assert_eq!(
            "[::1]:5900".parse::<Target>().unwrap().to_string(),
            "[::1]:5900"
        );
        assert_eq!(
            "unix:/run/x.sock".parse::<Target>().unwrap(),
            Target::Unix("/run/x.sock".into())
        );
        for bad in [
            "",
            "5930",
            "host:",
            ":5930",
            "host:0",
            "host:99999",
            "unix:rel",
            "a b:1",
            "::1:5900",
            "host:port",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
