//! Little-endian byte reading with checked lengths (every read of server bytes goes through [`Reader`]) and the
//! framing of outgoing data messages.
use super::error::ProtocolError;

/// Size of the mini data header: `u16 type`, `u32 size`.
pub(crate) const MINI_HEADER_LEN: usize = 6;

/// A cursor over a server message body; every read is bounds-checked and names the message on failure.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    what: &'static str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading `bytes`, the body of the message `what` (named in errors).
    pub(crate) fn new(what: &'static str, bytes: &'a [u8]) -> Self {
        Self {
            what,
            bytes,
            pos: 0,
        }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(ProtocolError::Truncated {
                what: self.what,
                need: self.pos.saturating_add(n),
                got: self.bytes.len(),
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// A fixed-size array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian u16.
    pub(crate) fn u16(&mut self) -> Result<u16, ProtocolError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// A little-endian u32.
    pub(crate) fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian u64.
    pub(crate) fn u64(&mut self) -> Result<u64, ProtocolError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        out
    }

    /// How many bytes are left.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// A count read from the wire, checked against the bytes that must follow (`each` bytes per item), so a
    /// lying count can never size an allocation.
    pub(crate) fn count(&mut self, raw: u32, each: usize) -> Result<usize, ProtocolError> {
        let n = raw as usize;
        match n.checked_mul(each) {
            Some(total) if total <= self.remaining() => Ok(n),
            _ => Err(ProtocolError::BadCount {
                what: self.what,
                count: raw,
            }),
        }
    }
}

/// One outgoing data message with a mini header.
pub(crate) fn frame(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MINI_HEADER_LEN + body.len());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Parses a mini header: (type, body size).
pub(crate) fn parse_mini_header(h: &[u8; MINI_HEADER_LEN]) -> (u16, u32) {
    (
        u16::from_le_bytes([h[0], h[1]]),
        u32::from_le_bytes([h[2], h[3], h[4], h[5]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_checked() {
        let mut r = Reader::new("test", &[1, 0, 2, 0, 0, 0, 9]);
        assert_eq!(r.u16().unwrap(), 1);
        assert_eq!(r.u32().unwrap(), 2);
        assert!(r.u16().is_err());
        assert_eq!(r.u8().unwrap(), 9);
        assert!(r.u8().is_err());
    }

    #[test]
    fn counts_cannot_exceed_the_body() {
        let mut r = Reader::new("test", &[0; 10]);
        assert_eq!(r.count(5, 2).unwrap(), 5);
        assert!(r.count(6, 2).is_err());
        assert!(r.count(u32::MAX, usize::MAX).is_err());
    }

    #[test]
    fn frame_round_trip() {
        let f = frame(104, &[]);
        assert_eq!(f, [0x68, 0, 0, 0, 0, 0]);
        let h: [u8; 6] = f[..6].try_into().unwrap();
        assert_eq!(parse_mini_header(&h), (104, 0));
    }
}
