//! `rustupdate-server backup` (issue 20, operations): an online copy of a SQLite server's data
//! directory, from which a server starts with the fleet as it was at the copy.

use crate::harness::{Backend, Device, Server};
use serde_json::Value;
use std::process::Command;

fn backup(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rustupdate-server"))
        .arg("backup")
        .args(args)
        .output()
        .expect("running rustupdate-server backup")
}

#[test]
fn a_backup_of_a_running_server_restores_the_fleet() {
    let server = Server::start(Backend::Sqlite);
    let done = server.device("backed-up-done");
    let waiting = server.device("backed-up-waiting");
    let artifact = server.release("2.0");
    server.rollout(artifact, "50,100", "1");
    let (first, action) = [&done, &waiting]
        .into_iter()
        .find_map(|d| d.offered_action().map(|a| (d, a)))
        .expect("one device in the first phase");
    first.complete(action, "success", &["committed"]);
    let other = if first.id == done.id { &waiting } else { &done };

    let copy = tempfile::tempdir().unwrap();
    let to = copy.path().join("fleet-copy");
    let out = backup(&[
        "--data-dir",
        server.dir.to_str().unwrap(),
        "--database",
        &server.database,
        "--to",
        to.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("backup in"), "{stdout}");
    // What happens after the copy is not in it.
    server.device("registered-after-the-backup");

    let restored = Server::on_data_dir(to.clone());
    assert_eq!(restored.admin, server.admin, "the admin token is copied");
    let devices = restored.admin_get("/api/v1/devices");
    let ids: Vec<&str> = devices
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["controller_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["backed-up-done", "backed-up-waiting"], "{devices:?}");
    let shown = restored.admin_get(&format!("/api/v1/devices/{}", first.id));
    assert_eq!(shown.body["actions"][0]["state"], "succeeded", "{shown:?}");
    // The other device still authenticates with its token, and once the second phase opens it
    // downloads the artifact, whose file came with the copy.
    let other_there = Device {
        server: &restored,
        id: other.id.clone(),
        auth: other.auth.clone(),
    };
    let action = other_there
        .offered_action()
        .expect("the second phase is open");
    let deployment = other_there.get(&other_there.path(&format!("/deploymentBase/{action}")));
    let file: &Value = &deployment.body["deployment"]["chunks"][0]["artifacts"][0];
    let href = file["_links"]["download-http"]["href"].as_str().unwrap();
    let mut response = restored
        .agent
        .get(href)
        .header("Authorization", &other.auth)
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let bytes = response.body_mut().read_to_vec().unwrap();
    assert_eq!(bytes.len() as u64, file["size"].as_u64().unwrap());

    // Refusals: a directory that holds something, a PostgreSQL database.
    let again = backup(&[
        "--data-dir",
        server.dir.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    let pg = backup(&[
        "--data-dir",
        copy.path().to_str().unwrap(),
        "--database",
        "postgres://nobody@127.0.0.1:1/none",
        "--to",
        copy.path().join("pg").to_str().unwrap(),
    ]);
    assert!(!pg.status.success());
    assert!(String::from_utf8_lossy(&pg.stderr).contains("pg_dump"));
}
