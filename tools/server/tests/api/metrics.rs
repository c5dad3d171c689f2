//! `GET /metrics` (issue 20, operations): Prometheus text behind the admin token, requests counted
//! by route template (a device id never becomes a series), fleet counts read from the database.

use crate::harness::{Backend, Server, answer};
use crate::on_both_backends;

on_both_backends!(metrics_count_requests_by_route_and_read_the_fleet);

/// The value of the sample line `series` (name and labels exactly as printed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.split(' ').next().unwrap().parse().unwrap())
}

fn metrics_count_requests_by_route_and_read_the_fleet(backend: Backend) {
    let server = Server::start(backend);
    // Without the admin token: 401, and nothing of the fleet.
    let anonymous = answer(server.agent.get(&server.url("/metrics")).call());
    assert_eq!(anonymous.status, 401, "{anonymous:?}");

    let devices: Vec<_> = (0..3).map(|i| server.device(&format!("m-{i}"))).collect();
    for d in &devices {
        for _ in 0..2 {
            assert_eq!(d.poll().status, 200);
        }
    }
    let artifact = server.release("2.0");
    let rollout = server.rollout(artifact, "100", "1");
    let action = devices[0].offered_action().expect("an action for m-0");
    devices[0].complete(action, "success", &["committed"]);
    assert_eq!(server.admin_get("/no/such/route").status, 404);

    let scraped = server.admin_get("/metrics");
    assert_eq!(scraped.status, 200, "{scraped:?}");
    let text = &scraped.text;
    assert!(text.ends_with("# EOF\n"), "not OpenMetrics text: {text}");
    let polls = r#"rustupdate_http_requests_total{route="/{tenant}/controller/v1/{controller}",method="GET",status="200"}"#;
    // 2 polls per device, 1 offered_action (m-1 and m-2 were polled twice before the rollout).
    assert_eq!(sample(text, polls), Some(7.0), "{text}");
    assert!(
        !text.contains("m-0") && !text.contains("m-1"),
        "a device id became a label: {text}"
    );
    let unmatched =
        r#"rustupdate_http_requests_total{route="unmatched",method="GET",status="404"}"#;
    assert_eq!(sample(text, unmatched), Some(1.0), "{text}");
    let anonymous = r#"rustupdate_http_requests_total{route="/metrics",method="GET",status="401"}"#;
    assert_eq!(sample(text, anonymous), Some(1.0), "{text}");
    let latency = r#"rustupdate_http_request_duration_seconds_count{route="/{tenant}/controller/v1/{controller}"}"#;
    assert_eq!(sample(text, latency), Some(7.0), "{text}");
    assert_eq!(sample(text, "rustupdate_devices"), Some(3.0), "{text}");
    assert_eq!(sample(text, "rustupdate_artifacts"), Some(1.0), "{text}");
    assert_eq!(
        sample(text, r#"rustupdate_actions{state="succeeded"}"#),
        Some(1.0),
        "{text}"
    );
    // The rollout's one phase holds all three: it runs until the other two report.
    let state = server.rollout_status(rollout)["state"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        sample(text, &format!(r#"rustupdate_rollouts{{state="{state}"}}"#)),
        Some(1.0),
        "{text}"
    );
}
