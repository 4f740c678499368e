//! Looking Glass settings of a domain: off, an IVSHMEM region in `/dev/shm` sized for a resolution, or the
//! `kvmfr` kernel module's `/dev/kvmfr0`.
//!
//! Size formula (Looking Glass documentation): `width × height × 4 bytes (8 for HDR) × 2 frames + 10 MiB`,
//! rounded up to the next power of two in MiB: 1080p 32 MiB, 1440p 64 MiB, 4K 128 MiB.
use std::fmt;
use std::str::FromStr;

/// The largest width or height accepted (16K); beyond it the region would exceed what IVSHMEM can map.
pub(crate) const MAX_DIMENSION: u32 = 16384;
/// The smallest width or height accepted.
pub(crate) const MIN_DIMENSION: u32 = 64;
/// The one spelling of the default name, so that the name and its path below cannot drift apart.
macro_rules! default_shm_name {
    () => {
        "looking-glass"
    };
}
/// The default name of the shared-memory file, as the Looking Glass docs use.
pub(crate) const DEFAULT_SHM_NAME: &str = default_shm_name!();
/// The default shared-memory file.
pub(crate) const DEFAULT_SHM_FILE: &str = concat!("/dev/shm/", default_shm_name!());

/// A `--looking-glass` value that is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not `off`, `kvmfr` or `WIDTHxHEIGHT[,hdr]`.
    #[error(
        "{0:?} is not a Looking Glass setting (expected WIDTHxHEIGHT[,hdr] such as 2560x1440, `kvmfr` or `off`)"
    )]
    Syntax(String),
    /// A width or height outside what a monitor can have.
    #[error(
        "resolution {width}x{height} is out of range (each side {MIN_DIMENSION}..={MAX_DIMENSION} pixels)"
    )]
    Resolution {
        /// Width in pixels.
        width: u64,
        /// Height in pixels.
        height: u64,
    },
}

/// How the guest's frames reach the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookingGlass {
    /// No Looking Glass device.
    Off,
    /// An `ivshmem-plain` `<shmem>` backed by `/dev/shm/<name>`, sized for this resolution.
    Shmem(Resolution),
    /// The kvmfr module's `/dev/kvmfr0`, sized for this resolution (through `qemu:commandline`).
    Kvmfr(Resolution),
}

/// The guest's largest screen mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// 10-bit HDR frames (8 bytes per pixel instead of 4).
    pub hdr: bool,
}

impl Resolution {
    /// The region size in MiB by the documented formula.
    pub(crate) fn size_mib(&self) -> u64 {
        let bytes_per_pixel: u64 = if self.hdr { 8 } else { 4 };
        let frame_bytes = u64::from(self.width) * u64::from(self.height) * bytes_per_pixel;
        let total = frame_bytes * 2 + 10 * 1024 * 1024;
        total.div_ceil(1024 * 1024).next_power_of_two()
    }

    /// The region size in bytes.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.size_mib() * 1024 * 1024
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)?;
        if self.hdr {
            f.write_str(",hdr")?;
        }
        Ok(())
    }
}

impl FromStr for Resolution {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || Error::Syntax(s.chars().take(64).collect());
        let (mode, hdr) = match s.split_once(',') {
            Some((mode, "hdr")) => (mode, true),
            Some(_) => return Err(syntax()),
            None => (s, false),
        };
        let (w, h) = mode.split_once(['x', 'X']).ok_or_else(syntax)?;
        let number = |t: &str| -> Result<u64, Error> {
            if t.is_empty() || t.len() > 12 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            t.parse().map_err(|_| syntax())
        };
        let (width, height) = (number(w)?, number(h)?);
        let range = u64::from(MIN_DIMENSION)..=u64::from(MAX_DIMENSION);
        if !range.contains(&width) || !range.contains(&height) {
            return Err(Error::Resolution { width, height });
        }
        // Both fit in u32: checked against MAX_DIMENSION just above.
        Ok(Self {
            width: width as u32,
            height: height as u32,
            hdr,
        })
    }
}

impl FromStr for LookingGlass {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl LookingGlass {
    /// Parses `off`, `kvmfr`, `kvmfr:WIDTHxHEIGHT[,hdr]` or `WIDTHxHEIGHT[,hdr]`. A bare `kvmfr` is sized for 1080p.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        match s {
            "off" | "none" | "no" => Ok(Self::Off),
            "kvmfr" => Ok(Self::Kvmfr(Resolution {
                width: 1920,
                height: 1080,
                hdr: false,
            })),
            _ => match s.strip_prefix("kvmfr:") {
                Some(mode) => mode.parse().map(Self::Kvmfr),
                None => s.parse().map(Self::Shmem),
            },
        }
    }

    /// The resolution, when Looking Glass is on.
    #[cfg(feature = "libvirt")]
    pub(crate) fn resolution(&self) -> Option<Resolution> {
        match self {
            Self::Off => None,
            Self::Shmem(r) | Self::Kvmfr(r) => Some(*r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mib(s: &str) -> u64 {
        s.parse::<Resolution>().unwrap().size_mib()
    }

    #[test]
    fn test_size_1080p_is_32_mib() {
        assert_eq!(mib("1920x1080"), 32);
    }

    #[test]
    fn test_size_1440p_is_64_mib() {
        assert_eq!(mib("2560x1440"), 64);
    }

    #[test]
    fn test_size_4k_is_128_mib() {
        assert_eq!(mib("3840x2160"), 128);
    }

    #[test]
    fn test_size_1080p_hdr_is_64_mib() {
        assert_eq!(mib("1920x1080,hdr"), 64);
    }

    #[test]
    fn test_parse_zero_resolution_is_out_of_range() {
        let err = "0x0".parse::<Resolution>().unwrap_err();
        assert_eq!(
            err,
            Error::Resolution {
                width: 0,
                height: 0
            }
        );
    }

    #[test]
    fn test_parse_huge_resolution_is_out_of_range() {
        let err = "99999x99999".parse::<Resolution>().unwrap_err();
        assert!(matches!(err, Error::Resolution { .. }), "{err}");
    }

    #[test]
    fn test_parse_garbage_is_syntax_error() {
        for bad in [
            "",
            "x",
            "1920x",
            "1920x1080,sdr",
            "-1x5",
            "1920*1080",
            "１920x1080",
        ] {
            assert!(
                matches!(bad.parse::<Resolution>(), Err(Error::Syntax(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn test_looking_glass_off_and_kvmfr_parse() {
        assert_eq!(LookingGlass::parse("off").unwrap(), LookingGlass::Off);
        assert!(matches!(
            LookingGlass::parse("kvmfr:2560x1440").unwrap(),
            LookingGlass::Kvmfr(Resolution { width: 2560, .. })
        ));
    }
}
