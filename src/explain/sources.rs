//! Reading what `explain` matches: the QEMU log (cut to the last start), the kernel log, vmgpu's and libvirt's
//! log lines, vmgpu's journal and the passed-through devices' vendors. Files are read through [`HostRoot`];
//! journald is asked through `ops::process` with a deadline. Every missing source becomes a note, never an
//! error: `explain` works with whatever is there.
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use super::{DomainFacts, Logs, Source};
use crate::host::HostRoot;

/// The most bytes read from the end of one log file.
pub(crate) const MAX_LOG_BYTES: u64 = 1 << 20;
/// How long journalctl may take.
const JOURNALCTL_DEADLINE: Duration = Duration::from_secs(15);
/// The marker libvirt writes at the top of each start in the QEMU log.
const START_MARKER: &str = ": starting up ";

/// What to read.
#[derive(Debug, Clone)]
pub(crate) struct Request<'a> {
    /// The host root (journald is only asked on the live root `/`).
    pub root: &'a HostRoot,
    /// The VM.
    pub vm: &'a str,
    /// `--since`: passed to journalctl; also cuts the QEMU log at the first start at or after it.
    pub since: Option<&'a str>,
    /// The domain XML, when the caller has it (libvirt or `--xml`).
    pub domain_xml: Option<String>,
}

/// Reads every source for a VM.
pub(crate) fn gather(req: &Request<'_>) -> Logs {
    let mut logs = Logs {
        vm: req.vm.to_string(),
        ..Logs::default()
    };
    let qemu_path = format!("/var/log/libvirt/qemu/{}.log", req.vm);
    let mut start_time = None;
    match read_tail(req.root, &qemu_path) {
        Ok(Some(text)) => {
            let (section, started) = last_start(&text, req.since);
            start_time = started;
            logs.texts.push((Source::Qemu, section));
        }
        Ok(None) => logs.notes.push(format!(
            "no QEMU log at {} (the VM never started on this host, or libvirt logs elsewhere)",
            req.root.path(&qemu_path).display()
        )),
        Err(e) => logs.notes.push(format!("QEMU log: {e}")),
    }
    // journald's --since: the user's, else the last start in the QEMU log (UTC there).
    let since = req
        .since
        .map(str::to_string)
        .or_else(|| start_time.map(|t| format!("{t} UTC")));
    if req.root.is_live() {
        read_journald(&mut logs, since.as_deref());
    } else {
        read_file_source(&mut logs, req.root, Source::Kernel, "/var/log/kern.log");
        read_file_source(
            &mut logs,
            req.root,
            Source::Hook,
            "/var/log/libvirt/libvirtd.log",
        );
    }
    let journal_path = format!("{}/{}.json", crate::journal::DIR, req.vm);
    if let Ok(Some(text)) = req.root.read_optional(&journal_path) {
        logs.texts.push((Source::Journal, text));
    }
    if let Some(xml) = &req.domain_xml {
        set_domain(&mut logs, xml);
        logs.hostdev_vendors = logs
            .domain
            .hostdevs
            .iter()
            .filter_map(|addr| {
                let vendor = req
                    .root
                    .read_hex(format!("/sys/bus/pci/devices/{addr}/vendor"))
                    .ok()?;
                Some((addr.clone(), vendor))
            })
            .collect();
    }
    logs
}

/// Reads a set of logs someone saved (`--logs DIR`): `qemu.log`, `kernel.log`, `hook.log`, `journal.json`,
/// `domain.xml` and `hostdevs.txt` (`ADDRESS VENDOR` per line), each optional. The fixtures use this layout.
pub fn from_dir(dir: &Path, vm: &str) -> std::io::Result<Logs> {
    if !dir.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let mut logs = Logs {
        vm: vm.to_string(),
        ..Logs::default()
    };
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    if let Some(text) = read("qemu.log") {
        logs.texts.push((Source::Qemu, last_start(&text, None).0));
    }
    for (source, name) in [
        (Source::Kernel, "kernel.log"),
        (Source::Hook, "hook.log"),
        (Source::Journal, "journal.json"),
    ] {
        if let Some(text) = read(name) {
            logs.texts.push((source, text));
        }
    }
    if let Some(xml) = read("domain.xml") {
        set_domain(&mut logs, &xml);
    }
    if let Some(text) = read("hostdevs.txt") {
        logs.hostdev_vendors = text
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let addr = words.next()?.to_string();
                let vendor = crate::host::root::parse_hex(words.next()?)?;
                Some((addr, vendor))
            })
            .collect();
    }
    if logs.texts.is_empty() {
        logs.notes.push(format!(
            "{} holds none of qemu.log, kernel.log, hook.log",
            dir.display()
        ));
    }
    Ok(logs)
}

fn set_domain(logs: &mut Logs, xml: &str) {
    match DomainFacts::parse(xml) {
        Ok(facts) => logs.domain = facts,
        Err(note) => logs.notes.push(note),
    }
}

/// The part of a QEMU log from the last start (or the first start at or after `since`, compared as text on
/// libvirt's `YYYY-MM-DD HH:MM:SS` stamps), and that start's time.
pub(crate) fn last_start(text: &str, since: Option<&str>) -> (String, Option<String>) {
    let mut offset = 0;
    let mut starts: Vec<(usize, &str)> = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.contains(START_MARKER) && line.len() >= 19 && line.is_char_boundary(19) {
            starts.push((offset, &line[..19]));
        }
        offset += line.len();
    }
    let chosen = match since {
        Some(since) => starts
            .iter()
            .find(|(_, stamp)| *stamp >= since)
            .or(starts.last()),
        None => starts.last(),
    };
    match chosen {
        Some((at, stamp)) => (text[*at..].to_string(), Some(stamp.to_string())),
        None => (text.to_string(), None),
    }
}

/// The last [`MAX_LOG_BYTES`] of a host file (from the next line start), or `None` when it does not exist.
fn read_tail(root: &HostRoot, host_path: &str) -> std::io::Result<Option<String>> {
    let path = root.path(host_path);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}", path.display()),
            ));
        }
    };
    let len = file.metadata()?.len();
    let cut = len > MAX_LOG_BYTES;
    if cut {
        file.seek(SeekFrom::Start(len - MAX_LOG_BYTES))?;
    }
    let mut bytes = Vec::new();
    file.take(MAX_LOG_BYTES).read_to_end(&mut bytes)?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if cut && let Some(nl) = text.find('\n') {
        text.drain(..=nl);
    }
    Ok(Some(text))
}

fn read_file_source(logs: &mut Logs, root: &HostRoot, source: Source, host_path: &str) {
    match read_tail(root, host_path) {
        Ok(Some(text)) => logs.texts.push((source, text)),
        Ok(None) => logs.notes.push(format!(
            "{}: no {} under this root",
            source.label(),
            host_path
        )),
        Err(e) => logs.notes.push(format!("{}: {e}", source.label())),
    }
}

/// The kernel log and the hook/libvirt lines from journald; the kernel ring buffer when journald is not there.
fn read_journald(logs: &mut Logs, since: Option<&str>) {
    let journalctl = |extra: &[&str]| {
        let mut args = vec!["-b", "--no-pager", "-q", "-o", "short-iso"];
        if let Some(since) = since {
            args.extend(["--since", since]);
        }
        args.extend(extra);
        crate::ops::process::run_capture(
            "journalctl",
            &args,
            JOURNALCTL_DEADLINE,
            MAX_LOG_BYTES as usize,
        )
    };
    match journalctl(&["-k"]) {
        Ok(text) => logs.texts.push((Source::Kernel, text)),
        Err(e) => match read_kmsg() {
            Ok(text) => {
                logs.notes.push(format!(
                    "kernel log: journalctl failed ({e}); read the whole ring buffer instead"
                ));
                logs.texts.push((Source::Kernel, text));
            }
            Err(k) => logs.notes.push(format!(
                "kernel log: journalctl failed ({e}) and /dev/kmsg: {k}"
            )),
        },
    }
    let mut hook = String::new();
    match journalctl(&["-t", "vmgpu", "-t", "qemu"]) {
        Ok(text) => hook.push_str(&text),
        Err(e) => logs.notes.push(format!("vmgpu's log lines: {e}")),
    }
    // libvirt reports a failed hook (with its stderr) in its own log; keep the lines about hooks and this VM.
    match journalctl(&["-u", "libvirtd.service", "-u", "virtqemud.service"]) {
        Ok(text) => {
            for line in text.lines() {
                let lower = line.to_lowercase();
                if lower.contains("hook") || line.contains(&logs.vm) {
                    hook.push_str(line);
                    hook.push('\n');
                }
            }
        }
        Err(e) => logs.notes.push(format!("libvirt's log lines: {e}")),
    }
    logs.texts.push((Source::Hook, hook));
}

/// The kernel ring buffer from `/dev/kmsg` (non-blocking: stops at the end), as `[seconds] message` lines.
fn read_kmsg() -> std::io::Result<String> {
    let mut file = crate::ops::files::open_read(
        Path::new("/dev/kmsg"),
        crate::ops::files::ReadFlags {
            no_follow: false,
            non_block: true,
        },
    )?;
    let mut out = String::new();
    let mut record = vec![0u8; 8192];
    loop {
        match file.read(&mut record) {
            Ok(0) => break,
            Ok(n) => out.push_str(&kmsg_line(&String::from_utf8_lossy(&record[..n]))),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // EPIPE: records were overwritten while reading; the next read continues.
            Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => continue,
            Err(e) => return Err(e),
        }
        if out.len() as u64 > MAX_LOG_BYTES * 4 {
            break;
        }
    }
    Ok(out)
}

/// `6,1234,5678901,-;text` → `[    5.678901] text\n` (continuation lines dropped).
fn kmsg_line(record: &str) -> String {
    let (head, text) = record.split_once(';').unwrap_or(("", record));
    let micros: u64 = head
        .split(',')
        .nth(2)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let text = text.lines().next().unwrap_or("");
    format!(
        "[{:>5}.{:06}] {text}\n",
        micros / 1_000_000,
        micros % 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-12-01 10:00:00.000+0000: starting up libvirt version: 9.0.0\nold error\n\
                       2026-12-04 18:40:01.123+0000: starting up libvirt version: 9.0.0\nLC_ALL=C qemu\nnew error\n";

    #[test]
    fn test_last_start_cuts_to_the_last_section() {
        let (text, started) = last_start(LOG, None);
        assert!(text.starts_with("2026-12-04 18:40:01") && text.contains("new error"));
        assert!(!text.contains("old error"));
        assert_eq!(started.as_deref(), Some("2026-12-04 18:40:01"));
    }

    #[test]
    fn test_last_start_since_picks_the_first_start_after_it() {
        let (text, _) = last_start(LOG, Some("2026-11-30"));
        assert!(text.contains("old error") && text.contains("new error"));
    }

    #[test]
    fn test_kmsg_record() {
        assert_eq!(
            kmsg_line("6,1234,5678901,-;vfio-pci 0000:01:00.0: enabling device\n SUBSYSTEM=pci"),
            "[    5.678901] vfio-pci 0000:01:00.0: enabling device\n"
        );
    }
}
