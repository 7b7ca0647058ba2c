//! Which build is which: `--version` names the release, the commit and the embedded XDP
//! object's hash; `status` names the kernel's tag of each interface's program and whether
//! it is the one this binary loads.

mod common;

use common::pinned::{ATTACH, BINARY, Bed};
use handshake::{XDP_OBJECT, lab::SERVER_IFACE};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

#[test]
fn version_names_release_commit_and_object_hash() {
    let output = std::process::Command::new(BINARY)
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8(output.stdout).unwrap();
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let commit = String::from_utf8(head.stdout).unwrap().trim().to_owned();
    assert_eq!(
        commit.len(),
        7,
        "git rev-parse --short HEAD printed {commit:?}"
    );
    let hash: String = Sha256::digest(XDP_OBJECT)[..6]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    // The tree may have been edited when the binary was built (then "-dirty") or not.
    let clean = format!("handshake 0.1.0 (commit {commit}, XDP object sha256 {hash})\n");
    let dirty = format!("handshake 0.1.0 (commit {commit}-dirty, XDP object sha256 {hash})\n");
    assert!(
        version == clean || version == dirty,
        "{version:?}, expected {clean:?}"
    );
}

#[test]
fn status_names_the_running_programs_tag_as_this_builds() {
    let bed = Bed::new();
    bed.ok(&ATTACH);
    // iproute2 reads the tag from the kernel independently of handshake.
    let link: Value = serde_json::from_str(
        &bed.lab
            .output(
                &bed.lab.server,
                &[
                    "ip",
                    "-details",
                    "-json",
                    "link",
                    "show",
                    "dev",
                    SERVER_IFACE,
                ],
            )
            .unwrap(),
    )
    .unwrap();
    let prog = &link[0]["xdp"]["prog"];
    let (id, tag) = (prog["id"].as_u64().unwrap(), prog["tag"].as_str().unwrap());
    assert_eq!(tag.len(), 16, "{prog}");

    let status = bed.ok(&["status"]);
    let first = status.lines().next().unwrap();
    let expected =
        format!("hs-server: native XDP, ports 8080, program id {id} tag {tag}, attached ");
    assert!(first.starts_with(&expected), "{status}");
    assert!(!status.contains("OTHER BUILD"), "{status}");

    let json: Value = serde_json::from_str(&bed.ok(&["status", "--json"])).unwrap();
    assert_eq!(json["program_tag"], tag);
    assert_eq!(json["interfaces"][0]["program_tag"], tag);
    assert_eq!(json["interfaces"][0]["same_build"], true);
    let version = bed.ok(&["--version"]);
    assert_eq!(
        format!("handshake {}\n", json["version"].as_str().unwrap()),
        version
    );
}
