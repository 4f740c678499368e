//! The hook's bad-input corpus: each case runs the real binary on a fresh simulated host and checks the
//! exit code, a substring of the one-line message, and that the host tree did not change at all.
use crate::fakehost::{FakeHost, domain, stderr};

const NS: &str = "https://vmgpu.dev/xmlns/config/1";

struct Case {
    name: &'static str,
    args: Vec<String>,
    stdin: String,
    code: i32,
    message: &'static str,
}

fn prepare(name: &'static str, stdin: String, code: i32, message: &'static str) -> Case {
    Case {
        name,
        args: ["gpu-vm", "prepare", "begin", "-"]
            .map(String::from)
            .to_vec(),
        stdin,
        code,
        message,
    }
}

fn argv(name: &'static str, args: &[&str], code: i32, message: &'static str) -> Case {
    Case {
        name,
        args: args.iter().map(|a| a.to_string()).collect(),
        stdin: domain("gpu-vm.xml"),
        code,
        message,
    }
}

/// gpu-vm.xml with one replacement (which must apply).
fn edit(from: &str, to: &str) -> String {
    let xml = domain("gpu-vm.xml");
    assert!(xml.contains(from), "fixture lacks {from:?}");
    xml.replacen(from, to, 1)
}

fn metadata(inner: &str) -> String {
    let start = domain("gpu-vm.xml").find("<vmgpu:config").unwrap();
    let end = domain("gpu-vm.xml").find("</vmgpu:config>").unwrap() + "</vmgpu:config>".len();
    let mut xml = domain("gpu-vm.xml");
    xml.replace_range(start..end, inner);
    xml
}

fn shm_name(name: &str) -> String {
    edit(
        "<shmem name='looking-glass'>",
        &format!("<shmem name='{name}'>"),
    )
}

fn shm_size(size: &str) -> String {
    edit("<size unit='M'>32</size>", size)
}

fn cases() -> Vec<Case> {
    let long = "x".repeat(300);
    vec![
        // argv
        argv("no arguments", &[], 2, "expected 4 arguments"),
        argv("one argument", &["gpu-vm"], 2, "got 1"),
        argv(
            "three arguments",
            &["gpu-vm", "prepare", "begin"],
            2,
            "got 3",
        ),
        argv(
            "from snapshot split in two",
            &["gpu-vm", "release", "end", "from", "snapshot"],
            2,
            "got 5",
        ),
        argv("six arguments", &["a", "b", "c", "d", "e", "f"], 2, "got 6"),
        argv(
            "vm name with slash",
            &["../etc", "prepare", "begin", "-"],
            2,
            "not a VM name",
        ),
        argv(
            "empty vm name",
            &["", "prepare", "begin", "-"],
            2,
            "not a VM name",
        ),
        argv(
            "dot vm name",
            &[".hidden", "prepare", "begin", "-"],
            2,
            "not a VM name",
        ),
        Case {
            name: "foreign domain with a dot name is left alone",
            args: [".foreign", "prepare", "begin", "-"]
                .map(String::from)
                .to_vec(),
            stdin: domain("foreign.xml").replace("<name>foreign</name>", "<name>.foreign</name>"),
            code: 0,
            message: "",
        },
        argv(
            "release of an unjournalable name is a no-op",
            &["../x", "release", "end", "-"],
            0,
            "",
        ),
        argv(
            "unknown op is ignored",
            &["gpu-vm", "frobnicate", "begin", "-"],
            0,
            "",
        ),
        argv(
            "release from snapshot, no journal",
            &["gpu-vm", "release", "end", "from snapshot"],
            0,
            "",
        ),
        argv(
            "argv names another vm",
            &["other", "prepare", "begin", "-"],
            1,
            "stdin is domain \"gpu-vm\"",
        ),
        // XML
        prepare(
            "no metadata",
            domain("foreign.xml").replace("foreign", "gpu-vm"),
            0,
            "",
        ),
        prepare("empty stdin", String::new(), 0, ""),
        prepare("not XML, no namespace", "hello".into(), 0, ""),
        prepare(
            "not XML, with namespace",
            format!("garbage {NS} <<<"),
            1,
            "malformed XML",
        ),
        prepare(
            "unclosed element",
            edit("</domain>", ""),
            1,
            "ends inside an element",
        ),
        prepare(
            "mismatched end tag",
            edit("</devices>", "</device>"),
            1,
            "malformed XML",
        ),
        prepare(
            "undeclared prefix",
            edit("<memballoon model='none'/>", "<x:y/>"),
            1,
            "undeclared namespace prefix",
        ),
        prepare(
            "two root elements",
            domain("gpu-vm.xml") + "<domain/>",
            1,
            "more than one top-level",
        ),
        prepare(
            "root is not a domain",
            format!("<network><m xmlns='{NS}'/></network>"),
            1,
            "not a libvirt domain",
        ),
        prepare(
            "nesting too deep",
            edit(
                "<memballoon model='none'/>",
                &("<a>".repeat(80) + &"</a>".repeat(80)),
            ),
            1,
            "deeper than",
        ),
        prepare(
            "unknown entity",
            edit("<name>gpu-vm</name>", "<name>gpu&bogus;</name>"),
            1,
            "malformed XML",
        ),
        prepare(
            "stdin over 10 MiB",
            edit(
                "<memballoon model='none'/>",
                &format!("<!-- {} -->", "x".repeat(11 << 20)),
            ),
            1,
            "over",
        ),
        // metadata
        prepare(
            "unknown version",
            edit("version=\"1\"", "version=\"2\""),
            1,
            "version \"2\" is not supported",
        ),
        prepare(
            "missing version",
            edit(" version=\"1\"", ""),
            1,
            "no version attribute",
        ),
        prepare(
            "malformed gpu address",
            edit("address=\"0000:01:00.0\"", "address=\"zz:00.0\""),
            1,
            "PCI address",
        ),
        prepare(
            "non-existent gpu",
            edit("address=\"0000:01:00.0\"", "address=\"0000:07:00.0\""),
            1,
            "0000:07:00.0 does not exist",
        ),
        prepare(
            "bridge as gpu",
            edit("address=\"0000:01:00.0\"", "address=\"0000:00:1c.0\""),
            1,
            "bridges cannot be passed through",
        ),
        prepare(
            "duplicate gpu",
            edit(
                "<vmgpu:isolate-cpus",
                "<vmgpu:gpu address=\"01:00.0\"/><vmgpu:isolate-cpus",
            ),
            1,
            "listed twice",
        ),
        prepare(
            "enabled is not yes/no",
            edit(
                "<vmgpu:hugepages enabled=\"yes\"/>",
                "<vmgpu:hugepages enabled=\"maybe\"/>",
            ),
            1,
            "yes or no",
        ),
        prepare(
            "two config elements",
            metadata(&format!(
                "<a:config xmlns:a='{NS}' version='1'/><b:config xmlns:b='{NS}' version='1'/>"
            )),
            1,
            "more than one <vmgpu:config>",
        ),
        prepare(
            "hostile shmem user",
            edit("user=\"alice\"", "user=\"root:x\""),
            1,
            "user or group name",
        ),
        prepare(
            "unknown shmem user",
            edit("user=\"alice\"", "user=\"mallory\""),
            1,
            "user \"mallory\" does not exist",
        ),
        prepare(
            "unknown shmem group",
            edit("group=\"kvm\"", "group=\"nogroup\""),
            1,
            "group \"nogroup\" does not exist",
        ),
        // hostdevs
        prepare(
            "bridge as hostdev",
            edit(
                "bus='0x01' slot='0x00' function='0x1'",
                "bus='0x00' slot='0x1c' function='0x0'",
            ),
            1,
            "bridges cannot be passed through",
        ),
        prepare(
            "non-existent hostdev",
            edit(
                "bus='0x01' slot='0x00' function='0x1'",
                "bus='0x09' slot='0x00' function='0x0'",
            ),
            1,
            "0000:09:00.0 does not exist",
        ),
        prepare(
            "hostdev slot out of range",
            edit(
                "bus='0x01' slot='0x00' function='0x1'",
                "bus='0x01' slot='0x40' function='0x1'",
            ),
            1,
            "hex PCI address",
        ),
        // shmem
        prepare(
            "shmem name with slash",
            shm_name("a/b"),
            1,
            "cannot be a file in /dev/shm",
        ),
        prepare(
            "shmem name dotdot path",
            shm_name("../etc/passwd"),
            1,
            "cannot be a file in /dev/shm",
        ),
        prepare(
            "shmem name is dotdot",
            shm_name(".."),
            1,
            "cannot be a file in /dev/shm",
        ),
        prepare(
            "shmem name over 255 bytes",
            shm_name(&long),
            1,
            "cannot be a file in /dev/shm",
        ),
        prepare(
            "shmem name empty",
            shm_name(""),
            1,
            "cannot be a file in /dev/shm",
        ),
        prepare(
            "shmem name with NUL reference",
            shm_name("a&#0;b"),
            1,
            "vmgpu:",
        ),
        prepare(
            "shmem size over 1 PiB",
            shm_size("<size unit='E'>2</size>"),
            1,
            "at most 1 PiB",
        ),
        prepare(
            "shmem size 64 GiB (a power of two, too big)",
            shm_size("<size unit='G'>64</size>"),
            1,
            "too big",
        ),
        prepare(
            "shmem size not a power of two",
            shm_size("<size unit='M'>33</size>"),
            1,
            "power of two",
        ),
        prepare(
            "shmem size 1 TiB is too big, not 'not a power of two'",
            shm_size("<size unit='T'>1</size>"),
            1,
            "is too big: at most",
        ),
        prepare(
            "shmem size zero",
            shm_size("<size unit='M'>0</size>"),
            1,
            "power of two",
        ),
        prepare(
            "shmem size not a number",
            shm_size("<size unit='M'>lots</size>"),
            1,
            "whole number",
        ),
        prepare(
            "shmem size bad unit",
            shm_size("<size unit='furlongs'>3</size>"),
            1,
            "libvirt unit",
        ),
        // memory, cpus
        prepare(
            "memory over 1 PiB",
            edit(
                "<memory unit='KiB'>65536</memory>",
                "<memory unit='EiB'>4</memory>",
            ),
            1,
            "at most 1 PiB",
        ),
        prepare(
            "hugepage size zero",
            edit(
                "<page size='2048' unit='KiB'/>",
                "<page size='0' unit='KiB'/>",
            ),
            1,
            "page size",
        ),
        prepare(
            "unsupported hugepage size",
            edit(
                "<page size='2048' unit='KiB'/>",
                "<page size='4' unit='M'/>",
            ),
            1,
            "no 4096 KiB pages",
        ),
        prepare(
            "vcpupin garbage",
            edit("cpuset='2'", "cpuset='two'"),
            1,
            "CPU list",
        ),
        prepare(
            "vcpupin offline cpu",
            edit("cpuset='2'", "cpuset='9'"),
            1,
            "online",
        ),
        prepare(
            "every cpu pinned",
            edit("cpuset='2'", "cpuset='0-3'").replace("<emulatorpin cpuset='0-1'/>", ""),
            1,
            "none left",
        ),
        prepare(
            "numatune nodeset garbage",
            edit(
                "</cputune>",
                "</cputune><numatune><memory nodeset='x-'/></numatune>",
            ),
            1,
            "numatune",
        ),
    ]
}

#[test]
fn test_bad_input_corpus_has_at_least_200_cases() {
    let total = cases().len()
        + crate::badinput_journal::cases().len()
        + crate::badinput_setup::cases().len();
    assert!(total >= 200, "{total}");
}

#[test]
fn test_bad_input_corpus_exit_codes_messages_and_no_change() {
    let mut failures = Vec::new();
    for case in cases() {
        let host = FakeHost::new();
        let before = host.snapshot();
        let mut args = vec!["hook"];
        args.extend(case.args.iter().map(String::as_str));
        let out = host.vmgpu(&args, &case.stdin, &[]);
        let err = stderr(&out);
        if out.status.code() != Some(case.code) {
            failures.push(format!(
                "{}: exit {:?}, expected {}: {err}",
                case.name,
                out.status.code(),
                case.code
            ));
        }
        // Each cause once: no error whose text its parent already printed (quick-xml repeats its source).
        if let Some(part) = err
            .split(": ")
            .filter(|part| part.len() > 20)
            .find(|part| err.matches(*part).count() > 1)
        {
            failures.push(format!("{}: {part:?} repeated in {err:?}", case.name));
        }
        if !err.contains(case.message) {
            failures.push(format!(
                "{}: message {err:?} lacks {:?}",
                case.name, case.message
            ));
        }
        if case.code == 0 && !err.is_empty() {
            failures.push(format!("{}: exit 0 but stderr {err:?}", case.name));
        }
        if !out.stdout.is_empty() {
            failures.push(format!("{}: wrote to stdout", case.name));
        }
        let diff = before.diff(&host.snapshot());
        if !diff.is_empty() {
            failures.push(format!(
                "{}: the host tree changed: {}",
                case.name,
                diff.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
