//! Recordings of real machines reproduce what vmgpu printed live on them: the recorded tree is a faithful stand-in.
//!
//! `tests/fixtures/live-runs/<machine>/` holds the output of `vmgpu gpus`/`check` (text and `--json`) run on the
//! live machine, in the same minute as `tests/vm/record-live-host.sh` recorded
//! `tests/fixtures/hosts/recorded/<machine>` (see that folder's PROVENANCE.md).
use super::fixtures;
use std::path::Path;

/// (subcommand, extra args, file in live-runs/<machine>/, exit code the live run had)
const RUNS: &[(&str, &[&str], &str, i32)] = &[
    ("gpus", &[], "gpus.txt", 0),
    ("gpus", &["--json"], "gpus.json", 0),
    ("check", &[], "check.txt", 1),
    ("check", &["--json"], "check.json", 1),
];

/// Lines vmgpu has printed since the live run was recorded (added on purpose later), left out before comparing:
/// the recording must still reproduce everything else byte for byte.
const ADDED_SINCE_THE_LIVE_RUN: &[&str] =
    &["a VM that does not start or shows a black screen: `vmgpu explain <vm>` says why"];

fn without_later_lines(text: &str) -> String {
    text.lines()
        .filter(|l| !ADDED_SINCE_THE_LIVE_RUN.contains(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn live_output(machine: &str, file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/live-runs")
        .join(machine)
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn test_h200_cloud_vm_recording_prints_what_the_live_machine_printed() {
    let machine = "h200-cloud-vm";
    for (sub, extra, file, code) in RUNS {
        let out = fixtures::vmgpu()
            .arg(sub)
            .arg("--root")
            .arg(fixtures::host(&format!("recorded/{machine}")))
            .args(*extra)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(*code),
            "{sub} {extra:?}: {}",
            fixtures::stderr(&out)
        );
        assert_eq!(
            without_later_lines(&fixtures::stdout(&out)),
            without_later_lines(&live_output(machine, file)),
            "{sub} {extra:?}"
        );
    }
}

#[test]
fn test_h200_is_a_3d_controller_unit_that_is_not_passable_without_an_iommu() {
    let cards: serde_json::Value =
        serde_json::from_str(&live_output("h200-cloud-vm", "gpus.json")).unwrap();
    let card = &cards[0];
    assert_eq!(card["primary"]["address"], "0000:00:06.0");
    assert_eq!(card["primary"]["class"], "0x030200");
    assert_eq!(card["primary"]["driver"], "nvidia");
    assert_eq!(card["verdict"], "not-passable");
    assert_eq!(card["is_boot_display"], false);
}
