//! The dashboard's device list (issue 20: devices searchable and paged): part of the id, type and
//! tag filters, 50 devices a page, with the total; the running version, an attribute, the newest
//! action's state and silence.

use crate::harness::{Backend, Server};
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(
    the_device_list_is_searched_and_paged,
    devices_are_found_by_version_attribute_state_and_silence,
);

fn the_device_list_is_searched_and_paged(backend: Backend) {
    let server = Server::start(backend);
    for i in 0..55 {
        server.device(&format!("line-a_{i:03}"));
    }
    for id in ["lineXa_zzz", "other-1"] {
        let a = server.admin_post(
            "/api/v1/devices",
            &json!({"controller_id": id, "device_type": "other-board", "tags": ["eu"]}),
        );
        assert_eq!(a.status, 201, "{a:?}");
    }
    let cookie = server.dashboard_session();
    let list = |query: &str| {
        let a = server.dashboard_get(&format!("/ui/devices{query}"), &cookie);
        assert_eq!(a.status, 200, "{query}: {a:?}");
        a.text
    };
    // Everything: 57, 50 on the first page (ordered by id), the rest on the second.
    let first = list("");
    assert!(first.contains("57 devices match; page 1 of 2"), "{first}");
    assert!(
        first.contains(">line-a_000<") && first.contains(">line-a_049<"),
        "{first}"
    );
    assert!(!first.contains(">line-a_050<"), "{first}");
    assert!(first.contains("next page"), "{first}");
    let second = list("?page=2");
    assert!(
        second.contains(">line-a_054<") && second.contains(">other-1<"),
        "{second}"
    );
    assert!(!second.contains(">line-a_000<"), "{second}");
    // A part of the id, matched literally: `%` and `_` are characters, not wildcards.
    let part = list("?q=a_05");
    assert!(part.contains("5 devices match"), "{part}");
    assert!(list("?q=a%25z").contains("0 devices match"));
    assert!(list("?q=_zzz").contains("1 devices match"));
    // Type and tag.
    let typed = list("?type=other-board");
    assert!(
        typed.contains("2 devices match") && typed.contains(">other-1<"),
        "{typed}"
    );
    let tagged = list("?tag=eu&q=other");
    assert!(
        tagged.contains("1 devices match") && tagged.contains(">other-1<"),
        "{tagged}"
    );
    // The links to the other pages keep the search.
    let searched = list("?q=line-a&page=1");
    assert!(searched.contains("55 devices match"), "{searched}");
    assert!(
        searched.contains("q=line-a&amp;type=&amp;tag=&amp;version=&amp;attribute=&amp;state=&amp;silent_hours=&amp;page=2"),
        "{searched}"
    );
    // Not logged in: to the login page.
    let anonymous = server.dashboard_get("/ui/devices", "rustupdate_session=none");
    assert_eq!(anonymous.status, 303);
}

fn devices_are_found_by_version_attribute_state_and_silence(backend: Backend) {
    let server = Server::start(backend);
    let old = server.device("v1-quiet");
    let new = server.device("v2-rev3");
    let other = server.device("v2-rev4");
    let never = server.device("never-seen");
    assert_eq!(old.config(&json!({"running_version": "1.0"})).status, 200);
    assert_eq!(
        new.config(&json!({"running_version": "2.0", "hw_rev": "3"}))
            .status,
        200
    );
    assert_eq!(
        other
            .config(&json!({"running_version": "2.0", "hw_rev": "4", "note": "\"hw_rev\":\"3\""}))
            .status,
        200
    );
    let _ = never;
    // One action failed, on v2-rev3.
    let artifact = server.release("3.0");
    let rollout = server.rollout(artifact, "100", "5");
    let action = new.offered_action().expect("an action for v2-rev3");
    new.complete(action, "failure", &["disk full"]);
    assert_eq!(server.action_state("v2-rev3", action), "failed");
    // v2-rev4 is offered its action and has not fetched it yet.
    let offered = other.offered_action().expect("an action for v2-rev4");
    assert_eq!(server.action_state("v2-rev4", offered), "scheduled");
    let cookie = server.dashboard_session();
    let found = |query: &str| {
        let a = server.dashboard_get(&format!("/ui/devices{query}"), &cookie);
        assert_eq!(a.status, 200, "{query}: {a:?}");
        let ids: Vec<&str> = ["v1-quiet", "v2-rev3", "v2-rev4", "never-seen"]
            .into_iter()
            .filter(|id| a.text.contains(&format!(">{id}<")))
            .collect();
        ids.join(" ")
    };
    assert_eq!(found("?version=2.0"), "v2-rev3 v2-rev4");
    assert_eq!(found("?version=1.0"), "v1-quiet");
    assert_eq!(found("?version=2"), "", "versions match exactly");
    // The quoted pair inside another value does not match.
    assert_eq!(found("?attribute=hw_rev%3D3"), "v2-rev3");
    assert_eq!(found("?attribute=hw_rev%3D4&version=2.0"), "v2-rev4");
    assert_eq!(found("?state=failed"), "v2-rev3");
    assert_eq!(found("?state=scheduled"), "v2-rev4");
    // Everyone who reported is seen now; the device that never polled is silent.
    assert_eq!(found("?silent_hours=1"), "never-seen");
    assert_eq!(
        found("?silent_hours=0"),
        "v1-quiet v2-rev3 v2-rev4 never-seen"
    );
    // Bad searches name the problem.
    for (query, problem) in [
        ("?state=exploded", "action state"),
        ("?attribute=novalue", "is not KEY=VALUE"),
        ("?silent_hours=-3", "is not a whole number"),
    ] {
        let a = server.dashboard_get(&format!("/ui/devices{query}"), &cookie);
        assert_eq!(a.status, 400, "{query}: {a:?}");
        assert!(a.text.contains(problem), "{query}: {}", a.text);
    }
    // The charts: versions on the overview; on the rollout page, finished actions per phase
    // over time and failures by reason.
    let overview = server.dashboard_get("/ui/", &cookie).text;
    let chart = overview
        .rsplit("Devices per running version, the last 30 days")
        .next()
        .expect("the versions chart");
    assert!(chart.contains("<svg") && chart.contains("<path"), "{chart}");
    assert!(
        chart.contains(">1.0<") && chart.contains(">2.0<"),
        "{chart}"
    );
    assert!(overview.contains("Failed actions by reason, all rollouts"));
    let page = server
        .dashboard_get(&format!("/ui/rollouts/{rollout}"), &cookie)
        .text;
    let progress = page.rsplit("Finished actions per phase").next().unwrap();
    assert!(progress.contains("phase 1 failed"), "{progress}");
    let reasons = page.rsplit("Failed actions by reason").next().unwrap();
    assert!(
        reasons.contains("disk full") && reasons.contains("<rect"),
        "{reasons}"
    );
}
