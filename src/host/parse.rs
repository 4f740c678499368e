//! Pure `&str` → value parsers for the text the kernel and the distro write (procfs-core style: no I/O here,
//! so every parser is unit-tested on captured text).
use std::collections::BTreeMap;

/// Parses `KEY=value` lines (`/etc/os-release`, `/etc/default/grub`, `/etc/sysconfig/*`): comments and blank
/// lines are skipped, one level of single or double quotes is removed, backslash escapes inside double
/// quotes are kept as written. Later keys win.
pub(crate) fn key_values(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        out.insert(key.to_string(), unquote(value.trim()).to_string());
    }
    out
}

/// Removes one level of matching `"…"` or `'…'` quotes.
pub(crate) fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

/// Splits a kernel command line into words the way the kernel does: spaces separate words, double quotes
/// group (`param="a b"` is one word, quotes removed). Everything after a lone `--` goes to init and is
/// dropped.
pub(crate) fn cmdline_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut has_word = false;
    for c in text.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                has_word = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if has_word {
                    words.push(std::mem::take(&mut current));
                    has_word = false;
                }
            }
            c => {
                current.push(c);
                has_word = true;
            }
        }
    }
    if has_word {
        words.push(current);
    }
    if let Some(end) = words.iter().position(|w| w == "--") {
        words.truncate(end);
    }
    words
}

/// The value of a `/proc/meminfo` line in KiB (`MemTotal:  32768000 kB`), or a plain count
/// (`HugePages_Total:  0`).
pub(crate) fn meminfo(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(number) = rest.split_whitespace().next() else {
            continue;
        };
        if let Ok(value) = number.parse() {
            out.insert(key.trim().to_string(), value);
        }
    }
    out
}

/// The loaded module names in `/proc/modules` (first column), normalised with [`module_name`].
pub(crate) fn proc_modules(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(module_name)
        .collect()
}

/// The module names in `modules.builtin` (`kernel/drivers/vfio/pci/vfio-pci.ko` gives `vfio_pci`).
pub(crate) fn modules_builtin(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.rsplit('/').next())
        .map(|file| file.strip_suffix(".ko").unwrap_or(file))
        .map(module_name)
        .collect()
}

/// The module names in `modules.dep` (`kernel/drivers/vfio/pci/vfio-pci.ko.zst: kernel/…` gives `vfio_pci`).
pub(crate) fn modules_dep(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once(':').map(|(path, _)| path))
        .filter_map(|path| path.rsplit('/').next())
        .filter_map(|file| file.split_once(".ko").map(|(name, _)| name))
        .map(module_name)
        .collect()
}

/// A module name as the kernel compares them: `-` and `_` are the same, so use `_`.
pub(crate) fn module_name(name: &str) -> String {
    name.trim().replace('-', "_")
}

/// The first value of `key` in a `/proc/cpuinfo` (first processor block), e.g. `vendor_id`.
pub(crate) fn cpuinfo_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The major, minor and patch numbers at the start of a kernel release (`6.1.0-56-amd64` gives (6, 1, 0),
/// `6.8.0-rc1` gives (6, 8, 0)).
pub(crate) fn kernel_version(release: &str) -> Option<(u32, u32, u32)> {
    let mut numbers = release.split(|c: char| !c.is_ascii_digit());
    let major = numbers.next()?.parse().ok()?;
    let minor = numbers.next()?.parse().ok()?;
    let patch = numbers.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OS_RELEASE_TW: &str = r#"NAME="openSUSE Tumbleweed"
# VERSION="20250310"
ID="opensuse-tumbleweed"
ID_LIKE="opensuse suse"
VERSION_ID="20250310"
PRETTY_NAME="openSUSE Tumbleweed"
"#;

    #[test]
    fn test_key_values_os_release_unquotes_and_skips_comments() {
        let kv = key_values(OS_RELEASE_TW);
        assert_eq!(kv["ID"], "opensuse-tumbleweed");
        assert_eq!(kv["ID_LIKE"], "opensuse suse");
        assert!(!kv.contains_key("# VERSION"));
    }

    #[test]
    fn test_key_values_single_quotes_removed() {
        let kv = key_values("GRUB_CMDLINE_LINUX='quiet splash'\n");
        assert_eq!(kv["GRUB_CMDLINE_LINUX"], "quiet splash");
    }

    #[test]
    fn test_cmdline_words_quotes_group_and_init_args_dropped() {
        let words = cmdline_words(
            "BOOT_IMAGE=/vmlinuz root=UUID=x quiet dyndbg=\"file a.c +p\" -- --init-arg\n",
        );
        assert_eq!(
            words,
            [
                "BOOT_IMAGE=/vmlinuz",
                "root=UUID=x",
                "quiet",
                "dyndbg=file a.c +p"
            ]
        );
    }

    #[test]
    fn test_meminfo_reads_kib_and_counts() {
        let m = meminfo("MemTotal:       32768000 kB\nHugePages_Total:       8\nbad line\n");
        assert_eq!(m["MemTotal"], 32768000);
        assert_eq!(m["HugePages_Total"], 8);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn test_proc_modules_first_column_normalised() {
        let text = "vfio_pci 16384 0 - Live 0x0000000000000000\nsnd-hda-intel 61440 0 - Live 0x0\n";
        assert_eq!(proc_modules(text), ["vfio_pci", "snd_hda_intel"]);
    }

    #[test]
    fn test_modules_builtin_paths_become_names() {
        let text = "kernel/drivers/vfio/pci/vfio-pci.ko\nkernel/drivers/vfio/vfio.ko\n\n";
        assert_eq!(modules_builtin(text), ["vfio_pci", "vfio"]);
    }

    #[test]
    fn test_modules_dep_compressed_names() {
        let text = "kernel/drivers/vfio/pci/vfio-pci.ko.zst: kernel/drivers/vfio/vfio.ko.zst\n\
                    kernel/drivers/vfio/vfio.ko.zst:\n";
        assert_eq!(modules_dep(text), ["vfio_pci", "vfio"]);
    }

    #[test]
    fn test_cpuinfo_field_first_block() {
        let text =
            "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu svm\n\nprocessor\t: 1\n";
        assert_eq!(cpuinfo_field(text, "vendor_id"), Some("AuthenticAMD"));
        assert_eq!(cpuinfo_field(text, "flags"), Some("fpu svm"));
        assert_eq!(cpuinfo_field(text, "nope"), None);
    }

    #[test]
    fn test_kernel_version_distro_releases() {
        assert_eq!(kernel_version("6.1.0-56-amd64"), Some((6, 1, 0)));
        assert_eq!(kernel_version("6.13.7-1-default"), Some((6, 13, 7)));
        assert_eq!(kernel_version("6.8-rc1"), Some((6, 8, 0)));
        assert_eq!(kernel_version("garbage"), None);
    }
}
