//! The udata the guest's host application writes: the KVMFR header and its VMINFO/OSINFO records (parse and encode).
use super::*;

/// What the guest's host application says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// KVMFR version (20 or 19).
    pub version: u32,
    /// Host build string, e.g. "B7".
    pub hostver: String,
    /// Feature flags.
    pub features: u32,
    /// Capture backend from VMINFO.
    pub capture: String,
    /// CPU model from VMINFO.
    pub cpu_model: String,
    /// OS name from OSINFO.
    pub os_name: String,
}

/// Parses the KVMFR header and records from a copy of the udata.
pub fn parse_udata(udata: &[u8]) -> Result<HostInfo> {
    if udata.len() < HEADER_SIZE || &udata[..8] != MAGIC {
        return Err(Error::NotKvmfr);
    }
    let version = u32_at(udata, 8);
    let hostver = cstr(&udata[12..44]);
    if version != VERSION_B7 && version != VERSION_B6 {
        return Err(Error::Version {
            found: version,
            host: hostver,
        });
    }
    let mut info = HostInfo {
        version,
        hostver,
        features: u32_at(udata, 44),
        ..HostInfo::default()
    };
    let mut rest = &udata[HEADER_SIZE..];
    while rest.len() >= 8 {
        let kind = rest[0];
        let size = u32_at(rest, 4) as usize;
        let Some(payload) = rest.get(8..8usize.saturating_add(size)) else {
            break;
        };
        match kind {
            1 if payload.len() >= 51 => {
                info.capture = cstr(&payload[16..48]);
                info.cpu_model = cstr(&payload[51..]);
            }
            2 if !payload.is_empty() => info.os_name = cstr(&payload[1..]),
            _ => {}
        }
        rest = &rest[8 + size..];
    }
    Ok(info)
}

/// Builds the udata the B7 host writes: header, VMINFO, OSINFO.
pub fn encode_udata(
    hostver: &str,
    features: u32,
    capture: &str,
    cpu_model: &str,
    os_name: &str,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION_B7.to_le_bytes());
    let mut hv = [0u8; 32];
    for (d, s) in hv.iter_mut().zip(hostver.bytes().take(31)) {
        *d = s;
    }
    out.extend_from_slice(&hv);
    out.extend_from_slice(&features.to_le_bytes());
    let mut vminfo = vec![0u8; 51];
    for (d, s) in vminfo[16..47].iter_mut().zip(capture.bytes()) {
        *d = s;
    }
    vminfo[48..51].copy_from_slice(&[4, 4, 1]);
    vminfo.extend_from_slice(cpu_model.as_bytes());
    vminfo.push(0);
    push_record(&mut out, 1, &vminfo);
    let mut osinfo = vec![3u8];
    osinfo.extend_from_slice(os_name.as_bytes());
    osinfo.push(0);
    push_record(&mut out, 2, &osinfo);
    out
}

fn push_record(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}
