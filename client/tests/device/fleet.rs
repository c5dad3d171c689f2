//! `rustupdate check-update` and `daemon` on the simulated device against a real
//! `rustupdate-server` process on loopback (`fleet_server`): install, reboot, commit and the
//! final report; health-check rollback and bootloader fallback reported with their reasons;
//! cancel before and after the slot is armed; a rejected artifact; the final result kept across
//! a server outage and sent exactly once; the maintenance window and the inventory script.

// `fleet_delta` takes the fleet helpers from here.
pub(crate) use crate::fleet_server::{
    BOARD, FleetServer, boot_commit_and_report, check_update, commit, release,
};
use crate::rig::{Rig, image};
use serde_json::Value;

#[test]
fn update_reports_success_only_after_commit() {
    let rig = Rig::new();
    let server = FleetServer::start(&rig);
    server.enroll(&rig, "dev-1", "");
    let artifact = release(&rig, &server, "2.0", 2);
    server.rollout(artifact);

    let out = check_update(&rig);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("rebooting"), "{}", out.stdout);
    assert!(rig.slot_holds('b', &image(2)) && rig.reboot_requested());
    assert_eq!(rig.env()["upgrade_available"], "1");
    // Installed and rebooting is not success.
    assert_eq!(server.action("dev-1").0, "running");
    let inventory = server.inventory("dev-1");
    assert_eq!(inventory["running_slot"], "a", "{inventory}");
    assert_eq!(inventory["device_type"], BOARD, "{inventory}");
    assert_eq!(inventory["client_version"], env!("CARGO_PKG_VERSION"));

    assert_eq!(rig.boot(), 'b');
    assert_eq!(commit(&rig).code, 0);
    assert_eq!(
        server.action("dev-1").0,
        "running",
        "commit itself does not talk"
    );
    assert_eq!(check_update(&rig).code, 0);
    assert_eq!(server.action("dev-1").0, "succeeded");
    let inventory = server.inventory("dev-1");
    assert_eq!(inventory["running_version"], "2.0", "{inventory}");
    assert_eq!(inventory["running_slot"], "b", "{inventory}");
    assert_eq!(inventory["slot_b_version"], "2.0", "{inventory}");
    assert_eq!(rig.status()["situation"], "idle");
    // Nothing more to do, nothing sent twice.
    let out = check_update(&rig);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("no update offered"), "{}", out.stdout);
}

#[test]
fn health_failure_and_fallback_are_reported_with_reasons() {
    // Health check fails: the client rolls back, the server hears why.
    let rig = Rig::new();
    let server = FleetServer::start(&rig);
    server.enroll(&rig, "dev-h", "");
    server.rollout(release(&rig, &server, "2.0", 2));
    assert_eq!(check_update(&rig).code, 0);
    rig.health_script("50-app", "#!/bin/sh\necho app is down >&2\nexit 1\n");
    assert_eq!(rig.boot(), 'b');
    assert_eq!(commit(&rig).code, 3);
    assert_eq!(rig.boot(), 'a');
    assert_eq!(commit(&rig).code, 0);
    assert_eq!(check_update(&rig).code, 0);
    let (state, reason) = server.action("dev-h");
    assert_eq!(state, "failed");
    assert!(
        reason.contains("rolled-back") && reason.contains("50-app"),
        "{reason}"
    );
    assert!(
        reason.contains("app is down"),
        "the check's output: {reason}"
    );

    // The new slot never comes up: the bootloader falls back by itself after bootlimit tries.
    let rig = Rig::new();
    let server = FleetServer::start(&rig);
    server.enroll(&rig, "dev-f", "");
    server.rollout(release(&rig, &server, "3.0", 3));
    assert_eq!(check_update(&rig).code, 0);
    let boots: Vec<char> = (0..4).map(|_| rig.boot()).collect();
    assert_eq!(boots, ['b', 'b', 'b', 'a']);
    assert_eq!(commit(&rig).code, 0);
    assert_eq!(check_update(&rig).code, 0);
    let (state, reason) = server.action("dev-f");
    assert_eq!(state, "failed");
    assert!(reason.contains("fell back"), "{reason}");
}

#[test]
fn cancel_before_the_slot_is_armed_and_refused_after() {
    // The consent script defers the install after the device fetched the deployment; the
    // server then cancels, and the device confirms: nothing was written.
    let rig = Rig::new();
    let server = FleetServer::start(&rig);
    let consent = rig.executable(
        "consent.sh",
        "#!/bin/sh\n[ -e \"$(dirname \"$0\")/consent-given\" ]\n",
    );
    server.enroll(
        &rig,
        "dev-c",
        &format!("consent-script = \"{}\"\n", consent.display()),
    );
    let slot_b = rig.slot_bytes('b');
    let rollout = server.rollout(release(&rig, &server, "2.0", 2));
    let out = check_update(&rig);
    assert!(
        out.stdout.contains("deferred by the consent script"),
        "{}",
        out.stdout
    );
    assert_eq!(server.action("dev-c").0, "running");
    server.admin("POST", &format!("/api/v1/rollouts/{rollout}/cancel"), None);
    rig.file("consent-given", b"");
    let out = check_update(&rig);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("cancelled"), "{}", out.stdout);
    assert_eq!(server.action("dev-c").0, "canceled");
    assert_eq!(
        rig.slot_bytes('b'),
        slot_b,
        "a cancelled action wrote the slot"
    );
    assert!(!rig.reboot_requested());

    // Armed: too late to cancel; the device says why and the update goes on.
    let rig = Rig::new();
    server.enroll(&rig, "dev-d", "reboot = \"manual\"\n");
    let rollout = server.rollout(release(&rig, &server, "3.0", 3));
    let out = check_update(&rig);
    assert!(out.stdout.contains("manual reboot"), "{}", out.stdout);
    assert!(!rig.reboot_requested(), "reboot = manual rebooted");
    server.admin("POST", &format!("/api/v1/rollouts/{rollout}/cancel"), None);
    let out = check_update(&rig);
    assert!(out.stdout.contains("refused"), "{}", out.stdout);
    let (state, reason) = server.action("dev-d");
    assert_eq!(state, "running");
    assert!(reason.contains("too late to cancel"), "{reason}");
    boot_commit_and_report(&rig, &server, "dev-d");
}

#[test]
fn rejected_artifact_is_reported_and_nothing_is_written() {
    let rig = Rig::new();
    let server = FleetServer::start(&rig);
    server.enroll(&rig, "dev-r", "");
    // Signed by a key this device does not trust; uploaded as a foreign file so that the server
    // (which trusts it) does not judge it.
    let other = rustupdate_testkit::key(99);
    let path = rig.artifact("6.6", &image(6), &[&other], BOARD, None);
    let artifact = server.upload(
        &std::fs::read(path).unwrap(),
        "?foreign=true&name=evil&version=6.6&device_types=test-board&filename=evil.rua",
    );
    server.rollout(artifact);
    let slot_b = rig.slot_bytes('b');
    let out = check_update(&rig);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("rejected"), "{}", out.stderr);
    assert_eq!(rig.slot_bytes('b'), slot_b);
    assert_eq!(rig.env()["upgrade_available"], "0");
    let (state, reason) = server.action("dev-r");
    assert_eq!(state, "failed");
    assert!(
        reason.contains("rejected") && reason.contains("signature"),
        "{reason}"
    );
    assert_eq!(rig.status()["last-result"]["result"], "rejected");
}

#[test]
fn final_result_survives_an_outage_and_is_sent_once() {
    let rig = Rig::new();
    let mut server = FleetServer::start(&rig);
    server.enroll(&rig, "dev-o", "");
    server.rollout(release(&rig, &server, "2.0", 2));
    assert_eq!(check_update(&rig).code, 0);
    assert_eq!(rig.boot(), 'b');
    assert_eq!(commit(&rig).code, 0);
    server.stop();
    let out = check_update(&rig);
    assert_eq!(out.code, 1, "server down: {}", out.stdout);
    assert!(rig.state_text().contains("\"action\""));
    assert!(
        !rig.state_text().contains("reported-action"),
        "{}",
        rig.state_text()
    );
    server.restart();
    assert_eq!(check_update(&rig).code, 0);
    assert_eq!(server.action("dev-o").0, "succeeded");
    // The acknowledgement got lost (a power cut right after the server accepted): the repeat is
    // answered "already recorded" and changes nothing.
    let state = rig.state_text();
    assert!(state.contains("\"reported-action\""), "{state}");
    let forgotten: Value = serde_json::from_str(&state).unwrap();
    let mut forgotten = forgotten.as_object().unwrap().clone();
    forgotten.remove("reported-action");
    std::fs::write(
        rig.data_dir().join("state.json"),
        serde_json::to_string(&forgotten).unwrap(),
    )
    .unwrap();
    let out = check_update(&rig);
    assert_eq!(out.code, 0);
    assert!(out.stderr.contains("already settled"), "{}", out.stderr);
    assert!(rig.state_text().contains("\"reported-action\""));
    assert_eq!(server.action("dev-o").0, "succeeded");
}

#[test]
fn maintenance_window_and_inventory_script() {
    let rig = Rig::new();
    let server = FleetServer::start(&rig);
    let inventory = rig.executable(
        "inventory.sh",
        "#!/bin/sh\necho serial=SN-0042\necho 'not a pair'\necho board.rev = 3\n",
    );
    // A window that starts two hours from now (UTC) and lasts one hour: not now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
        % (24 * 60);
    let hm = |m: u64| format!("{:02}:{:02}", m / 60 % 24, m % 60);
    let later = format!("{}-{}", hm(now + 120), hm(now + 180));
    server.enroll(
        &rig,
        "dev-w",
        &format!(
            "inventory-script = \"{}\"\nreboot = \"maintenance-window\"\nmaintenance-window = \"{later}\"\n",
            inventory.display()
        ),
    );
    server.rollout(release(&rig, &server, "2.0", 2));
    let out = check_update(&rig);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains(&format!("maintenance window {later}")),
        "{}",
        out.stdout
    );
    assert!(
        rig.slot_holds('b', &image(2)),
        "installed before the window"
    );
    assert!(!rig.reboot_requested(), "rebooted outside the window");
    let attributes = server.inventory("dev-w");
    assert_eq!(attributes["serial"], "SN-0042", "{attributes}");
    assert_eq!(attributes["board.rev"], "3", "{attributes}");
    assert_eq!(attributes["device_type"], BOARD, "{attributes}");
    // The window is open now: the next cycle reboots.
    let open = format!("{}-{}", hm(now + 24 * 60 - 5), hm(now + 60));
    let config = std::fs::read_to_string(rig.config_path()).unwrap();
    std::fs::write(rig.config_path(), config.replace(&later, &open)).unwrap();
    let out = check_update(&rig);
    assert!(out.stdout.contains("rebooting"), "{}", out.stdout);
    assert!(rig.reboot_requested());
    boot_commit_and_report(&rig, &server, "dev-w");
}
