//! The entry encoding round-trips and refuses what it did not write.

use super::*;

fn sample() -> Entry {
    Entry {
        status: 200,
        content_type: Some("text/event-stream".into()),
        frames: vec![Bytes::from_static(b"data: 1\n\n"), Bytes::new(), Bytes::from_static(b"data: [DONE]\n\n")],
    }
}

#[test]
fn encoding_round_trips_frame_by_frame() {
    let entry = sample();
    assert_eq!(Entry::decode(Bytes::from(entry.encode())).unwrap(), entry);
    let bare = Entry { status: 200, content_type: None, frames: vec![] };
    assert_eq!(Entry::decode(Bytes::from(bare.encode())).unwrap(), bare);
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    let encoded = sample().encode();
    for len in 0..encoded.len() {
        assert!(Entry::decode(Bytes::copy_from_slice(&encoded[..len])).is_err(), "prefix of {len} bytes");
    }
}

#[test]
fn a_huge_frame_count_is_refused_before_allocating() {
    let mut encoded = Entry { status: 200, content_type: None, frames: vec![] }.encode();
    let n = encoded.len();
    encoded[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(Entry::decode(Bytes::from(encoded)), Err(EntryError::TooManyFrames(_))));
}

#[test]
fn the_body_joins_the_frames() {
    assert_eq!(&sample().body()[..], b"data: 1\n\ndata: [DONE]\n\n");
}
