//! Coalescing: followers get the frames so far, then the rest live; a failed leader sends them upstream.

use super::*;
use crate::{BodyPart, Scope};

fn key(name: &str) -> CacheKey {
    CacheKey::derive(&Scope::gateway("g", b""), "p", "/x", "m", BodyPart::Custom(name))
}

fn head() -> Head {
    Head { status: 200, content_type: Some("text/event-stream".into()) }
}

fn leader(join: Join) -> Leader {
    match join {
        Join::Leader(leader) => leader,
        _ => panic!("expected to lead"),
    }
}

fn follower(join: Join) -> Follower {
    match join {
        Join::Follower(follower) => follower,
        _ => panic!("expected to follow"),
    }
}

#[tokio::test]
async fn a_follower_that_joins_mid_stream_gets_the_frames_so_far_then_the_rest_live() {
    let flights = Flights::new(8, 1 << 20);
    let lead = leader(flights.join(&key("a")));
    lead.head(head());
    lead.frame(&Bytes::from_static(b"one"));
    let mut f = follower(flights.join(&key("a")));
    assert_eq!(f.head().await, Some(head()));
    assert_eq!(f.next().await, FollowerFrame::Data(Bytes::from_static(b"one")));
    let waiting = tokio::spawn(async move {
        let second = f.next().await;
        (second, f.next().await, f)
    });
    lead.frame(&Bytes::from_static(b"two"));
    let entry = lead.complete().unwrap();
    let (second, end, _f) = waiting.await.unwrap();
    assert_eq!(second, FollowerFrame::Data(Bytes::from_static(b"two")));
    assert_eq!(end, FollowerFrame::End);
    assert_eq!(entry.frames().collect::<Vec<_>>(), [Bytes::from_static(b"one"), Bytes::from_static(b"two")]);
    drop(lead);
    assert_eq!(flights.in_flight(), 0);
    assert!(matches!(flights.join(&key("a")), Join::Leader(_)), "a finished flight is gone");
}

#[tokio::test]
async fn followers_of_a_leader_that_fails_before_its_head_go_upstream() {
    let flights = Flights::new(8, 1 << 20);
    let lead = leader(flights.join(&key("a")));
    let mut f = follower(flights.join(&key("a")));
    let waiting = tokio::spawn(async move { f.head().await });
    lead.head(Head { status: 500, content_type: None });
    assert_eq!(waiting.await.unwrap(), None);
    assert!(matches!(flights.join(&key("a")), Join::Leader(_)), "the failed flight took no new followers");
}

#[tokio::test]
async fn a_leader_dropped_mid_stream_breaks_its_followers() {
    let flights = Flights::new(8, 1 << 20);
    let lead = leader(flights.join(&key("a")));
    lead.head(head());
    let mut f = follower(flights.join(&key("a")));
    lead.frame(&Bytes::from_static(b"one"));
    drop(lead);
    assert_eq!(f.next().await, FollowerFrame::Data(Bytes::from_static(b"one")));
    assert_eq!(f.next().await, FollowerFrame::Failed);
}

#[test]
fn followers_are_bounded_and_other_keys_do_not_join() {
    let flights = Flights::new(2, 1 << 20);
    let _lead = leader(flights.join(&key("a")));
    let _f1 = follower(flights.join(&key("a")));
    let _f2 = follower(flights.join(&key("a")));
    assert!(matches!(flights.join(&key("a")), Join::Alone));
    assert!(matches!(flights.join(&key("b")), Join::Leader(_)));
    assert!(matches!(Flights::new(0, 1).join(&key("a")), Join::Alone), "0 followers: coalescing is off");
}

#[tokio::test]
async fn an_oversize_response_is_not_stored_and_takes_no_new_followers_but_keeps_feeding_its_own() {
    let flights = Flights::new(8, 4);
    let lead = leader(flights.join(&key("a")));
    lead.head(head());
    let mut f = follower(flights.join(&key("a")));
    lead.frame(&Bytes::from_static(b"abc"));
    lead.frame(&Bytes::from_static(b"def"));
    assert!(matches!(flights.join(&key("a")), Join::Leader(_)), "new requests go upstream");
    assert!(lead.complete().is_none());
    assert_eq!(f.next().await, FollowerFrame::Data(Bytes::from_static(b"abc")));
    assert_eq!(f.next().await, FollowerFrame::Data(Bytes::from_static(b"def")));
    assert_eq!(f.next().await, FollowerFrame::End);
}
