//! The dashboard's device list (issue 20: devices searchable and paged): part of the id, type and
//! tag filters, 50 devices a page, with the total.

use crate::harness::{Backend, Server};
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(the_device_list_is_searched_and_paged);

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
        searched.contains("q=line-a&amp;type=&amp;tag=&amp;page=2"),
        "{searched}"
    );
    // Not logged in: to the login page.
    let anonymous = server.dashboard_get("/ui/devices", "rustupdate_session=none");
    assert_eq!(anonymous.status, 303);
}
