//! `vmgpu gpus` on the fixtures: cards as units (all functions, one group), verdicts, JSON; snapshots per machine.
use super::fixtures;

fn gpus(name: &str, json: bool) -> (Option<i32>, String) {
    let mut cmd = fixtures::vmgpu();
    cmd.arg("gpus").arg("--root").arg(fixtures::host(name));
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn test_gpus_turing_four_functions_in_one_group_as_one_unit() {
    let (code, out) = gpus("fedora-intel-turing", true);

    let cards: serde_json::Value = serde_json::from_str(&out).unwrap();
    let turing = cards
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["primary"]["address"] == "0000:01:00.0")
        .unwrap();
    let functions: Vec<&str> = turing["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["address"].as_str().unwrap())
        .collect();
    assert_eq!(code, Some(0));
    assert_eq!(
        functions,
        [
            "0000:01:00.0",
            "0000:01:00.1",
            "0000:01:00.2",
            "0000:01:00.3"
        ]
    );
    assert_eq!(turing["group"], 1);
    assert_eq!(turing["verdict"], "passable-with-all-functions");
    assert!(turing["foreign"].as_array().unwrap().is_empty());
}

#[test]
fn test_gpus_human_output_per_machine() {
    for name in fixtures::MACHINES {
        let (code, out) = gpus(name, false);
        assert_eq!(code, Some(0), "{name}");
        insta::assert_snapshot!(format!("gpus_{name}"), out);
    }
}

#[test]
fn test_gpus_json_per_machine() {
    for name in fixtures::MACHINES {
        let (_, out) = gpus(name, true);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        insta::assert_json_snapshot!(format!("gpus_json_{name}"), value);
    }
}
