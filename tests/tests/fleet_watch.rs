//! Several boxes in one view: two real `edgenvr run` boxes with sim PIRs, watched and read at
//! once by the real `nvrctl watch A B` and `nvrctl state A B`, each box with its link status;
//! one box going away shows as that box's lost link while the other stays live.

use std::process::Command;
use std::time::Duration;

use edgenvr_tests::bins;
use edgenvr_tests::edgenvr_box::{sim_set, spawn_run, BoxDir};
use edgenvr_tests::process::Process;
use edgenvr_tests::watcher::Watcher;

/// Guards against a hang only.
const HANG_GUARD: Duration = Duration::from_secs(30);

struct SmallBox {
    dir: BoxDir,
    process: Process,
    state: String,
}

fn start_box(name: &str) -> SmallBox {
    let dir = BoxDir::small(
        name,
        &format!(
            "[state]\nlisten = \"127.0.0.1:0\"\n[[sensor]]\nname = \"pir-{name}\"\nkind = \"pir\"\n\
             backend = \"sim\"\ndebounce = \"1ms\"\n"
        ),
    );
    let process = spawn_run(&dir.config).unwrap();
    let state = process.wait_for_listener("state", HANG_GUARD).unwrap();
    process.wait_for_listener("control", HANG_GUARD).unwrap();
    SmallBox {
        dir,
        process,
        state,
    }
}

#[test]
fn watch_shows_two_boxes_grouped_with_their_links_and_survives_one_going_away() {
    let (shed, house) = (start_box("shed"), start_box("house"));
    let watch = Watcher::start(&["watch", &shed.state, &house.state]);
    // Both links come up at about the same time, in either order.
    let mut not_yet_connected = vec![
        (shed.state.as_str(), "shed"),
        (house.state.as_str(), "house"),
    ];
    while !not_yet_connected.is_empty() {
        let line = watch.wait_for_line(HANG_GUARD, |l| {
            l["event"] == "link" && l["status"] == "connected"
        });
        not_yet_connected
            .retain(|(target, name)| !(line["target"] == *target && line["box"] == *name));
    }
    sim_set(&shed.dir.config, "pir-shed", "high").unwrap();
    let line = watch.wait_for_line(HANG_GUARD, |l| {
        l["event"] == "change" && l["sensor"] == "pir-shed"
    });
    assert_eq!(
        (&line["box"], &line["value"]),
        (&"shed".into(), &true.into())
    );
    sim_set(&house.dir.config, "pir-house", "high").unwrap();
    let line = watch.wait_for_line(HANG_GUARD, |l| {
        l["event"] == "change" && l["sensor"] == "pir-house"
    });
    assert_eq!(line["box"], "house");

    // The shed goes away: its link is lost, the house stays live.
    let mut shed_process = shed.process;
    shed_process.signal("KILL").unwrap();
    let _ = shed_process.wait(HANG_GUARD);
    watch.wait_for_line(HANG_GUARD, |l| {
        l["event"] == "link" && l["status"] == "lost" && l["target"] == shed.state.as_str()
    });
    sim_set(&house.dir.config, "pir-house", "low").unwrap();
    watch.wait_for_line(HANG_GUARD, |l| {
        l["sensor"] == "pir-house" && l["value"] == false
    });

    // `state` of both: the house is read, the shed is reported, and the exit says one failed.
    let cache = tempfile::tempdir().unwrap();
    let output = Command::new(bins::nvrctl())
        .args(["state", &house.state, &shed.state, "--json"])
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .unwrap();
    assert!(!output.status.success(), "one box of two could not be read");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let boxes = json["boxes"].as_array().unwrap();
    assert_eq!(boxes.len(), 2);
    assert_eq!(
        (&boxes[0]["box"], &boxes[0]["link"]),
        (&"house".into(), &"ok".into())
    );
    assert!(boxes[0]["sensors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "pir-house" && s["value"] == false));
    assert_eq!(boxes[1]["link"], "error");
    assert_eq!(boxes[1]["target"], shed.state.as_str());
    assert!(String::from_utf8_lossy(&output.stderr).contains("1 of 2 boxes"));

    // The table groups by box with each box's target and link.
    let table = Command::new(bins::nvrctl())
        .args(["state", &house.state, &shed.state])
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(&format!("box house ({}, ok): ", house.state)),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}: cannot read:", shed.state)),
        "{text}"
    );
}
